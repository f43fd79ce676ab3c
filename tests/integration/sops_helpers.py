"""Helpers for SOPS tests: throwaway age keys and the real sops binary.

The plaintext-in-cache scan is the shared one in ``tests/secrets_scan.py``.

Keys are generated per test session with pyrage; no private key is committed.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import tool


@dataclass(frozen=True)
class AgeKey:
    """A throwaway age identity (private) and its recipient (public)."""

    identity: str
    recipient: str


def new_age_key() -> AgeKey:
    """Generate a fresh age key pair with pyrage."""
    import pyrage

    ident = pyrage.x25519.Identity.generate()
    return AgeKey(str(ident), str(ident.to_public()))


def sops_env(*identities: AgeKey, extra: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for sops (and kiln) holding the given age identities."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPS_", "AWS_"))}
    env["SOPS_DISABLE_VERSION_CHECK"] = "1"
    if identities:
        env["SOPS_AGE_KEY"] = "\n".join(i.identity for i in identities)
    env.update(extra or {})
    return env


def sops_encrypt(plain: bytes, fmt: str, work: Path, *args: str,
                 env: dict[str, str] | None = None) -> bytes:
    """Encrypt ``plain`` with the real sops binary (``args`` choose keys and selectors).

    ``--mac-only-encrypted`` (a .sops.yaml setting in sops 3.11) is turned into a config file.
    """
    ext = {"dotenv": "env", "binary": "bin"}.get(fmt, fmt)
    src = work / f"plain-{os.urandom(4).hex()}.{ext}"
    src.write_bytes(plain)
    config: list[str] = []
    if "--mac-only-encrypted" in args:
        args = tuple(a for a in args if a != "--mac-only-encrypted")
        cfg = work / f"sops-{os.urandom(4).hex()}.yaml"
        cfg.write_text("creation_rules:\n  - mac_only_encrypted: true\n")
        config = ["--config", str(cfg)]
    try:
        proc = subprocess.run(
            [tool("sops"), *config, "encrypt", "--input-type", fmt, "--output-type", fmt,
             *args, str(src)],
            capture_output=True, env=env or sops_env(), timeout=60, check=False)
    finally:
        src.unlink()
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def sops_decrypt(enc: bytes, fmt: str, env: dict[str, str], *args: str) -> bytes:
    """Decrypt with the real sops binary on stdin (the reference every test compares with)."""
    proc = subprocess.run(
        [tool("sops"), "decrypt", "--input-type", fmt, "--output-type", fmt, *args],
        input=enc, capture_output=True, env=env, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout
