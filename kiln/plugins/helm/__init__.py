"""The Helm renderer plugin: exact ``helm template`` output with Argo CD's Helm options.

Modules: :mod:`.options` (the ``helm:`` section), :mod:`.command` (the helm binary, its private
homes and the ``helm template`` command line, shared with other plugins), :mod:`.values`
(value files, parameters), :mod:`.chartfiles` (what a local chart consists of),
:mod:`.remote` (remote chart references, credentials), :mod:`.store` (the shared chart
store, imported only when a remote chart or a dependency build needs it) and :mod:`.renderer`.
"""

from __future__ import annotations

from kiln.core.hookspecs import hookimpl
from kiln.core.registry import RendererRegistry
from kiln.plugins.helm.renderer import HelmRenderer

__all__ = ["HelmRenderer"]


@hookimpl
def kiln_register_renderers(registry: RendererRegistry) -> None:
    """Register the Helm renderer."""
    registry.add(HelmRenderer())
