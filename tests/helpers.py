"""Helpers for tests: run the real CLI, find real tools (a missing tool fails, never skips)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def tool(name: str) -> str:
    """Return the path of a tool beside the test interpreter (or on PATH); fail if absent."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"required tool {name!r} is not installed (run .ci/install)")
    return found


def run_kiln(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
             stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real ``kiln`` CLI in a subprocess and capture its output."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "kiln", *args],
        cwd=cwd, env=full_env, input=stdin, capture_output=True, text=True, timeout=timeout,
    )


def assert_clean_failure(proc: subprocess.CompletedProcess[str], *needles: str,
                         code: int = 1) -> None:
    """Assert the CLI failed the way the output contract says: one error line, no stdout."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == "", proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[0].startswith("kiln: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def write_tree(root: Path, files: Mapping[str, str]) -> Path:
    """Write ``files`` (relative path -> dedented text) under ``root``; return ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def escape_name(name: str) -> str:
    """Argo CD's PARAM_* spelling: upper case, anything outside [A-Z0-9_] becomes '_'."""
    import re

    return re.sub(r"[^A-Z0-9_]", "_", name.upper())


def param_vars(params: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The PARAM_* variables Argo CD derives from the parameters (map keys escaped too)."""
    out: dict[str, str] = {}
    for param in params:
        base = "PARAM_" + escape_name(param["name"])
        if "string" in param:
            out[base] = param["string"]
        for i, item in enumerate(param.get("array", [])):
            out[f"{base}_{i}"] = item
        for key, value in param.get("map", {}).items():
            out[f"{base}_{escape_name(key)}"] = value
    return out
