"""Which renderer an app directory gets, asked of the engine's one detection.

``kiln render``, ``kiln generate``, ``kiln cmp discover`` and ``kiln cmp parameters`` all load
the app the same way (its kiln.yaml under Argo CD's plugin environment) and ask
:meth:`kiln.core.engine.Engine.renderer_for`: an explicit ``type`` wins, else the renderers'
``detect()`` in descending priority, which follows Argo CD's order (a kustomization wins over a
``Chart.yaml``, then a ``*.jsonnet`` entry file, else a plain directory).

Discovery only claims what kiln can render: the detected renderer's declared rule
(:class:`kiln.core.faces.Discovery`) decides. The plain-directory fallback declares that one of
the files it would read must hold a Kubernetes object (``apiVersion`` and ``kind``); a
``kiln.yaml`` or an explicit ``type`` claims any app.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.core.faces import faces_of

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.core.engine import Engine
    from kiln.core.registry import Renderer

APP_FILE = "kiln.yaml"
SNIFF_BYTES = 1 << 20
MAX_SNIFFED = 1000
"""Most files discovery reads looking for a Kubernetes object in a plain directory."""
_API_VERSION = re.compile(rb"""(?:^|[\s{,'"])apiVersion["']?\s*:""")
_KIND = re.compile(rb"""(?:^|[\s{,'"])kind["']?\s*:""")


@dataclass(frozen=True)
class Detection:
    """The app as ``kiln generate`` would load it, and the renderer the engine picked."""

    engine: Engine
    app: App
    renderer: Renderer

    @property
    def kind(self) -> str:
        """The renderer's name (``helm``, ``kustomize``, ``jsonnet``, ``directory``...)."""
        return self.renderer.name


def detect(app_dir: Path | str, env: Mapping[str, str],
           engine: Engine | None = None) -> Detection:
    """Load the app in ``app_dir`` under the CMP environment ``env`` and ask the engine which
    renderer it gets. Raises ConfigError/InputError for a bad kiln.yaml, parameter or type."""
    from kiln.cmp.environment import load_app_from_environment
    from kiln.core.engine import Engine

    engine = engine or Engine(env=env)
    app = load_app_from_environment(engine, Path(os.path.abspath(app_dir)), env)
    return Detection(engine, app, engine.renderer_for(app))


def discover(app_dir: Path | str, env: Mapping[str, str],
             engine: Engine | None = None) -> str | None:
    """The kind kiln renders ``app_dir`` as, or None when there is nothing for kiln there.

    The detected renderer's declared :class:`kiln.core.faces.Discovery` decides (none
    declared: detection alone claims the app); an explicit ``type`` or a ``kiln.yaml`` always
    claims it. A missing directory is None. Raises like :func:`detect` for a bad app spec.
    """
    if not Path(app_dir).is_dir():
        return None
    found = detect(app_dir, env, engine)
    rule = faces_of(found.renderer, found.engine.plugins.renderers).discovery
    if rule is None or found.app.type or (found.app.path / APP_FILE).is_file():
        return found.kind
    if rule.globs and _any_match(found.app.path, rule.globs):
        return found.kind
    if rule.objects:
        ctx = found.engine.render_context(secrets=False)
        files = found.renderer.inputs(found.app, ctx).files
        if any(_holds_object(Path(f)) for f in files[:MAX_SNIFFED]):
            return found.kind
    return None


def _any_match(app_dir: Path, globs: tuple[str, ...]) -> bool:
    """True when a file directly in ``app_dir`` matches one of ``globs``."""
    try:
        names = [entry.name for entry in app_dir.iterdir() if entry.is_file()]
    except OSError:
        return False
    return any(fnmatch.fnmatchcase(name, glob) for name in names for glob in globs)


def _holds_object(path: Path) -> bool:
    """True when the file's first MiB names both an ``apiVersion`` and a ``kind``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return False
    return bool(_API_VERSION.search(head) and _KIND.search(head))
