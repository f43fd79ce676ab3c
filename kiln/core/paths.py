"""Confine file access to an app's source root.

Every path a renderer reads goes through :func:`confine`, which resolves symlinks first, so a
``../`` path, an absolute path or a symlink pointing out of the root is refused, as Argo CD
refuses out-of-bounds symlinks and Flux joins paths securely.
"""

from __future__ import annotations

import os
from pathlib import Path

from kiln.core.errors import InputError


def confine(path: Path | str, root: Path, *, what: str = "file") -> Path:
    """Return ``path`` with symlinks resolved, or raise InputError if it leaves ``root``."""
    real = Path(os.path.realpath(path))
    real_root = Path(os.path.realpath(root))
    if real != real_root and real_root not in real.parents:
        shown = str(path)
        if Path(path).is_symlink() or os.path.realpath(path) != os.path.abspath(path):
            raise InputError(f"{what} resolves outside the source root {root}", source=shown)
        raise InputError(f"{what} lies outside the source root {root}", source=shown)
    return real


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
