"""Every hook a kiln plugin can implement.

A plugin is an ordinary module or object carrying functions decorated with ``kiln.hookimpl``.
Hooks are always called with keyword arguments, through the typed facade in
:mod:`kiln.core.plugins`; no code calls ``pm.hook`` directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.core.registry import RendererRegistry, ResolverRegistry

hookspec = pluggy.HookspecMarker("kiln")
hookimpl = pluggy.HookimplMarker("kiln")


@hookspec
def kiln_register_renderers(registry: RendererRegistry) -> None:
    """Register renderers: objects that turn a source directory into Kubernetes manifests.

    Call ``registry.add(renderer)`` once per renderer. A renderer has a unique ``name`` (the value
    of ``type`` in kiln.yaml and ``--type``), a ``version`` and the methods ``inputs`` and
    ``render``; ``priority``, ``options_type`` (a frozen ``msgspec.Struct`` that becomes the
    ``<name>:`` section of kiln.yaml), ``faces``, ``detect`` and ``tool_version`` are optional,
    with the defaults of :class:`kiln.core.registry.RendererBase`. Every member is described by
    :class:`kiln.core.registry.Renderer`. A missing required member or a name registered twice
    is a start-up error.
    """


@hookspec
def kiln_register_secret_resolvers(registry: ResolverRegistry) -> None:
    """Register secret resolvers: objects that fill secret references in after rendering.

    Call ``registry.add(resolver)`` once per resolver. A resolver has a unique ``name``, an
    ``order`` (lower runs first: decryption before placeholder lookup), a cheap ``wants`` check
    and ``resolve``; ``options_type`` (the ``secrets.<name>:`` section of kiln.yaml),
    ``markers``, ``faces`` and the file services ``decrypt_file`` / ``verify_file`` are optional,
    with the defaults of :class:`kiln.core.registry.SecretResolverBase`. Every member is
    described by :class:`kiln.core.registry.SecretResolver`. Resolvers run in memory after the
    cache; what they return is never stored.
    """


@hookspec
def kiln_post_render(app: App, objects: list[dict[str, Any]]) -> None:
    """Adjust rendered objects in place before secrets are resolved (labels, policy checks).

    Runs on every render, after the cache (hit or miss), so a plugin's change of behaviour never
    needs a cache flush. The objects still hold unresolved secret references. Raise a
    ``KilnError`` subclass to reject the render.
    """


@hookspec
def kiln_before_apply(app: App, objects: list[dict[str, Any]]) -> None:
    """Inspect or adjust fully resolved objects in place just before they are applied.

    Objects may hold plaintext secrets here: a hook must not log, store or send them anywhere
    but the cluster. Raise a ``KilnError`` subclass to stop the apply.
    """


@hookspec
def kiln_register_commands(registry: Any) -> None:
    """Add command groups to the ``kiln`` command line.

    Call ``registry.add(command)`` with a ``click`` command or group; it appears under its own
    name (``kiln cmp`` is registered this way by :mod:`kiln.cmp.commands`). Run it through
    :func:`kiln.clikit.run_group` to get kiln's error contract.
    """
