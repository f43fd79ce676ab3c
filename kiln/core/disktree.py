"""A :class:`kiln.core.treeview.TreeView` over a directory on disk.

The CLI fast path (:mod:`kiln.cmp.fastpath`) re-checks a memo against the app's files through
it, and the CMP server's key memo (:mod:`kiln.cmp.keymemo`) records against the directory it
extracted a request into; the server's in-memory tree answers the same three questions for an
unextracted repository, so one re-check serves both.

Paths handed to a DiskTree are relative to its root and are normalised lexically first (as
``os.path.normpath`` does), so a caller holding ``..`` components gets the same answer the
CLI fast path always gave. Directory resolutions are memoised for the view's lifetime: make
one view per check, never keep one across changes on disk.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from kiln.core.digest import file_digest as _file_digest
from kiln.core.errors import InputError
from kiln.core.treeview import MAX_TREE_ENTRIES, SKIPPED_DIRS, TreeTooLarge, shape_entry, shape_of


class DiskTree:
    """The tree under ``root`` as the key checks read it (see :class:`TreeView`)."""

    def __init__(self, root: Path | str) -> None:
        self.root = os.path.abspath(root)
        self.real_root = os.path.realpath(self.root)
        self._prefix = self.real_root.rstrip(os.sep) + os.sep
        self._dirs: dict[str, str | None] = {}

    def _absolute(self, rel: str) -> str:
        return os.path.normpath(os.path.join(self.root, rel)) if rel else self.root

    def _real_dir(self, directory: str) -> str | None:
        try:
            return self._dirs[directory]
        except KeyError:
            pass
        try:
            real: str | None = os.path.realpath(directory, strict=True)
        except (OSError, RuntimeError):
            real = None
        self._dirs[directory] = real
        return real

    def _inside(self, real: str) -> str | None:
        if real == self.real_root:
            return ""
        if real.startswith(self._prefix):
            return real[len(self._prefix):]
        return None

    def realpath(self, rel: str) -> str | None:
        """``rel`` with every symlink followed: the real path relative to the root, or None
        when it leaves the root, loops, or a component does not exist."""
        path = self._absolute(rel)
        if path == self.root:
            return "" if os.path.isdir(self.real_root) else None
        parent, name = os.path.split(path)
        real_parent = self._real_dir(parent)
        if real_parent is None:
            return None
        real = os.path.join(real_parent, name)
        try:
            mode = os.lstat(real).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            try:
                real = os.path.realpath(real, strict=True)
            except (OSError, RuntimeError):
                return None
        return self._inside(real)

    def escapes(self, rel: str) -> bool:
        """True when ``rel`` resolves (existing or not) to a path outside the root; False when
        it stays inside, e.g. a missing file in the tree. Says why :meth:`realpath` gave None."""
        path = self._absolute(rel)
        parent, name = os.path.split(path)
        real = os.path.join(os.path.realpath(parent), name)
        if os.path.islink(real):
            real = os.path.realpath(real)
        return self._inside(real) is None

    def file_digest(self, real_rel: str) -> str | None:
        """The sha256 of the regular file at ``real_rel`` (by :func:`kiln.core.digest.
        file_digest`), or None when it is not a readable regular file."""
        path = os.path.join(self.real_root, real_rel) if real_rel else self.real_root
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                return None  # a directory, a FIFO (opening it would block), a device
            return _file_digest(path)
        except (OSError, InputError):
            return None

    def shape_digest(self, rel: str = "", limit: int = MAX_TREE_ENTRIES) -> str:
        """:func:`tree_digest` of the subtree at ``rel``. Raises TreeTooLarge beyond
        ``limit`` entries (and FileNotFoundError when ``rel`` is not a directory)."""
        return tree_digest(Path(self._absolute(rel)), limit)


def tree_digest(root: Path | str, limit: int = MAX_TREE_ENTRIES) -> str:
    """sha256 over every file and directory path under ``root`` (``.git`` skipped) and every
    symlink's target: changes when anything is added, removed, renamed or retargeted, not when
    contents change. A tree of more than ``limit`` paths raises TreeTooLarge (walking it would
    cost more than the memo saves)."""
    entries: list[str] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            for entry in it:
                path = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_symlink():
                    entries.append(shape_entry("l", path, os.readlink(entry.path)))
                elif entry.is_dir():
                    if entry.name in SKIPPED_DIRS:
                        continue
                    entries.append(shape_entry("d", path))
                    stack.append(path)
                else:
                    entries.append(shape_entry("f", path))
        if len(entries) > limit:
            raise TreeTooLarge(f"more than {limit} paths under {root}")
    return shape_of(entries)


__all__ = ["DiskTree", "tree_digest"]
