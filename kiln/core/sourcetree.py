"""A source tree held in memory: regular files, directories and symlinks, immutable once built.

A :class:`SourceTree` is what a repository looks like to kiln when it was received rather than
checked out (the CMP stream, :mod:`kiln.cmp.stream`; later a git source). It knows nothing of
where it came from. :class:`SourceTreeBuilder` adds entries one by one and refuses, with a
:class:`SourceTreeError` naming the path, anything that could not be written back safely:

- names: POSIX, relative, normalised (``./`` and repeated ``/`` dropped); an absolute name, a
  ``..`` component, a NUL, or a name longer than PATH_MAX (a component longer than NAME_MAX)
  is refused, as is a path *under* a file or a symlink (writing it would go through the
  symlink);
- duplicates: a directory may be named twice (and implied by its files); a file or symlink
  named twice, or one name given two kinds, is refused (no "later wins": an archive that
  says two things about one path is not a checkout);
- symlinks: the target is kept as written; an absolute target is refused, and so is one that
  climbs out of the root read either way: lexically from the link's directory (as Argo CD's
  unpacker reads it, and as ``os.path.realpath`` falls back to on a symlink loop), or with
  every symlink on its way followed as the kernel would (checked when the tree is built). No
  symlink of a built tree leads outside it. (A target that only a deeper symlinked directory
  keeps inside, like ``s/../../x`` with ``s`` -> ``a/b``, is refused too: rare, and safe.)

A built tree is a :class:`kiln.core.treeview.TreeView` (its ``shape_digest`` equals
:func:`kiln.cmp.fastpath.tree_digest` of the same tree on disk), can be read from memory, and
can :meth:`SourceTree.extract` itself, or a part of itself, into a private directory without
ever following a symlink while writing. :class:`SourceTreeCache` keeps recently used trees.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from kiln.core.errors import InputError
from kiln.core.treeview import MAX_TREE_ENTRIES, SKIPPED_DIRS, TreeTooLarge, shape_entry, shape_of

MAX_SYMLINK_HOPS = 40
"""Symlinks followed while resolving one path before it counts as a loop (Linux's limit)."""
MAX_PATH_BYTES = 4096
"""Longest path or symlink target (Linux's PATH_MAX): a longer one could not be extracted."""
MAX_NAME_BYTES = 255
"""Longest path component (NAME_MAX)."""
DIR_MODE = 0o755
FILE_MODE = 0o644
EXEC_MODE = 0o755
ENTRY_OVERHEAD = 128
"""Bytes a :class:`SourceTreeCache` charges per entry on top of the file contents."""

_KIND_NAMES = {"f": "file", "d": "directory", "l": "symlink"}


class SourceTreeError(InputError):
    """An entry cannot join a tree, or a tree cannot be written out: ``path`` and ``problem``
    (one line, the path quoted with repr, never a file's content)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(problem, source=repr(path))
        self.path = path
        self.problem = problem


@dataclass(frozen=True, slots=True)
class TreeFile:
    """A regular file: its bytes, their lowercase hex sha256 (computed once) and whether any
    executable bit was set."""

    data: bytes
    sha256: str
    executable: bool


def _nbytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def normalize_path(name: str) -> str:
    """``name`` as a tree path: POSIX, relative, without ``.`` components or repeated or
    trailing ``/`` (``""`` is the root). Raises SourceTreeError for a NUL, an absolute name, a
    ``..`` component (which could lead out of the root), or a name no POSIX system could
    create (longer than :data:`MAX_PATH_BYTES`, a component longer than
    :data:`MAX_NAME_BYTES`)."""
    if "\x00" in name:
        raise SourceTreeError(name[:MAX_NAME_BYTES], "the name holds a NUL byte")
    if len(name) > MAX_PATH_BYTES or _nbytes(name) > MAX_PATH_BYTES:
        raise SourceTreeError(name[:MAX_NAME_BYTES] + "...",
                              f"the name is longer than {MAX_PATH_BYTES} bytes")
    if name.startswith("/"):
        raise SourceTreeError(name, "the name is absolute")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SourceTreeError(name, "the name has a '..' component (it could leave the root)")
    if any(_nbytes(p) > MAX_NAME_BYTES for p in parts):
        raise SourceTreeError(name, f"a component is longer than {MAX_NAME_BYTES} bytes")
    return "/".join(parts)


def _join(base: str, name: str) -> str:
    return f"{base}/{name}" if base else name


class _Resolved:
    """Outcome of following a path through a tree's symlinks (``path`` set when it exists)."""

    __slots__ = ("escapes", "loops", "path")

    def __init__(self, path: str | None = None, *, escapes: bool = False,
                 loops: bool = False) -> None:
        self.path = path
        self.escapes = escapes
        self.loops = loops


def _resolve(kinds: Mapping[str, str], links: Mapping[str, str], rel: str) -> _Resolved:
    """Follow ``rel`` through the tree the way the kernel would on disk, never leaving the
    root: each component in turn, a symlink's target read relative to the link's directory.

    A component that does not exist (or is a file with more to come) makes the path missing,
    but the rest is still read lexically, so a ``..`` climbing above the root after it still
    counts as an escape (the check is on the safe side of whatever may be created later).
    """
    pending = rel.split("/")[::-1]
    real: list[str] = []
    hops = 0
    missing = False
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not real:
                return _Resolved(escapes=True)
            real.pop()
            continue
        if missing:
            real.append(part)
            continue
        candidate = "/".join((*real, part))
        kind = kinds.get(candidate)
        if kind == "l":
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                return _Resolved(loops=True)
            target = links[candidate]
            if target.startswith("/"):
                return _Resolved(escapes=True)
            pending.extend(reversed(target.split("/")))
            continue
        if kind == "d" or (kind == "f" and not pending):
            real.append(part)
            continue
        missing = True  # absent, or a file with more to come (even "/" or "/.": ENOTDIR)
        real.append(part)
    return _Resolved() if missing else _Resolved("/".join(real))


def _climbs_out(base: str, target: str) -> bool:
    """Whether ``target``, read lexically from the directory ``base`` (no symlink followed,
    as Argo CD's unpacker and Python's ``os.path.realpath`` on a loop read it), climbs above
    the root."""
    depth = base.count("/") + 1 if base else 0
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


class SourceTree:
    """An immutable tree of regular files, directories and symlinks, by POSIX relative path.

    Build one with :class:`SourceTreeBuilder`. Every symlink leads inside the tree (or
    nowhere); no path lies under a file or a symlink. It satisfies
    :class:`kiln.core.treeview.TreeView`.
    """

    __slots__ = ("_children", "_files", "_kinds", "_links", "_shapes", "nbytes", "nfiles")

    def __init__(self, kinds: dict[str, str], files: dict[str, TreeFile],
                 links: dict[str, str]) -> None:
        """Take ownership of already validated entries (use :class:`SourceTreeBuilder`)."""
        self._kinds = kinds
        self._files = files
        self._links = links
        children: dict[str, list[tuple[str, str]]] = {"": []}
        for path, kind in kinds.items():
            if kind == "d":
                children.setdefault(path, [])
        for path, kind in kinds.items():
            parent, _, name = path.rpartition("/")
            children[parent].append((name, kind))
        for entries in children.values():
            entries.sort()
        self._children = children
        self._shapes: dict[tuple[str, int], str] = {}
        self.nbytes = sum(len(f.data) for f in files.values())
        """Total size of the regular files' contents."""
        self.nfiles = len(files)
        """Number of regular files."""

    # -- what is in it -------------------------------------------------------------------

    @property
    def files(self) -> Mapping[str, TreeFile]:
        """Every regular file by path (read-only)."""
        return MappingProxyType(self._files)

    @property
    def symlinks(self) -> Mapping[str, str]:
        """Every symlink by path, to its target as written (read-only)."""
        return MappingProxyType(self._links)

    @property
    def dirs(self) -> frozenset[str]:
        """Every directory, named in the source or implied by a path under it (not the root)."""
        return frozenset(p for p, k in self._kinds.items() if k == "d")

    def __len__(self) -> int:
        """Number of entries: files, directories and symlinks (the root not counted)."""
        return len(self._kinds)

    @property
    def footprint(self) -> int:
        """Bytes this tree is charged in a :class:`SourceTreeCache`: contents plus a fixed
        :data:`ENTRY_OVERHEAD` per entry."""
        return self.nbytes + ENTRY_OVERHEAD * len(self._kinds)

    def kind(self, rel: str) -> str | None:
        """``"f"``, ``"d"`` or ``"l"`` for the entry at ``rel`` itself (no symlink followed;
        ``""`` is the root, a directory), None when there is none."""
        return "d" if rel == "" else self._kinds.get(rel)

    def is_executable(self, rel: str) -> bool:
        """Whether ``rel`` is a regular file whose source had an executable bit set."""
        entry = self._files.get(rel)
        return entry is not None and entry.executable

    def listdir(self, rel: str = "") -> tuple[str, ...]:
        """The sorted names in the directory at ``rel`` (symlinks in ``rel`` followed).
        Raises FileNotFoundError or NotADirectoryError as :func:`os.listdir` would."""
        real = self.realpath(rel)
        if real is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", rel)
        entries = self._children.get(real)
        if entries is None:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", rel)
        return tuple(name for name, _ in entries)

    def walk(self, rel: str = "") -> Iterator[tuple[str, str]]:
        """Every ``(path, kind)`` at or under ``rel`` (lexically: symlinks are entries, never
        descended), in sorted path order, ``.git`` included. ``rel`` itself comes first when
        it is an entry."""
        rel = normalize_path(rel)
        kind = self.kind(rel)
        if kind is None:
            return
        if rel:
            yield rel, kind
        if kind == "d":
            yield from self._walk_dir(rel)

    def _walk_dir(self, rel: str) -> Iterator[tuple[str, str]]:
        for name, kind in self._children[rel]:
            path = _join(rel, name)
            yield path, kind
            if kind == "d":
                yield from self._walk_dir(path)

    def subtree_paths(self, prefix: str = "") -> tuple[str, ...]:
        """Every entry path equal to ``prefix`` or under it (lexically, no symlink followed),
        sorted; ``""`` or ``"."`` gives every path."""
        prefix = normalize_path(prefix)
        if not prefix:
            return tuple(sorted(self._kinds))
        below = prefix + "/"
        return tuple(sorted(p for p in self._kinds if p == prefix or p.startswith(below)))

    # -- TreeView --------------------------------------------------------------------------

    def realpath(self, rel: str) -> str | None:
        """``rel`` with every symlink in it followed as the kernel would (relative targets
        against the link's directory, at most :data:`MAX_SYMLINK_HOPS`): the real path
        (``""`` for the root), or None when it leaves the root, loops (ELOOP: a tree may hold
        symlink loops, as a checkout may; ``os.path.realpath``'s lexical answer for them is
        not followed), or a component does not exist or is a file with more to come."""
        if rel == "":
            return rel
        kind = self._kinds.get(rel)
        if kind is not None and kind != "l":
            return rel  # every directory above an entry is a real directory (never a symlink)
        return _resolve(self._kinds, self._links, rel).path

    def file_digest(self, real_rel: str) -> str | None:
        """The lowercase hex sha256 of the regular file at ``real_rel`` (symlinks followed if
        it names one), None when it is not a regular file of the tree."""
        entry = self._files.get(real_rel)
        if entry is None:
            real = self.realpath(real_rel)
            entry = self._files.get(real) if real is not None else None
        return entry.sha256 if entry is not None else None

    def shape_digest(self, rel: str = "", limit: int = MAX_TREE_ENTRIES) -> str:
        """:func:`kiln.core.treeview.shape_of` the subtree at ``rel`` (symlinks in ``rel``
        followed, as ``os.scandir`` would), paths relative to it, ``.git`` directories left
        out, symlinks as ``l`` entries never descended: equal to
        :func:`kiln.cmp.fastpath.tree_digest` of the tree extracted to disk. Raises
        TreeTooLarge beyond ``limit`` entries, FileNotFoundError / NotADirectoryError when
        ``rel`` is no directory. Memoised (the tree never changes)."""
        real = self.realpath(rel) if rel else ""
        if real is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", rel)
        if real not in self._children:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", rel)
        known = self._shapes.get((real, limit))
        if known is not None:
            return known
        entries: list[str] = []
        stack = [real]
        skip = len(real) + 1 if real else 0
        while stack:
            current = stack.pop()
            for name, kind in self._children[current]:
                path = _join(current, name)
                if kind == "l":
                    entries.append(shape_entry("l", path[skip:], self._links[path]))
                elif kind == "d":
                    if name in SKIPPED_DIRS:
                        continue
                    entries.append(shape_entry("d", path[skip:]))
                    stack.append(path)
                else:
                    entries.append(shape_entry("f", path[skip:]))
            if len(entries) > limit:
                raise TreeTooLarge(f"more than {limit} paths under {rel or '.'!r}")
        digest = self._shapes[(real, limit)] = shape_of(entries)
        return digest

    # -- contents ------------------------------------------------------------------------

    def read(self, real_rel: str) -> bytes:
        """The bytes of the regular file at ``real_rel`` (symlinks followed if it names one).
        Raises FileNotFoundError or IsADirectoryError as reading it on disk would."""
        entry = self._files.get(real_rel)
        if entry is None:
            real = self.realpath(real_rel)
            entry = self._files.get(real) if real is not None else None
            if entry is None:
                if real is not None and real in self._children:
                    raise IsADirectoryError(errno.EISDIR, "is a directory", real_rel)
                raise FileNotFoundError(errno.ENOENT, "no such file", real_rel)
        return entry.data

    def extract(self, dest: Path, *, only: Callable[[str], bool] | None = None) -> int:
        """Write the tree (or the entries ``only`` accepts, with the directories above them)
        into the existing directory ``dest``; return the bytes of file content written.

        Modes are fixed, as Argo CD's cmp-server writes them: directories 0755, files 0644, or
        0755 when the source set an executable bit (kiln's renderers need no other mode; no
        owner, setuid or sticky bit is ever given). Symlinks are recreated with their targets as
        written (the builder checked none leads outside). Nothing is written through a
        symlink: every directory is opened relative to its parent with ``O_NOFOLLOW`` and
        every file created with ``O_EXCL|O_NOFOLLOW``, so an entry already in ``dest`` (a
        symlink planted there, a file) is a SourceTreeError naming the path, never followed.
        """
        root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        opened: list[tuple[str, int]] = []  # the directories of the current path, opened
        written = 0
        try:
            for path in sorted(self._kinds, key=lambda p: p.split("/")):
                if only is not None and not only(path):
                    continue
                kind = self._kinds[path]
                parts = path.split("/")
                dirs = parts if kind == "d" else parts[:-1]
                keep = 0
                while keep < len(opened) and keep < len(dirs) and opened[keep][0] == dirs[keep]:
                    keep += 1
                while len(opened) > keep:
                    os.close(opened.pop()[1])
                for i in range(keep, len(dirs)):
                    parent = opened[-1][1] if opened else root_fd
                    opened.append((dirs[i], _open_dir(parent, dirs[i], "/".join(parts[:i + 1]))))
                if kind == "d":
                    continue
                parent = opened[-1][1] if opened else root_fd
                if kind == "l":
                    _make_symlink(parent, parts[-1], self._links[path], path)
                else:
                    written += _write_file(parent, parts[-1], self._files[path], path)
        finally:
            for _, fd in opened:
                os.close(fd)
            os.close(root_fd)
        return written


def _open_dir(parent_fd: int, name: str, path: str) -> int:
    """Create (0755) or open the directory ``name`` under ``parent_fd``, never through a
    symlink."""
    created = True
    try:
        os.mkdir(name, DIR_MODE, dir_fd=parent_fd)
    except FileExistsError:
        created = False
    except OSError as exc:
        raise SourceTreeError(path, f"cannot create the directory: {exc.strerror}") from None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise SourceTreeError(path, "refusing to write through the symlink or file already "
                                        "there in the destination") from None
        raise SourceTreeError(path, f"cannot open the directory: {exc.strerror}") from None
    if created:
        os.fchmod(fd, DIR_MODE)  # exactly 0755, whatever the umask
    return fd


def _write_file(parent_fd: int, name: str, entry: TreeFile, path: str) -> int:
    mode = EXEC_MODE if entry.executable else FILE_MODE
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode, dir_fd=parent_fd)
    except FileExistsError:
        raise SourceTreeError(path, "something is already there in the destination "
                                    "(never overwritten or followed)") from None
    except OSError as exc:
        raise SourceTreeError(path, f"cannot create the file: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)
        view = memoryview(entry.data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        raise SourceTreeError(path, f"cannot write the file: {exc.strerror}") from None
    finally:
        os.close(fd)
    return len(entry.data)


def _make_symlink(parent_fd: int, name: str, target: str, path: str) -> None:
    try:
        os.symlink(target, name, dir_fd=parent_fd)
    except FileExistsError:
        raise SourceTreeError(path, "something is already there in the destination "
                                    "(never overwritten or followed)") from None
    except OSError as exc:
        raise SourceTreeError(path, f"cannot create the symlink: {exc.strerror}") from None


class SourceTreeBuilder:
    """Collects entries for a :class:`SourceTree`, refusing each bad one as it is added (and,
    at :meth:`build`, any symlink leading out of the root).

    Each ``add_*`` returns the entry's normalised path. Not thread-safe; one builder per tree.
    """

    def __init__(self) -> None:
        self._kinds: dict[str, str] = {}
        self._files: dict[str, TreeFile] = {}
        self._links: dict[str, str] = {}

    def __len__(self) -> int:
        """Entries so far, directories implied by a path included."""
        return len(self._kinds)

    def add_file(self, name: str, data: bytes, *, executable: bool = False,
                 sha256: str | None = None) -> str:
        """Add a regular file. Its sha256 is computed here, once, unless the caller already
        knows it (``sha256``: the lowercase hex digest of exactly ``data``, e.g. from a memo
        keyed by a git blob id; trusted as given)."""
        path = self._claim(name, "f")
        digest = sha256 if sha256 is not None else hashlib.sha256(data).hexdigest()
        self._files[path] = TreeFile(bytes(data), digest, executable)
        return path

    def add_dir(self, name: str) -> str:
        """Add a directory (naming the root, or a directory already known, is harmless)."""
        return self._claim(name, "d")

    def add_symlink(self, name: str, target: str) -> str:
        """Add a symlink to ``target`` as written. An absolute or empty target, one with a NUL,
        or one that climbs out of the root read lexically is refused now; one that climbs out
        once the symlinks on its way are followed, at :meth:`build`."""
        if not target:
            raise SourceTreeError(name, "the symlink has an empty target")
        if "\x00" in target:
            raise SourceTreeError(name, "the symlink target holds a NUL byte")
        if len(target) >= MAX_PATH_BYTES or _nbytes(target) >= MAX_PATH_BYTES:
            raise SourceTreeError(name, f"the symlink target is longer than "
                                        f"{MAX_PATH_BYTES - 1} bytes")
        if target.startswith("/"):
            raise SourceTreeError(name, f"the symlink target {target!r} is absolute "
                                        "(it leads out of the root)")
        path = normalize_path(name)
        if _climbs_out(path.rpartition("/")[0], target):
            raise SourceTreeError(name, f"the symlink target {target!r} leads out of the root")
        path = self._claim(name, "l")
        self._links[path] = target
        return path

    def _claim(self, name: str, kind: str) -> str:
        path = normalize_path(name)
        if not path:
            if kind == "d":
                return path
            raise SourceTreeError(name, f"a {_KIND_NAMES[kind]} cannot be the root")
        kinds = self._kinds
        existing = kinds.get(path)
        if existing is not None:
            if existing == kind == "d":
                return path
            if existing == kind:
                raise SourceTreeError(name, f"the {_KIND_NAMES[kind]} is named twice")
            raise SourceTreeError(name, f"named as a {_KIND_NAMES[kind]} but already a "
                                        f"{_KIND_NAMES[existing]}")
        end = path.rfind("/")
        while end > 0:
            parent = path[:end]
            above = kinds.get(parent)
            if above == "d":
                break
            if above is not None:
                raise SourceTreeError(name, f"it lies under {parent!r}, a "
                                            f"{_KIND_NAMES[above]}")
            kinds[parent] = "d"
            end = parent.rfind("/")
        kinds[path] = kind
        return path

    def build(self) -> SourceTree:
        """The tree, after checking that no symlink leads out of the root (every symlink on
        the way followed). The builder hands its entries over and starts empty again."""
        for path in self._links:
            if _resolve(self._kinds, self._links, path).escapes:
                raise SourceTreeError(path, f"the symlink target {self._links[path]!r} leads "
                                            "out of the root")
        tree = SourceTree(self._kinds, self._files, self._links)
        self._kinds, self._files, self._links = {}, {}, {}
        return tree


class SourceTreeCache:
    """A thread-safe least-recently-used map from a key (the CMP stream's checksum) to a
    :class:`SourceTree`, bounded by the trees' :attr:`SourceTree.footprint` in bytes.

    One per server; no module-global state. A tree larger than the bound is not kept.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._trees: OrderedDict[str, SourceTree] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._building: dict[str, threading.Event] = {}

    def get(self, key: str) -> SourceTree | None:
        """The tree stored under ``key`` (now the most recently used), or None."""
        with self._lock:
            tree = self._trees.get(key)
            if tree is not None:
                self._trees.move_to_end(key)
            return tree

    def put(self, key: str, tree: SourceTree) -> bool:
        """Store ``tree`` under ``key``, evicting the least recently used trees beyond the
        bound; False when the tree alone exceeds it (nothing stored)."""
        cost = tree.footprint
        with self._lock:
            old = self._trees.pop(key, None)
            if old is not None:
                self._bytes -= old.footprint
            if cost > self.max_bytes:
                return False
            self._trees[key] = tree
            self._bytes += cost
            while self._bytes > self.max_bytes:
                _, evicted = self._trees.popitem(last=False)
                self._bytes -= evicted.footprint
            return True

    def get_or_build(self, key: str, build: Callable[[], SourceTree]) -> tuple[SourceTree, bool]:
        """The tree under ``key``, building and storing it with ``build()`` when absent; True
        when it was already there (or built meanwhile by a concurrent caller).

        Single-flight: concurrent callers with the same key wait for the one building it
        (callers must only share a key when their ``build`` gives the same tree, as for a
        verified checksum). When that build fails, each waiter builds for itself; its
        exception propagates to its own caller only.
        """
        while True:
            with self._lock:
                tree = self._trees.get(key)
                if tree is not None:
                    self._trees.move_to_end(key)
                    return tree, True
                pending = self._building.get(key)
                if pending is None:
                    done = self._building[key] = threading.Event()
                    break
            pending.wait()
            with self._lock:
                tree = self._trees.get(key)
                if tree is not None:
                    return tree, True
            if key not in self._building:  # the build failed, or the tree was too large
                tree = build()
                self.put(key, tree)
                return tree, False
        try:
            tree = build()
            self.put(key, tree)
            return tree, False
        finally:
            with self._lock:
                del self._building[key]
            done.set()

    def __len__(self) -> int:
        """Number of trees held."""
        with self._lock:
            return len(self._trees)

    @property
    def nbytes(self) -> int:
        """Sum of the held trees' footprints."""
        with self._lock:
            return self._bytes


__all__ = ["MAX_NAME_BYTES", "MAX_PATH_BYTES", "MAX_SYMLINK_HOPS", "SourceTree",
           "SourceTreeBuilder", "SourceTreeCache", "SourceTreeError", "TreeFile",
           "normalize_path"]
