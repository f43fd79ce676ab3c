"""Lay a build's closure out in kiln's private build tree, shaped like the source root.

Files are hard-linked when the build tree and the checkout share a filesystem (copied
otherwise): nothing in a build writes to an existing file (kustomize only reads, ``-o`` is
refused, a chart pull creates new files), and the kustomizations kiln rewrites are replaced by
new files, never written through the link.

kustomize then builds the copy: it sees exactly the files kiln hashed into the cache key (an
undeclared read fails loudly instead of serving a stale hit), Helm charts it pulls land in the
copy, and the app's checkout is never written, so renders of one checkout run side by side.
Relative paths, symlinks inside the root and kustomize's load restrictor behave as in the
checkout, because the copy keeps the same layout relative to the source root.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from kiln.plugins.kustomize.walk import Closure, load_kustomization


def mirror_path(closure: Closure, dest: Path, path: Path) -> Path:
    """Where ``path`` (a real path inside the source root) lives in the build tree ``dest``."""
    return dest / path.relative_to(closure.root)


def lay_out(closure: Closure, dest: Path, top_data: Mapping[str, Any] | None,
            helm_config_home: Path | None) -> None:
    """Copy the closure into ``dest``; write ``top_data`` as the app's kustomization if given.

    With ``helm_config_home``, every kustomization that inflates charts and names no
    ``helmGlobals.configHome`` gets that directory (kustomize otherwise points Helm at a
    throw-away home, losing kiln's repositories and credentials).
    """
    parents = {mirror_path(closure, dest, d) for d in closure.dirs}
    parents.update(mirror_path(closure, dest, p).parent for p in closure.files)
    parents.update(mirror_path(closure, dest, p).parent for p in closure.links)
    for directory in sorted(parents):
        os.makedirs(directory, exist_ok=True)
    can_link = True
    for path in sorted(closure.files):
        target = mirror_path(closure, dest, path)
        if can_link:
            try:
                os.link(path, target)
                continue
            except OSError:  # another filesystem, or links refused: copy from now on
                can_link = False
        shutil.copyfile(path, target)
    for link, text in sorted(closure.links.items()):
        target = mirror_path(closure, dest, link)
        if not os.path.lexists(target):
            os.symlink(text, target)
    if top_data is not None:
        _write(mirror_path(closure, dest, closure.top), top_data)
    if helm_config_home is not None:
        for kfile in closure.helm_kustomizations:
            target = mirror_path(closure, dest, kfile)
            data = dict(top_data) if kfile == closure.top and top_data is not None \
                else load_kustomization(target)
            if data.get("helmChartInflationGenerator"):
                continue
            globals_ = dict(data.get("helmGlobals") or {})
            if globals_.get("configHome"):
                continue
            globals_["configHome"] = str(helm_config_home)
            data["helmGlobals"] = globals_
            _write(target, data)


def _write(path: Path, data: Mapping[str, Any]) -> None:
    """Replace ``path`` with a new file: never write through a hard link into the checkout."""
    fresh = path.with_name(f".{path.name}.kiln-new")
    fresh.write_text(yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True,
                                    width=1 << 30), encoding="utf-8")
    os.replace(fresh, path)
