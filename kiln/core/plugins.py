"""The typed facade over one pluggy PluginManager: loading plugins and calling hooks.

Built-in plugins are registered first, as ordinary plugins. Third-party plugins come from the
``kiln`` entry-point group, loaded one at a time: a broken one is reported as a warning naming
its distribution and the rest still load (``KILN_STRICT_PLUGINS=1`` makes it fatal).
``KILN_DISABLE_PLUGINS=a,b`` blocks plugins by name, built-in or not.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from kiln.core import hookspecs
from kiln.core.errors import PluginError
from kiln.core.registry import RendererRegistry, ResolverRegistry

log = logging.getLogger("kiln.plugins")

ENTRY_POINT_GROUP = "kiln"

BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("directory", "kiln.plugins.directory"),
    ("secrets_sops", "kiln.plugins.secrets_sops"),
)
"""(plugin name, module) of every built-in plugin, registered in this order."""


@dataclass
class PluginInfo:
    """What ``kiln plugins`` shows about one loaded plugin."""

    name: str
    version: str
    distribution: str
    builtin: bool
    registers: list[str] = field(default_factory=list)


class Plugins:
    """One PluginManager with kiln's hookspecs, and typed access to what plugins register."""

    def __init__(self, env: Mapping[str, str], *, entry_points: bool = True,
                 extra: tuple[object, ...] = ()) -> None:
        self.pm = pluggy.PluginManager("kiln")
        self.pm.add_hookspecs(hookspecs)
        self.warnings: list[str] = []
        self._info: dict[str, PluginInfo] = {}
        self._strict = env.get("KILN_STRICT_PLUGINS", "") not in ("", "0", "false")
        disabled = env.get("KILN_DISABLE_PLUGINS", "")
        self.disabled = {n.strip() for n in disabled.split(",") if n.strip()}
        for name in self.disabled:
            self.pm.set_blocked(name)
        self._load_builtins()
        for plugin in extra:
            name = getattr(plugin, "__name__", None) or type(plugin).__name__
            self._register(plugin, name, "", "(library)", builtin=False)
        if entry_points:
            self._load_entry_points()
        self._renderers: RendererRegistry | None = None
        self._resolvers: ResolverRegistry | None = None

    def _register(self, plugin: object, name: str, version: str, dist: str,
                  builtin: bool) -> None:
        if name in self.disabled:
            log.debug("plugin %s disabled by KILN_DISABLE_PLUGINS", name)
            return
        if self.pm.has_plugin(name):
            raise PluginError(f"two plugins are called {name!r} (second from {dist})")
        self.pm.register(plugin, name=name)
        self._info[name] = PluginInfo(name, version, dist, builtin)

    def _load_builtins(self) -> None:
        from kiln import __version__

        for name, module in BUILTIN_PLUGINS:
            if name in self.disabled:
                continue
            self._register(importlib.import_module(module), name, __version__, "kiln", True)

    def _load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else "unknown distribution"
            version = ep.dist.version if ep.dist else ""
            if ep.name in self.disabled:
                continue
            try:
                plugin = ep.load()
                self._register(plugin, ep.name, version, dist, False)
            except Exception as exc:  # noqa: BLE001 - a third-party plugin may raise anything
                message = (f"plugin {ep.name!r} from distribution {dist!r} failed to load: "
                           f"{type(exc).__name__}: {exc}")
                if self._strict:
                    raise PluginError(message) from exc
                self.warnings.append(message)
                log.warning("%s", message)

    def _call_registration(self, hook_name: str, registry: Any) -> None:
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            registry.current_plugin = impl.plugin_name
            try:
                impl.function(registry=registry)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} failed in {hook_name}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        registry.current_plugin = "?"

    @property
    def renderers(self) -> RendererRegistry:
        """Every registered renderer (the registration hook runs once, on first use)."""
        if self._renderers is None:
            registry = RendererRegistry()
            self._call_registration("kiln_register_renderers", registry)
            self._renderers = registry
        return self._renderers

    @property
    def resolvers(self) -> ResolverRegistry:
        """Every registered secret resolver (registered once, on first use)."""
        if self._resolvers is None:
            registry = ResolverRegistry()
            self._call_registration("kiln_register_secret_resolvers", registry)
            self._resolvers = registry
        return self._resolvers

    def has_post_render(self) -> bool:
        """Tell whether any plugin implements ``kiln_post_render``."""
        return bool(self.pm.hook.kiln_post_render.get_hookimpls())

    def post_render(self, app: Any, objects: list[dict[str, Any]]) -> None:
        """Call every ``kiln_post_render`` implementation on ``objects`` (in place)."""
        self.pm.hook.kiln_post_render(app=app, objects=objects)

    def before_apply(self, app: Any, objects: list[dict[str, Any]]) -> None:
        """Call every ``kiln_before_apply`` implementation on ``objects`` (in place)."""
        self.pm.hook.kiln_before_apply(app=app, objects=objects)

    def describe(self) -> list[PluginInfo]:
        """Return every loaded plugin with what it registers."""
        registries = (("renderer", self.renderers), ("secret resolver", self.resolvers))
        infos = {name: PluginInfo(i.name, i.version, i.distribution, i.builtin)
                 for name, i in self._info.items()}
        for kind, registry in registries:
            for item in registry:
                owner = registry.owner(item)
                if owner in infos:
                    infos[owner].registers.append(f"{kind} {item}")
        for name, info in infos.items():
            plugin = self.pm.get_plugin(name)
            for hook in ("kiln_post_render", "kiln_before_apply"):
                if plugin is not None and hasattr(plugin, hook):
                    info.registers.append(f"hook {hook}")
        return list(infos.values())
