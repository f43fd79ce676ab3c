"""The typed facade over one pluggy PluginManager: loading plugins and calling hooks.

Built-in plugins are registered first, as ordinary plugins. Third-party plugins come from the
``kiln`` entry-point group, loaded one at a time: a broken one is reported as a warning naming
its distribution and the rest still load (``KILN_STRICT_PLUGINS=1`` makes it fatal).
``KILN_DISABLE_PLUGINS=a,b`` blocks plugins by name, built-in or not.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pluggy

from kiln.core import hookspecs
from kiln.core.errors import PluginError
from kiln.core.registry import RendererRegistry, ResolverRegistry

log = logging.getLogger("kiln.plugins")

ENTRY_POINT_GROUP = "kiln"
T = TypeVar("T")
_MISSING = object()

BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("helm", "kiln.plugins.helm"),
    ("kustomize", "kiln.plugins.kustomize"),
    ("jsonnet", "kiln.plugins.jsonnet"),
    ("directory", "kiln.plugins.directory"),
    ("secrets_sops", "kiln.plugins.secrets_sops"),
    ("secrets_vault", "kiln.plugins.secrets_vault"),
    ("external_secrets", "kiln.plugins.external_secrets"),
)
"""(plugin name, module) of every built-in plugin, registered in this order (the order their
declared flags and CMP parameters are listed in; the fallback renderer last)."""


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
                 extra: tuple[object, ...] = (), state_dir: Path | None = None,
                 quiet: bool = False) -> None:
        self.pm = pluggy.PluginManager("kiln")
        self._quiet = quiet  # collect load warnings without logging them (a second, silent load)
        self.pm.add_hookspecs(hookspecs)
        self.warnings: list[str] = []
        self._info: dict[str, PluginInfo] = {}
        self._state_dir = state_dir
        self._memo: dict[str, Any] = {}
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
        from kiln._version import __version__

        for name, module in BUILTIN_PLUGINS:
            if name in self.disabled:
                continue
            self._register(importlib.import_module(module), name, __version__, "kiln", True)

    def _load_entry_points(self) -> None:
        for name, value, dist, version in self._entry_points():
            if name in self.disabled:
                continue
            try:
                plugin = _load_object(value)
                self._register(plugin, name, version, dist, False)
            except Exception as exc:
                message = (f"plugin {name!r} from distribution {dist!r} failed to load: "
                           f"{type(exc).__name__}: {exc}")
                if self._strict:
                    raise PluginError(message) from exc
                self.warnings.append(message)
                if not self._quiet:
                    log.warning("%s", message)

    def _entry_points(self) -> list[list[str]]:
        """(name, value, distribution, version) of each ``kiln`` entry point.

        Scanning every installed distribution costs more than a whole cache hit, so the list is
        kept in the state directory, keyed by the modification times of the ``sys.path``
        directories (installing or removing a distribution changes them).
        """
        memo = self._state_dir / "entry-points.json" if self._state_dir else None
        key = _path_key()
        if memo is not None:
            try:
                cached = json.loads(memo.read_text())
                if cached.get("key") == key:
                    return list(cached["entry_points"])
            except (OSError, ValueError, AttributeError, KeyError):
                pass
        from importlib.metadata import entry_points

        found = [[ep.name, ep.value, ep.dist.name if ep.dist else "unknown distribution",
                  ep.dist.version if ep.dist else ""]
                 for ep in entry_points(group=ENTRY_POINT_GROUP)]
        if memo is not None:
            try:
                memo.parent.mkdir(parents=True, exist_ok=True)
                tmp = memo.with_name(f".{memo.name}.{os.getpid()}")
                tmp.write_text(json.dumps({"key": key, "entry_points": found}))
                os.replace(tmp, memo)
            except OSError as exc:
                log.debug("cannot remember entry points: %s", exc)
        return found

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

    def memo(self, name: str, build: Callable[[], T]) -> T:
        """``build()``'s value, computed once for this set of loaded plugins (for what is
        derived from the declarations alone, e.g. the CMP parameter table)."""
        found = self._memo.get(name, _MISSING)
        if found is _MISSING:
            found = self._memo.setdefault(name, build())
        return found  # type: ignore[no-any-return]

    def has_post_render(self) -> bool:
        """Tell whether any plugin implements ``kiln_post_render``."""
        return bool(self.pm.hook.kiln_post_render.get_hookimpls())

    def post_render(self, app: Any, objects: list[dict[str, Any]]) -> None:
        """Call every ``kiln_post_render`` implementation on ``objects`` (in place)."""
        self.pm.hook.kiln_post_render(app=app, objects=objects)

    def before_apply(self, app: Any, objects: list[dict[str, Any]]) -> None:
        """Call every ``kiln_before_apply`` implementation on ``objects`` (in place)."""
        self.pm.hook.kiln_before_apply(app=app, objects=objects)

    def info(self, name: str) -> PluginInfo | None:
        """The loaded plugin called ``name`` (version and distribution), None if unknown."""
        return self._info.get(name)

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


def _path_key() -> list[list[object]]:
    """Identify the installed distributions cheaply: each ``sys.path`` directory's mtime.

    ``sys.path[0]`` (the script's directory or the working directory, which Python adds for the
    running program) is left out: it is not where distributions are installed, and a busy
    working directory such as /tmp would defeat the memo.
    """
    key: list[list[object]] = []
    for entry in sys.path[1:]:
        try:
            key.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            key.append([entry, None])
    return key


def _load_object(value: str) -> object:
    """Import an entry point's ``module:attr.sub`` target (extras in brackets are ignored)."""
    target = value.split("[", 1)[0].strip()
    module, _, attrs = target.partition(":")
    obj: object = importlib.import_module(module.strip())
    for attr in filter(None, attrs.strip().split(".")):
        obj = getattr(obj, attr)
    return obj
