"""What kiln renders for one Argo CD Application source: :class:`AppSpec`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AppSpec:
    """One app to render, as an Argo CD Application (or a PATH argument) describes it.

    ``name`` is the Application's ``metadata.name`` (``<app>/<source>`` when a multi-source
    Application renders several sources; for a PATH argument, the path as given). ``path`` is
    the app directory, POSIX, relative to the repository root (``"."`` is the root).
    ``app_settings`` has kiln.yaml's shape and is APPLICATION level
    (``Engine.load_app(app_settings=..., app_source=origin)``). ``env`` holds the variables
    Argo CD hands the build for this app (``ARGOCD_APP_*``, ``KUBE_VERSION``,
    ``KUBE_API_VERSIONS``, and for a plugin source ``ARGOCD_ENV_*`` and
    ``ARGOCD_APP_PARAMETERS``). ``origin`` says where it was declared, for error lines
    (``apps/web.yaml: Application web``).
    """

    name: str
    path: str
    app_settings: dict[str, Any]
    env: dict[str, str]
    origin: str
