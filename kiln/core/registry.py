"""What plugins register: the Renderer and SecretResolver shapes, and the registries holding them.

The core validates registrations here (unique names, required attributes), so a plugin mistake
is a start-up error naming the plugin rather than a failure in the middle of a render.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from kiln.core.errors import ConfigError, PluginError

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.core.context import RenderContext, SecretContext


@dataclass(frozen=True)
class Inputs:
    """The files a render reads, as a renderer declares them before rendering.

    ``files`` are absolute paths; the core checks each lies inside the app's source root and
    hashes its content into the cache key. ``extra`` is any further JSON-serialisable identity
    (e.g. a remote chart's digest). ``cacheable=False`` turns the cache off for this render, with
    ``reason`` logged (e.g. an unpinned remote base, or secrets decrypted before templating).
    ``verified`` holds the tokens ``RenderContext.verify_file`` returned for encrypted source
    files the renderer checked; the engine hands them to secret resolvers
    (``SecretContext.verified``). They are not part of the cache key (the files are).

    ``located=True`` says the output depends on where the app lives (e.g. Jsonnet's
    ``std.thisFile``): the app's absolute path then enters the key, so another copy of the app
    never hits this entry. ``portable=True`` says ``extra`` is determined by the app's options,
    the input files and the shape of the source tree alone (nothing fetched, no state outside
    the tree), so the CLI's fast path may stand for it by re-checking those.
    """

    files: Sequence[Path] = ()
    extra: Any = None
    cacheable: bool = True
    reason: str = ""
    verified: frozenset[str] = frozenset()
    located: bool = False
    portable: bool = False


@runtime_checkable
class Renderer(Protocol):
    """A renderer turns an app directory into Kubernetes objects."""

    name: str
    version: str
    priority: int
    options_type: type[Any] | None

    def detect(self, app: App) -> bool:
        """Return True when this renderer recognises the app directory (no explicit type set).

        The engine asks renderers by descending ``priority`` and takes the first yes
        (:meth:`kiln.core.engine.Engine.renderer_for`); ``kiln render``, ``kiln cmp discover``
        and ``kiln cmp parameters`` all use that one answer.
        """
        ...

    def tool_version(self, ctx: RenderContext) -> str:
        """Return the external tool's version string ('' when no tool is used).

        Ask binaries through ``ctx.tool_versions.get``: the engine stamps every binary asked
        (resolved path, size, mtime) into the cache key, so a tool replaced in place misses
        even when it reports the same version.
        """
        ...

    def inputs(self, app: App, ctx: RenderContext) -> Inputs:
        """Name every file the render will read; raise InputError for bad or unsafe inputs."""
        ...

    def render(self, app: App, ctx: RenderContext) -> str | list[dict[str, Any]]:
        """Render the app: a YAML/JSON stream or a list of objects (normalised by the core)."""
        ...


@runtime_checkable
class SecretResolver(Protocol):
    """A secret resolver fills references in rendered objects, in memory."""

    name: str
    order: int
    options_type: type[Any] | None

    def wants(self, objects: Sequence[dict[str, Any]], ctx: SecretContext) -> bool:
        """Cheaply tell whether any object holds a reference this resolver handles."""
        ...

    def resolve(self, objects: list[dict[str, Any]], ctx: SecretContext) -> list[dict[str, Any]]:
        """Return the objects with references resolved; register every value with ctx.redactor."""
        ...


_RENDERER_ATTRS = ("name", "version", "priority", "options_type", "detect", "tool_version",
                   "inputs", "render")
_RESOLVER_ATTRS = ("name", "order", "options_type", "wants", "resolve")


@dataclass
class _Registry:
    kind: str
    required: tuple[str, ...]
    items: dict[str, Any] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    current_plugin: str = "?"

    def add(self, item: Any) -> None:
        """Register ``item``; a missing attribute or a duplicate name is a PluginError."""
        missing = [a for a in self.required if not hasattr(item, a)]
        if missing:
            raise PluginError(
                f"plugin {self.current_plugin!r} registered a {self.kind} without "
                f"{', '.join(missing)}"
            )
        name = item.name
        if name in self.items:
            raise PluginError(
                f"{self.kind} {name!r} registered twice (by {self.owners[name]!r} and "
                f"{self.current_plugin!r})"
            )
        self.items[name] = item
        self.owners[name] = self.current_plugin

    def __iter__(self) -> Iterator[str]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, name: object) -> bool:
        return name in self.items

    def owner(self, name: str) -> str:
        """Return the name of the plugin that registered ``name``."""
        return self.owners[name]


class RendererRegistry(_Registry):
    """Renderers by name; iteration order for detection is by descending priority."""

    def __init__(self) -> None:
        super().__init__("renderer", _RENDERER_ATTRS)

    def get(self, name: str) -> Renderer:
        """Return the renderer called ``name`` or raise ConfigError listing the known ones."""
        try:
            return self.items[name]  # type: ignore[no-any-return]
        except KeyError:
            known = ", ".join(sorted(self.items)) or "none"
            raise ConfigError(f"unknown app type {name!r} (known: {known})") from None

    def by_priority(self) -> list[Renderer]:
        """Return renderers in detection order: highest priority first, then by name."""
        return sorted(self.items.values(), key=lambda r: (-r.priority, r.name))


class ResolverRegistry(_Registry):
    """Secret resolvers by name; they run in ascending ``order``."""

    def __init__(self) -> None:
        super().__init__("secret resolver", _RESOLVER_ATTRS)

    def ordered(self) -> list[SecretResolver]:
        """Return resolvers in the order they run."""
        return sorted(self.items.values(), key=lambda r: (r.order, r.name))

    def get(self, name: str) -> SecretResolver:
        """Return the resolver called ``name`` or raise ConfigError."""
        try:
            return self.items[name]  # type: ignore[no-any-return]
        except KeyError:
            raise ConfigError(f"unknown secret resolver {name!r}") from None
