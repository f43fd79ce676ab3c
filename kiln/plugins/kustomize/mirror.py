"""Lay a build's closure out in kiln's private build tree, shaped like the source root.

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
    for directory in sorted(closure.dirs):
        mirror_path(closure, dest, directory).mkdir(parents=True, exist_ok=True)
    for path in sorted(closure.files):
        target = mirror_path(closure, dest, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    for link, text in sorted(closure.links.items()):
        target = mirror_path(closure, dest, link)
        target.parent.mkdir(parents=True, exist_ok=True)
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
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True,
                                   width=1 << 30), encoding="utf-8")
