"""Where Jsonnet imports are looked for, and the one resolver both the scan and the evaluation use.

The search follows go-jsonnet's file importer: first the importing file's directory, then the
JPATH with the right-most directory winning. kiln's JPATH joins Argo CD's (the app directory,
then ``libs`` relative to the source root) with Tanka's conventions (the project's ``lib/`` and
``vendor/``, where the project root is the nearest directory holding ``jsonnetfile.json`` or
``tkrc.yaml``): ``[<project>/vendor, <app>/vendor, <project>/lib, <app>, *libs]``. Every file
found must lie inside the source root (symlinks resolved), so no import reads outside it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from kiln.core.errors import InputError
from kiln.core.paths import confine, join_inside

PROJECT_MARKERS = ("jsonnetfile.json", "tkrc.yaml")


def project_root(app_dir: Path, source_root: Path) -> Path:
    """Tanka's project root: the nearest directory from ``app_dir`` up to the source root holding
    ``jsonnetfile.json`` or ``tkrc.yaml``; ``app_dir`` itself when there is none."""
    for candidate in (app_dir, *app_dir.parents):
        if any((candidate / marker).is_file() for marker in PROJECT_MARKERS):
            return candidate
        if candidate == source_root:
            break
    return app_dir


def build_jpath(app_dir: Path, source_root: Path, libs: Iterable[str]) -> list[Path]:
    """Return the JPATH (right-most wins): conventions that exist, the app directory, then libs.

    A ``libs`` entry is relative to the source root; one that is missing, not a directory or
    outside the source root is an InputError naming it.
    """
    project = project_root(app_dir, source_root)
    conventional = [project / "vendor", app_dir / "vendor", project / "lib"]
    entries = [d for d in conventional if d.is_dir()]
    entries.append(app_dir)
    for lib in libs:
        path = join_inside(source_root, lib, source_root, what="jsonnet lib directory")
        if not path.is_dir():
            raise InputError("jsonnet lib directory does not exist", source=str(source_root / lib))
        entries.append(Path(os.path.normpath(source_root / lib)))
    ordered: list[Path] = []
    for entry in reversed(entries):  # keep each directory at its right-most (winning) place
        if entry not in ordered:
            ordered.append(entry)
    for directory in ordered:
        confine(directory, source_root, what="JPATH directory")
    return list(reversed(ordered))


class Resolver:
    """Resolve ``import``/``importstr``/``importbin`` paths the way go-jsonnet's importer does,
    confined to ``source_root``. Answers are memoised per (importing directory, path)."""

    def __init__(self, source_root: Path, jpath: Sequence[Path]) -> None:
        self.source_root = source_root
        self.jpath = [str(p) for p in jpath]
        self._memo: dict[tuple[str, str], str | None] = {}
        self._real_root = os.path.realpath(source_root)
        self._real_dirs: dict[str, str] = {}

    def _inside(self, path: str) -> bool:
        """Tell whether ``path`` (an existing file) resolves inside the source root.

        Same answer as :func:`kiln.core.paths.confine`, with each directory's real path
        memoised, so a library of a thousand files costs a thousand ``lstat`` calls, not a
        full ``realpath`` each.
        """
        directory, name = os.path.split(path)
        real_dir = self._real_dirs.get(directory)
        if real_dir is None:
            real_dir = self._real_dirs[directory] = os.path.realpath(directory)
        real = os.path.join(real_dir, name)
        if os.path.islink(real):
            real = os.path.realpath(real)
        return real == self._real_root or real.startswith(self._real_root.rstrip("/") + "/")

    def resolve(self, importer_dir: str, imported: str, *, where: str = "") -> str | None:
        """Return the normalised absolute path ``imported`` names from ``importer_dir``, or None
        when no search directory holds it. A file found outside the source root (by path or
        through a symlink) is an InputError naming ``where`` (the importing file and line)."""
        key = (importer_dir, imported)
        if key in self._memo:
            return self._memo[key]
        found: str | None = None
        if not imported:
            raise InputError("empty import path", source=where or None)
        if os.path.isabs(imported):
            candidates = [imported]
        else:
            candidates = [os.path.join(importer_dir, imported)]
            candidates.extend(os.path.join(d, imported) for d in reversed(self.jpath))
        for candidate in candidates:
            path = os.path.normpath(candidate)
            if os.path.isfile(path):
                if not self._inside(path):
                    try:  # for confine's wording (lies / resolves outside)
                        confine(path, self.source_root, what="import")
                    except InputError as exc:
                        raise InputError(f"import {imported!r}: {exc.message}",
                                         source=where or exc.source) from None
                    raise InputError(f"import {imported!r}: outside the source root",
                                     source=where or path)
                found = path
                break
        self._memo[key] = found
        return found

    def search_dirs(self, importer_dir: str) -> list[str]:
        """The directories searched for a relative import from ``importer_dir``, in order."""
        ordered = [importer_dir, *reversed(self.jpath)]
        return [d for i, d in enumerate(ordered) if d not in ordered[:i]]
