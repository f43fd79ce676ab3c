"""Decide whether kiln can render a directory, the way Argo CD detects an app's type.

Only the directory's own entries count (as in Argo CD's detection): a ``kiln.yaml``, a
kustomization, a ``Chart.yaml``, a ``*.jsonnet`` file, or a YAML/JSON file holding a
Kubernetes object (``apiVersion`` and ``kind``).
"""

from __future__ import annotations

import re
from pathlib import Path

APP_FILE = "kiln.yaml"
KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")
CHART = "Chart.yaml"
MANIFEST_EXTENSIONS = (".yaml", ".yml", ".json")
SNIFF_BYTES = 1 << 20
_API_VERSION = re.compile(rb"""(?:^|[\s{,'"])apiVersion["']?\s*:""")
_KIND = re.compile(rb"""(?:^|[\s{,'"])kind["']?\s*:""")


def detect_kind(app_dir: Path) -> str | None:
    """The kind of app in ``app_dir``: ``kiln.yaml``, ``kustomize``, ``helm``, ``jsonnet``,
    ``directory``, or None when kiln finds nothing to render there."""
    if not app_dir.is_dir():
        return None
    names = {entry.name for entry in app_dir.iterdir()}
    if APP_FILE in names:
        return APP_FILE
    if any(name in names for name in KUSTOMIZATIONS):
        return "kustomize"
    if CHART in names:
        return "helm"
    if any(name.endswith(".jsonnet") and (app_dir / name).is_file() for name in names):
        return "jsonnet"
    for name in sorted(names):
        if name.endswith(MANIFEST_EXTENSIONS) and _holds_object(app_dir / name):
            return "directory"
    return None


def kustomization_file(app_dir: Path) -> Path | None:
    """The kustomization file in ``app_dir``, if any (Argo CD's three accepted names)."""
    for name in KUSTOMIZATIONS:
        if (app_dir / name).is_file():
            return app_dir / name
    return None


def _holds_object(path: Path) -> bool:
    """True when the file's first MiB names both an ``apiVersion`` and a ``kind``."""
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return False
    return bool(_API_VERSION.search(head) and _KIND.search(head))
