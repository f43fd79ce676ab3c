"""Argo CD Applications as the list of apps to render (``kiln render --applications``).

:func:`load_applications` reads ``Application`` manifests (and the Applications that
``ApplicationSet`` list and git-directory generators produce) from a file or a directory and
turns each into an :class:`AppSpec` saying how kiln renders it, as Argo CD would, for the local
checkout. :func:`specs_for_paths` makes AppSpecs of plain PATH arguments. The field table is in
docs/applications.md.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from pathlib import Path

from kiln.apps.model import AppSpec
from kiln.core.errors import ConfigError, InputError

__all__ = ["AppSpec", "load_applications", "specs_for_paths"]


def load_applications(target: Path, *, repo_root: Path,
                      repo_urls: Sequence[str] = ()) -> list[AppSpec]:
    """Every Application in the file or directory `target` (and those list / git-directory
    ApplicationSets generate), sorted by (path, name). `repo_urls`: the URLs that mean "this
    checkout" (empty: every git source is this checkout). Raises ConfigError naming the file and
    the field (`apps/web.yaml: spec.source.helm.fileParameters: not supported by kiln`) for
    anything kiln cannot honour; never drops a field silently. Malformed YAML is an InputError
    naming the file, and so is a `target` holding no Application or ApplicationSet at all (an
    ApplicationSet generating none is an empty list); two AppSpecs of one name are a
    ConfigError naming both origins."""
    from kiln.apps.application import specs_of_application
    from kiln.apps.reader import argo_objects
    from kiln.apps.source import Checkout

    checkout = Checkout(Path(repo_root), tuple(repo_urls))
    specs: list[AppSpec] = []
    objects = 0
    for found in argo_objects(Path(target)):
        objects += 1
        if found.kind == "Application":
            specs.extend(specs_of_application(found.doc, found.file, checkout))
        else:
            from kiln.apps.appset import specs_of_application_set

            specs.extend(specs_of_application_set(found.doc, found.file, checkout))
    if not objects:
        raise InputError("holds no Argo CD Application or ApplicationSet "
                         "(apiVersion argoproj.io/v1alpha1)", source=str(target))
    seen: dict[str, AppSpec] = {}
    for spec in specs:
        other = seen.get(spec.name)
        if other is not None:
            raise ConfigError(f"Application {spec.name!r} is declared twice: by "
                              f"{other.origin} and by {spec.origin}",
                              source=spec.origin.partition(": ")[0])
        seen[spec.name] = spec
    return sorted(specs, key=lambda s: (s.path, s.name))


def specs_for_paths(paths: Sequence[str], *, repo_root: Path) -> list[AppSpec]:
    """PATH arguments as AppSpecs (name = the path as given, no settings, empty env), in the
    order given. ``path`` is the directory relative to ``repo_root`` (POSIX); a path outside
    ``repo_root`` is an InputError naming it."""
    root = os.path.abspath(repo_root)
    specs: list[AppSpec] = []
    for given in paths:
        absolute = os.path.abspath(given)
        rel = os.path.relpath(absolute, root)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
            raise InputError(f"lies outside the repository {root}", source=given)
        rel_posix = posixpath.normpath(Path(rel).as_posix())
        specs.append(AppSpec(name=given, path=rel_posix, app_settings={}, env={},
                             origin=given))
    return specs
