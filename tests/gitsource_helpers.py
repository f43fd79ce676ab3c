"""Real git repositories for the git-source tests: a work repository that commits and pushes
to a bare "remote", and the oracle (``git rev-parse`` in the work repository)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}


def git(cwd: Path, *args: str, input: bytes | None = None) -> str:
    """Run git in ``cwd`` (the test's own, independent of kiln's runner); its stdout."""
    env = {**os.environ, **GIT_ENV}
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, input=input,
                          capture_output=True, check=False, timeout=60)
    assert proc.returncode == 0, (args, proc.stderr.decode())
    return proc.stdout.decode().strip()


class Remote:
    """A bare repository at ``bare`` fed by the work repository ``work``."""

    def __init__(self, root: Path, name: str = "remote") -> None:
        self.bare = root / f"{name}.git"
        self.work = root / f"{name}-work"
        self.bare.mkdir(parents=True)
        git(self.bare, "init", "--bare", "--quiet", "-b", "main")
        self.work.mkdir()
        git(self.work, "init", "--quiet", "-b", "main")
        git(self.work, "remote", "add", "origin", str(self.bare))

    @property
    def url(self) -> str:
        """The remote as a file:// URL."""
        return f"file://{self.bare}"

    def commit(self, files: Mapping[str, str | bytes | None], message: str = "change",
               *, executable: tuple[str, ...] = (), symlinks: Mapping[str, str] | None = None
               ) -> str:
        """Write ``files`` (None: delete), make ``symlinks``, commit everything; the id."""
        for name, content in files.items():
            path = self.work / name
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
            if name in executable:
                path.chmod(0o755)
        for name, target in (symlinks or {}).items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():
                path.unlink()
            path.symlink_to(target)
        git(self.work, "add", "-A")
        git(self.work, "commit", "--quiet", "--allow-empty", "-m", message)
        return self.rev("HEAD")

    def push(self, *refs: str) -> None:
        """Push ``refs`` (default: every branch and tag) to the bare remote, forced."""
        if refs:
            git(self.work, "push", "--quiet", "--force", "origin", *refs)
        else:
            git(self.work, "push", "--quiet", "--force", "--all", "origin")
            git(self.work, "push", "--quiet", "--force", "--tags", "origin")

    def rev(self, revision: str) -> str:
        """The oracle: the commit ``revision`` names in the work repository."""
        return git(self.work, "rev-parse", "--verify", f"{revision}^{{commit}}")
