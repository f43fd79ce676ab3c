"""A commit's whole tree as a :class:`kiln.core.sourcetree.SourceTree`, read from the object
database of a bare mirror: no checkout, no working copy, nothing written to disk.

``git ls-tree -r -z --full-tree -l <commit>`` lists every blob with its mode, id and size;
the sizes are checked against the limits before any content is read (a huge repository is a
one-line :class:`GitTreeTooLarge`, never a process that runs out of memory); then one
``git cat-file --batch`` process reads the blobs not already known. Modes:

- ``100644`` (and git's old ``100664``): a regular file; ``100755``: an executable file;
- ``120000``: a symlink, its target the blob's content (checked by the SourceTreeBuilder:
  a target leading out of the tree refuses the whole tree, as Argo CD's repo-server refuses a
  repository with out-of-bounds symlinks, and as the CMP stream does);
- ``160000``: a submodule (a commit of another repository): **left out**, logged once per
  tree. The tree holds what the repository itself holds; kiln never fetches another
  repository a commit points to.

A path with a ``.git`` component (any case) is refused, as ``git checkout`` refuses it.

Two memos make a new commit of a known repository cheap (:class:`BlobMemo`): blob id ->
sha256, shared by every repository and commit (a blob hashed once is never hashed again),
and the blob contents of the last tree built for the same repository (a blob that did not
change is not read again, and the two trees share its bytes in memory).

The whole tree is kept, not only the app's directory: an app may read outside it (kustomize
bases in ``../base``, helm ``file://`` dependencies, Argo CD's ``$values`` sources).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.core.sourcetree import SourceTree, SourceTreeBuilder, SourceTreeError
from kiln.gitsource.errors import GitRemoteError, GitTreeError, GitTreeTooLarge

if TYPE_CHECKING:
    from kiln.core.deadline import Deadline
    from kiln.gitsource.git import GitRunner

log = logging.getLogger("kiln.gitsource")

FILE_MODES = {b"100644": False, b"100664": False, b"100755": True}
SYMLINK_MODE = b"120000"
SUBMODULE_MODE = b"160000"
MAX_MEMO_ENTRIES = 200_000
"""Default bound of the blob id -> sha256 memo (about 200 bytes an entry)."""


@dataclass(frozen=True)
class TreeLimits:
    """Caps on one commit's tree: blob bytes in total and entries (files, symlinks and the
    directories they imply)."""

    max_bytes: int = 1024 << 20
    max_files: int = 100_000


class BlobMemo:
    """A thread-safe, bounded (least recently used first out) map from a git blob id to the
    lowercase hex sha256 of its content. One per :class:`~kiln.gitsource.GitSources`."""

    def __init__(self, max_entries: int = MAX_MEMO_ENTRIES) -> None:
        self.max_entries = max_entries
        self._digests: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hashed = 0
        """Blobs hashed so far (a memo miss)."""
        self.reused = 0
        """Blob digests taken from the memo so far."""

    def digest(self, oid: str, data: bytes) -> str:
        """The sha256 of ``data``, the content of the blob ``oid``: from the memo when the
        blob was seen before, else computed and remembered."""
        key = bytes.fromhex(oid)
        with self._lock:
            known = self._digests.get(key)
            if known is not None:
                self._digests.move_to_end(key)
                self.reused += 1
                return known.hex()
        value = hashlib.sha256(data).digest()
        with self._lock:
            self.hashed += 1
            self._digests[key] = value
            while len(self._digests) > self.max_entries:
                self._digests.popitem(last=False)
        return value.hex()

    def __len__(self) -> int:
        """Blob ids remembered."""
        with self._lock:
            return len(self._digests)


@dataclass(frozen=True)
class _Entry:
    path: bytes
    oid: str
    kind: str  # "f", "x" (executable) or "l"
    size: int


def _list(runner: GitRunner, git_dir: Path, commit: str, *, source: str,
          deadline: Deadline | None, limits: TreeLimits) -> list[_Entry]:
    entries: list[_Entry] = []
    total = 0
    skipped = 0
    with runner.start(["ls-tree", "-r", "-z", "--full-tree", "-l", commit], git_dir=git_dir,
                      what="git ls-tree", source=source, deadline=deadline) as running:
        pending = b""
        while True:
            chunk = running.stdout.read(1 << 16)
            if not chunk:
                break
            records = (pending + chunk).split(b"\0")
            pending = records.pop()
            for record in records:
                entry = _parse(record, source)
                if entry is None:
                    skipped += 1
                    continue
                entries.append(entry)
                total += entry.size
                if len(entries) > limits.max_files:
                    raise GitTreeTooLarge(f"commit {commit}: more than {limits.max_files} "
                                          "files (the operator's limit)", source=source)
                if total > limits.max_bytes:
                    raise GitTreeTooLarge(f"commit {commit}: the files hold more than "
                                          f"{limits.max_bytes} bytes (the operator's limit)",
                                          source=source)
        running.finish()
        if pending:
            raise GitRemoteError("git ls-tree: truncated output", source=source)
    if skipped:
        log.info("%s: commit %s: %d submodule(s) left out of the tree", source, commit, skipped)
    return entries


def _parse(record: bytes, source: str) -> _Entry | None:
    meta, tab, path = record.partition(b"\t")
    fields = meta.split()
    if not tab or len(fields) != 4:
        raise GitRemoteError("git ls-tree: unexpected output", source=source)
    mode, _kind, oid, size = fields
    if mode == SUBMODULE_MODE:
        return None
    if any(part.lower() == b".git" for part in path.split(b"/")):
        raise GitTreeError(f"the path {path.decode('utf-8', 'replace')!r} has a '.git' "
                           "component (git itself would not check it out)", source=source)
    if mode == SYMLINK_MODE:
        kind = "l"
    elif mode in FILE_MODES:
        kind = "x" if FILE_MODES[mode] else "f"
    else:
        raise GitTreeError(f"the path {path.decode('utf-8', 'replace')!r} has the unknown "
                           f"mode {mode.decode('ascii', 'replace')}", source=source)
    try:
        return _Entry(path, oid.decode("ascii"), kind, int(size))
    except ValueError:
        raise GitRemoteError("git ls-tree: unexpected output", source=source) from None


def _read_blobs(runner: GitRunner, git_dir: Path, oids: list[str], *, source: str,
                deadline: Deadline | None) -> dict[str, bytes]:
    blobs: dict[str, bytes] = {}
    if not oids:
        return blobs
    with runner.batch(git_dir, oids, what="git cat-file", source=source,
                      deadline=deadline) as running:
        out = running.stdout
        for oid in oids:
            header = out.readline()
            fields = header.split()
            if len(fields) != 3 or fields[1] != b"blob":
                running.check_killed()
                raise GitRemoteError(f"git cat-file: blob {oid} is missing from the mirror",
                                     source=source)
            size = int(fields[2])
            data = out.read(size + 1)
            if len(data) != size + 1:
                running.check_killed()
                raise GitRemoteError("git cat-file: truncated output", source=source)
            blobs[oid] = data[:-1]
        running.finish()
    return blobs


def build_tree(runner: GitRunner, git_dir: Path, commit: str, *, source: str,
               deadline: Deadline | None, limits: TreeLimits, memo: BlobMemo,
               known: Mapping[str, bytes] | None = None) -> tuple[SourceTree, dict[str, bytes]]:
    """The tree of ``commit`` in the bare repository ``git_dir`` (see the module docstring)
    and its blobs by id (pass them as ``known`` for the repository's next commit: those are
    not read again). Raises GitTreeTooLarge over ``limits``, GitTreeError for a tree kiln
    refuses (the path named), GitRemoteError when git fails."""
    known = known or {}
    entries = _list(runner, git_dir, commit, source=source, deadline=deadline, limits=limits)
    wanted = sorted({e.oid for e in entries if e.oid not in known})
    read = _read_blobs(runner, git_dir, wanted, source=source, deadline=deadline)
    blobs: dict[str, bytes] = {}
    builder = SourceTreeBuilder()
    try:
        for entry in entries:
            data = blobs.get(entry.oid)
            if data is None:
                data = read.get(entry.oid)
                if data is None:
                    data = known[entry.oid]
                blobs[entry.oid] = data
            name = entry.path.decode("utf-8", "surrogateescape")
            if entry.kind == "l":
                builder.add_symlink(name, data.decode("utf-8", "surrogateescape"))
            else:
                builder.add_file(name, data, executable=entry.kind == "x",
                                 sha256=memo.digest(entry.oid, data))
            if len(builder) > limits.max_files:
                raise GitTreeTooLarge(f"commit {commit}: more than {limits.max_files} "
                                      "entries with the directories they imply (the "
                                      "operator's limit)", source=source)
        tree = builder.build()
    except SourceTreeError as exc:
        raise GitTreeError(f"commit {commit}: {exc.path!r}: {exc.problem}",
                           source=source) from None
    return tree, blobs


__all__ = ["BlobMemo", "TreeLimits", "build_tree"]
