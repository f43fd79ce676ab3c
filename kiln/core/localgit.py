"""Running git on the user's own repository: the checkout kiln reads and the private
worktrees it makes there (``kiln diff --against``, ``kiln hydrate --branch``).

Every command runs with repository hooks disabled (``-c core.hooksPath=/dev/null``) unless the
caller asks for them, never prompts (``GIT_TERMINAL_PROMPT=0``), ignores the ``GIT_*``
variables that would point it at another repository, index or object store, and is bounded
by a timeout. Remote repositories named by requests are :mod:`kiln.gitsource`'s business,
with stricter rules.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from kiln.core.errors import ToolError

GIT_ENV_DROPPED = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                   "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE",
                   "GIT_CEILING_DIRECTORIES")
"""Variables that would make git work on something other than the repository named."""


def git_env() -> dict[str, str]:
    """kiln's environment without :data:`GIT_ENV_DROPPED`, with prompts off."""
    env = {k: v for k, v in os.environ.items() if k not in GIT_ENV_DROPPED}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def last_line(text: str) -> str:
    """The last non-blank line of git's output (where git says what went wrong)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def run_git(args: Sequence[str], cwd: Path, *, source: str, needed_for: str,
            timeout: float, hooks: bool = False,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``git args`` in ``cwd`` and return the finished process (any exit status).

    Raises ToolError naming ``source`` when git is not installed (``needed for
    <needed_for>``), cannot start, or outlives ``timeout`` seconds."""
    git = shutil.which("git")
    if git is None:
        raise ToolError(f"git is not installed (needed for {needed_for})", source=source)
    prefix = [] if hooks else ["-c", "core.hooksPath=/dev/null"]
    try:
        return subprocess.run([git, *prefix, *args], cwd=cwd, env=git_env(), input=stdin,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ToolError(f"git {args[0]} did not finish within {timeout:g}s",
                        source=source) from None
    except OSError as exc:
        raise ToolError(f"cannot run git: {exc.strerror or exc}", source=source) from None
