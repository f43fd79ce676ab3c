"""One bare mirror of one repository URL under the cache directory.

The mirror lives in ``<cache_dir>/<sha256 of the normalised URL, 40 hex digits>`` (mode
0700), made with ``git init --bare`` in a temporary directory renamed into place (two
processes sharing the cache directory never see half a mirror). Its ``description`` file
holds the URL (credentials are never in it: such URLs are refused). Nothing is ever checked
out: trees are read from the object database.

Fetches (``git fetch --prune --force --no-tags -- <url> <refspecs>``) into the mirror run one
at a time: a thread lock per mirror in this process, and an ``flock`` on
``<mirror>/kiln-fetch.lock`` across processes; both waits end with the caller's deadline.
Reads (``cat-file``, ``rev-parse``, ``ls-tree``) never wait: git keeps a repository readable
while a fetch writes to it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.gitsource.errors import GitRemoteError
from kiln.gitsource.refs import Refs, parse_ls_remote
from kiln.gitsource.urls import redact_url

if TYPE_CHECKING:
    from kiln.core.deadline import Deadline
    from kiln.gitsource.git import GitRunner

FULL_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
"""What a full fetch brings: every branch and tag, moved and deleted ones too."""
LOCK_POLL = 0.05
KNOWN_COMMITS = 4096
"""Commits per mirror remembered as present (40 bytes and a dict slot each)."""


def mirror_name(url: str) -> str:
    """The directory name of the mirror of the normalised ``url``."""
    return hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()[:40]


class Mirror:
    """The bare mirror of one normalised repository URL (see the module docstring)."""

    def __init__(self, url: str, path: Path, runner: GitRunner) -> None:
        self.url = url
        self.path = path
        self.runner = runner
        self.source = f"repository {redact_url(url)!r}"
        self.lock = threading.Lock()
        """Held while this process writes to the mirror (init, fetch)."""
        self._present: OrderedDict[str, None] = OrderedDict()
        self._present_lock = threading.Lock()

    # -- creating ------------------------------------------------------------------------

    def ensure(self, deadline: Deadline | None) -> None:
        """Create the mirror when it does not exist yet."""
        if (self.path / "HEAD").is_file():
            return
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            holder = Path(tempfile.mkdtemp(prefix=".init-", dir=parent))
        except OSError as exc:
            raise GitRemoteError(f"cannot create the mirror under {parent}: "
                                 f"{exc.strerror or exc}", source=self.source) from None
        try:
            target = holder / "repo.git"
            self.runner.run(["init", "--bare", "--quiet", str(target)], what="git init",
                            source=self.source, deadline=deadline)
            try:
                (target / "description").write_text(self.url + "\n", encoding="utf-8",
                                                    errors="surrogateescape")
                os.chmod(target, 0o700)
                os.rename(target, self.path)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise GitRemoteError(f"cannot create the mirror: {exc.strerror}",
                                         source=self.source) from None
                # another process made it first: theirs is as good
        finally:
            shutil.rmtree(holder, ignore_errors=True)

    # -- reading -------------------------------------------------------------------------

    def has_commit(self, commit: str, deadline: Deadline | None) -> bool:
        """Whether the commit ``commit`` (a full id) is in the mirror. A commit found once is
        remembered (:data:`KNOWN_COMMITS` of them): kiln never removes objects from a mirror,
        so asking again would only cost a process."""
        with self._present_lock:
            if commit in self._present:
                self._present.move_to_end(commit)
                return True
        out = self.runner.succeeds(["cat-file", "-t", commit], what="git cat-file",
                                   source=self.source, deadline=deadline, git_dir=self.path)
        found = out is not None and out.strip() == b"commit"
        if found:
            with self._present_lock:
                self._present[commit] = None
                while len(self._present) > KNOWN_COMMITS:
                    self._present.popitem(last=False)
        return found

    def commit_of(self, name: str, deadline: Deadline | None) -> str | None:
        """The full commit id ``name`` (a validated hex id or a ref name git advertised)
        names in the mirror, None when it names no commit there (or is ambiguous)."""
        out = self.runner.succeeds(["rev-parse", "--verify", "--quiet", "--end-of-options",
                                    f"{name}^{{commit}}"], what="git rev-parse",
                                   source=self.source, deadline=deadline, git_dir=self.path)
        text = out.decode("ascii", "replace").strip() if out is not None else ""
        return text or None

    def ls_remote(self, deadline: Deadline | None) -> Refs:
        """The remote's refs, asked over the network (``git ls-remote --symref``)."""
        out = self.runner.run(["ls-remote", "--symref", "--", self.url],
                              what="git ls-remote", source=self.source, deadline=deadline,
                              git_dir=self.path)
        return parse_ls_remote(out.decode("utf-8", "surrogateescape"))

    # -- writing -------------------------------------------------------------------------

    def fetch(self, refspecs: Sequence[str], deadline: Deadline | None, *,
              depth: int | None = None, prune: bool = True) -> float:
        """Fetch ``refspecs`` from the remote (``depth`` commits deep when given); the caller
        holds :attr:`lock`. Returns the seconds the fetch took."""
        args = ["fetch", "--force", "--no-tags", "--quiet", "--no-write-fetch-head",
                "--no-auto-gc", "--no-recurse-submodules"]
        if prune:
            args.append("--prune")
        if depth is not None:
            args.append(f"--depth={depth}")
        started = time.monotonic()
        with self._flock(deadline):
            self.runner.run([*args, "--", self.url, *refspecs], what="git fetch",
                            source=self.source, deadline=deadline, git_dir=self.path)
        return time.monotonic() - started

    @contextlib.contextmanager
    def _flock(self, deadline: Deadline | None) -> Iterator[None]:
        fd = os.open(self.path / "kiln-fetch.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and deadline.expired():
                        raise deadline.error("waiting for another process's git fetch"
                                             ) from None
                    time.sleep(LOCK_POLL)
            yield
        finally:
            os.close(fd)  # releases the lock


def acquire(lock: threading.Lock, deadline: Deadline | None, pending: str) -> None:
    """Take ``lock``, waiting at most until ``deadline`` (then its error naming ``pending``)."""
    while not lock.acquire(timeout=0.25 if deadline is None else
                           max(0.001, min(0.25, deadline.remaining()))):
        if deadline is not None and deadline.expired():
            raise deadline.error(pending)


__all__ = ["FULL_REFSPECS", "KNOWN_COMMITS", "Mirror", "acquire", "mirror_name"]
