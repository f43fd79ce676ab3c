"""Confine file access to an app's source root.

Every path a renderer reads goes through :func:`confine` (or a :class:`Confiner` when checking
many files), which resolves symlinks first, so a ``../`` path, an absolute path or a symlink
pointing out of the root is refused, as Argo CD refuses out-of-bounds symlinks and Flux joins
paths securely. It also holds the one rule for where kiln's cache lives
(:func:`default_cache_dir`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kiln.core.errors import InputError


def default_cache_dir(env: Mapping[str, str]) -> Path:
    """kiln's one cache-directory rule: ``$KILN_CACHE_DIR``, else ``$XDG_CACHE_HOME/kiln``,
    else ``~/.cache/kiln`` (stdlib only, so the import-light fast path can share it)."""
    if env.get("KILN_CACHE_DIR"):
        return Path(env["KILN_CACHE_DIR"])
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kiln"


class Confiner:
    """Resolve paths and refuse those outside ``root``; directory resolutions are memoised.

    Resolving a file costs one ``lstat`` once its directory has been resolved, so checking every
    file of an app stays cheap. Use one Confiner per render: the memo assumes directories do not
    change while it lives.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = str(root)
        self.real_root = os.path.realpath(root)
        self._prefix = self.real_root.rstrip(os.sep) + os.sep
        self._dirs: dict[str, str] = {}

    def _real_dir(self, directory: str) -> str:
        real = self._dirs.get(directory)
        if real is None:
            real = self._dirs[directory] = os.path.realpath(directory)
        return real

    def resolve(self, path: Path | str) -> str:
        """Return the real path of ``path`` as a string, or raise InputError if outside root."""
        absolute = os.path.abspath(path)
        parent, name = os.path.split(absolute)
        candidate = os.path.join(self._real_dir(parent), name)
        real = os.path.realpath(candidate) if os.path.islink(candidate) else candidate
        if real != self.real_root and not real.startswith(self._prefix):
            how = "resolves" if real != absolute else "lies"
            raise InputError(f"{how} outside the source root {self.root}", source=str(path))
        return real

    def __call__(self, path: Path | str) -> Path:
        """Return the real path of ``path``, or raise InputError if it leaves the root."""
        return Path(self.resolve(path))


def relative_to(path: str, directory: str) -> str:
    """``path`` relative to ``directory`` (both absolute), by string when it lies inside."""
    prefix = directory.rstrip(os.sep) + os.sep
    if path.startswith(prefix):
        return path[len(prefix):]
    return os.path.relpath(path, directory)


def confine(path: Path | str, root: Path, *, what: str = "file") -> Path:
    """Return ``path`` with symlinks resolved, or raise InputError if it leaves ``root``."""
    try:
        return Confiner(root)(path)
    except InputError as exc:
        raise InputError(f"{what} {exc.message}", source=exc.source) from None


def join_inside(base: Path, relative: str, root: Path, *, what: str = "file") -> Path:
    """Join an option path to ``base`` (the app dir) and confine the result to ``root``."""
    if not relative:
        raise InputError(f"empty {what} path", source=str(base))
    return confine(base / relative, root, what=what)


def read_bytes_capped(path: Path, limit: int) -> bytes:
    """Read a file, refusing one larger than ``limit`` bytes with an InputError naming it."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise InputError("no such file", source=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a file", source=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=str(path)) from None
    if len(data) > limit:
        raise InputError(f"larger than the {limit}-byte limit", source=str(path))
    return data
