"""A read-only view of a source tree, on disk or in memory, as the key checks need it.

The fast-path memo (:mod:`kiln.cmp.fastpath`) re-checks every part of a cache key against the
app's files; the CMP server (:mod:`kiln.cmp.server`) does the same against a repository it
holds in memory, unextracted. Both ask a :class:`TreeView` three things: where a path really
leads (symlinks followed, never out of the root), the sha256 of a file, and the *shape* of a
subtree (every path and symlink target, not contents), which must be the same for a tree on
disk and the same tree in memory.

Paths are POSIX, relative to the view's root, without ``.`` or ``..`` components.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Protocol

SKIPPED_DIRS = frozenset({".git"})
"""Directories the shape leaves out (with everything under them)."""
MAX_TREE_ENTRIES = 20_000
"""Largest tree (files, directories and symlinks) whose shape is worth computing."""


class TreeTooLarge(ValueError):
    """The tree has more paths than its shape is worth computing for."""


class TreeView(Protocol):
    """What the key checks read from a source tree."""

    def realpath(self, rel: str) -> str | None:
        """``rel`` with every symlink in it followed (relative targets resolved against the
        link's directory): the real path relative to the root, or None when it leaves the
        root, loops, or a component does not exist."""
        ...

    def file_digest(self, real_rel: str) -> str | None:
        """The lowercase hex sha256 of the regular file at ``real_rel`` (a path
        :meth:`realpath` returned), or None when it is not a readable regular file."""
        ...

    def shape_digest(self, rel: str = "", limit: int = MAX_TREE_ENTRIES) -> str:
        """:func:`shape_of` the subtree at ``rel`` (``""``: the whole tree), its paths taken
        relative to it. Raises TreeTooLarge beyond ``limit`` entries."""
        ...


def shape_entry(kind: str, path: str, target: str = "") -> str:
    """One entry of a shape: ``f "path"`` for a file, ``d "path"`` for a directory,
    ``l "path" "target"`` for a symlink (its target as written, never followed). Names are
    JSON-quoted, so no name (a newline in it, say) can pass for two entries."""
    quoted = json.dumps(path, ensure_ascii=False)
    if kind == "l":
        return f"l {quoted} {json.dumps(target, ensure_ascii=False)}"
    return f"{kind} {quoted}"


def shape_of(entries: Iterable[str]) -> str:
    """sha256 of the sorted :func:`shape_entry` lines: changes when a path is added, removed,
    renamed or retargeted, never when a file's content changes."""
    return hashlib.sha256("\n".join(sorted(entries)).encode("utf-8", "surrogateescape")
                          ).hexdigest()


__all__ = ["MAX_TREE_ENTRIES", "SKIPPED_DIRS", "TreeTooLarge", "TreeView", "shape_entry",
           "shape_of"]
