"""What plugins register: the Renderer and SecretResolver shapes, and the registries holding them.

The core validates registrations here (unique names, required attributes), so a plugin mistake
is a start-up error naming the plugin rather than a failure in the middle of a render.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kiln.core.errors import ConfigError, PluginError

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.core.context import ChartRequest, RenderContext, SecretContext
    from kiln.core.secrets import StoreBackend


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


class Renderer(Protocol):
    """A renderer turns an app directory into Kubernetes objects.

    Every member the engine (or a face such as the CLI's fast path) uses is listed here; the
    ones :class:`RendererBase` gives a default for are optional, the others a registration
    must have (:data:`RENDERER_REQUIRED`).
    """

    name: str
    version: str
    priority: int
    options_type: type[Any] | None
    faces: Any
    """Declared faces (CLI flags, CMP parameters, discovery, tools): see "Declaring flags and
    parameters" in docs/plugins.md. None: only the generic ones."""

    def detect(self, app: App) -> bool:
        """Return True when this renderer recognises the app directory (no explicit type set).

        The engine asks renderers by descending ``priority`` and takes the first yes
        (:meth:`RendererRegistry.detect_for`); ``kiln render``, ``kiln cmp discover`` and
        ``kiln cmp parameters`` all use that one answer.
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

    def current_parameters(self, app: App, ctx: RenderContext) -> Mapping[str, Any]:
        """What ``kiln cmp parameters`` shows for ``app`` beyond the declared parameters:
        ``{parameter name: current value}``, read from the app's files without running a tool
        (the names must be parameters this renderer declares)."""
        ...

    def chart_app(self, request: ChartRequest) -> App | None:
        """The app that renders ``request``'s chart (``RenderContext.render_chart``, how
        jsonnet's ``helmTemplate`` reaches a chart renderer: first answer by priority wins);
        None when this renderer renders no charts."""
        ...


class SecretResolver(Protocol):
    """A secret resolver fills references in rendered objects, in memory.

    Members :class:`SecretResolverBase` gives a default for are optional; the others a
    registration must have (:data:`RESOLVER_REQUIRED`).
    """

    name: str
    order: int
    options_type: type[Any] | None
    markers: Sequence[str] | None
    """Text whose absence from the rendered YAML stream proves the resolver has nothing to do,
    whatever its configuration: a promise that lets the engine skip ``wants`` on a cache hit and
    lets the fast path memoise a render without asking. None: no such promise (``wants`` is
    asked every time; see "Capabilities" in docs/plugins.md for what the fast path then does)."""
    faces: Any
    """Declared faces (see :attr:`Renderer.faces`)."""

    def wants(self, objects: Sequence[dict[str, Any]], ctx: SecretContext) -> bool:
        """Cheaply tell whether any object holds a reference this resolver handles."""
        ...

    def resolve(self, objects: list[dict[str, Any]], ctx: SecretContext) -> list[dict[str, Any]]:
        """Return the objects with references resolved; register every value with ctx.redactor."""
        ...

    def decrypt_file(self, data: bytes, name: str, ctx: SecretContext, *,
                     fmt: str | None = None) -> bytes | None:
        """Decrypt a whole source file in memory for a renderer (``RenderContext.decrypt_file``);
        None when ``data`` is not this resolver's kind of file."""
        ...

    def verify_file(self, data: bytes, name: str, ctx: SecretContext, *,
                    fmt: str | None = None) -> Sequence[str] | None:
        """Check an encrypted source file's integrity for a renderer
        (``RenderContext.verify_file``): opaque tokens of what was verified, None when ``data``
        is not this resolver's kind of file."""
        ...

    def tool_version(self, ctx: RenderContext) -> str:
        """The external tool this resolver runs, as ``kiln --version`` lists it ('' for none)."""
        ...

    def backend_for_store(self, provider: str, spec: Mapping[str, Any], ctx: SecretContext
                          ) -> StoreBackend | None:
        """A backend for an External Secrets store of ``provider`` described by ``spec``
        (``SecretContext.backend_for``: first answer wins); None when not this resolver's."""
        ...


class RendererBase:
    """Defaults for a renderer's optional members; a plugin's renderer may inherit them.

    A subclass sets ``name`` and ``version`` and defines ``inputs`` and ``render``.
    """

    priority: int = 0
    options_type: type[Any] | None = None
    faces: Any = None

    def detect(self, app: App) -> bool:
        """Never claims a directory: the app must name this renderer's ``type``."""
        return False

    def tool_version(self, ctx: RenderContext) -> str:
        """No external tool: ''."""
        return ""

    def chart_app(self, request: ChartRequest) -> App | None:
        """Renders no charts: None."""
        return None

    def current_parameters(self, app: App, ctx: RenderContext) -> Mapping[str, Any]:
        """Nothing read from files: {}."""
        return {}


class SecretResolverBase:
    """Defaults for a resolver's optional members; a plugin's resolver may inherit them.

    A subclass sets ``name`` and ``order`` and defines ``wants`` and ``resolve``.
    """

    options_type: type[Any] | None = None
    markers: Sequence[str] | None = None
    faces: Any = None

    def decrypt_file(self, data: bytes, name: str, ctx: SecretContext, *,
                     fmt: str | None = None) -> bytes | None:
        """Decrypts no file: None."""
        return None

    def verify_file(self, data: bytes, name: str, ctx: SecretContext, *,
                    fmt: str | None = None) -> Sequence[str] | None:
        """Verifies no file: None."""
        return None

    def tool_version(self, ctx: RenderContext) -> str:
        """No external tool: ''."""
        return ""

    def backend_for_store(self, provider: str, spec: Mapping[str, Any], ctx: SecretContext
                          ) -> StoreBackend | None:
        """Provides no store backend: None."""
        return None


def protocol_members(protocol: type) -> tuple[str, ...]:
    """Every public attribute and method a protocol class declares, in declaration order
    (what ``typing.get_protocol_members`` gives on Python 3.13)."""
    import inspect

    names = list(inspect.get_annotations(protocol))
    names += [n for n, v in protocol.__dict__.items() if callable(v) and n not in names]
    return tuple(n for n in names if not n.startswith("_"))


def defaults_of(protocol: type, base: type) -> dict[str, Any]:
    """The protocol members ``base`` gives a default for, with those defaults."""
    return {n: getattr(base, n) for n in protocol_members(protocol) if hasattr(base, n)}


RENDERER_MEMBERS = protocol_members(Renderer)
RESOLVER_MEMBERS = protocol_members(SecretResolver)
RENDERER_REQUIRED = tuple(n for n in RENDERER_MEMBERS if not hasattr(RendererBase, n))
"""What a registered renderer must have: the protocol's members without a base default."""
RESOLVER_REQUIRED = tuple(n for n in RESOLVER_MEMBERS if not hasattr(SecretResolverBase, n))
"""What a registered resolver must have: the protocol's members without a base default."""


@dataclass
class _Registry:
    kind: str
    required: tuple[str, ...]
    defaults: dict[str, Any] = field(default_factory=dict)
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

    def member(self, item: object, name: str) -> Any:
        """``item``'s protocol member ``name``, or the base class's default when the plugin
        did not inherit the base class and left it out (methods bound to ``item``)."""
        found = getattr(item, name, _MISSING)
        if found is not _MISSING:
            return found
        default = self.defaults[name]  # KeyError: not an optional member of the protocol
        return default.__get__(item) if callable(default) else default

    def options_types(self) -> dict[str, type[Any] | None]:
        """Each registered name's ``options_type`` (None: the section is free-form)."""
        return {name: self.member(item, "options_type") for name, item in self.items.items()}


_MISSING = object()


class RendererRegistry(_Registry):
    """Renderers by name; iteration order for detection is by descending priority."""

    def __init__(self) -> None:
        super().__init__("renderer", RENDERER_REQUIRED, defaults_of(Renderer, RendererBase))

    def get(self, name: str) -> Renderer:
        """Return the renderer called ``name`` or raise ConfigError listing the known ones."""
        try:
            return self.items[name]  # type: ignore[no-any-return]
        except KeyError:
            known = ", ".join(sorted(self.items)) or "none"
            raise ConfigError(f"unknown app type {name!r} (known: {known})") from None

    def by_priority(self) -> list[Renderer]:
        """Return renderers in detection order: highest priority first, then by name."""
        return sorted(self.items.values(),
                      key=lambda r: (-self.member(r, "priority"), r.name))

    def first(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` on each renderer in :meth:`by_priority` order; the first answer that
        is not None wins (the others are not asked). None when every renderer answers None."""
        for renderer in self.by_priority():
            out = self.member(renderer, method)(*args, **kwargs)
            if out is not None:
                return out
        return None

    def detect_for(self, app: App) -> Renderer | None:
        """The first renderer, in :meth:`by_priority` order, whose ``detect`` claims ``app``;
        None when none does."""
        for renderer in self.by_priority():
            if self.member(renderer, "detect")(app):
                return renderer
        return None


class ResolverRegistry(_Registry):
    """Secret resolvers by name; they run in ascending ``order``."""

    def __init__(self) -> None:
        super().__init__("secret resolver", RESOLVER_REQUIRED,
                         defaults_of(SecretResolver, SecretResolverBase))

    def ordered(self) -> list[SecretResolver]:
        """Return resolvers in the order they run."""
        return sorted(self.items.values(), key=lambda r: (r.order, r.name))

    def get(self, name: str) -> SecretResolver:
        """Return the resolver called ``name`` or raise ConfigError."""
        try:
            return self.items[name]  # type: ignore[no-any-return]
        except KeyError:
            raise ConfigError(f"unknown secret resolver {name!r}") from None

    def markers_of(self, resolver: SecretResolver) -> tuple[str, ...] | None:
        """The resolver's declared ``markers`` (None: it made no promise)."""
        found = self.member(resolver, "markers")
        return None if found is None else tuple(found)

    def first(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` on each resolver in :meth:`ordered` order; the first answer that is
        not None wins (the others are not asked). None when every resolver answers None (a
        resolver without the method answers with the base class's default)."""
        for resolver in self.ordered():
            out = self.member(resolver, method)(*args, **kwargs)
            if out is not None:
                return out
        return None
