"""Decrypt through the real ``sops`` binary, fed on stdin: plaintext never touches the disk."""

from __future__ import annotations

from kiln.core.errors import ToolError
from kiln.core.tools import find_tool, run_tool
from kiln.plugins.secrets_sops.keys import KeyRing


def sops_decrypt(data: bytes, fmt: str, ring: KeyRing, *, ignore_mac: bool, timeout: float,
                 source: str) -> bytes:
    """Run ``sops decrypt`` on ``data`` (format ``fmt``) and return its stdout.

    Raises ToolError (one line, sops' own last error line) when sops fails.
    """
    binary = find_tool("sops", "KILN_SOPS", ring.env)
    argv = [binary, "decrypt", "--input-type", fmt, "--output-type", fmt]
    if ignore_mac:
        argv.append("--ignore-mac")
    try:
        return run_tool(argv, what=source, env=ring.sops_env(), stdin=data, timeout=timeout)
    except ToolError as exc:
        raise ToolError(exc.message, source=source) from None
