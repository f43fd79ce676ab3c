"""What a plugin declares about its faces: command-line flags, Argo CD CMP parameters, a
discovery rule and the tools it runs.

A renderer or secret resolver sets ``faces = Faces(...)`` on itself. ``kiln render``/``kiln
generate`` build their flags from every registered :class:`Flag`, the CMP parameter table
(``plugin.yaml``, ``ARGOCD_APP_PARAMETERS``/``PARAM_*``, ``kiln cmp parameters``) from every
:class:`Parameter`, ``kiln cmp discover`` applies the detected renderer's :class:`Discovery`, and
the fast path stamps every declared tool. Declarations are data only: this module imports no
plugin and nothing heavy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from kiln.core.errors import PluginError

Shape = Literal["str", "bool", "int", "list", "map", "entries"]
"""How a value given on the command line or as a CMP parameter becomes the option value:

- ``str``: the text; ``int``: the text as an integer; ``bool``: a switch (``--flag``) or a
  ``"true"``/``"false"`` parameter;
- ``list``: a repeatable flag or an ``array`` parameter, a list of strings;
- ``map``: repeatable ``KEY=VALUE`` flags or a ``map`` parameter, a mapping of strings;
- ``entries``: repeatable ``NAME=VALUE`` flags or a ``map`` parameter, a list of
  ``{"name": NAME, <Entry.value>: VALUE, **Entry.extra}`` items (appended to what other
  declarations with the same option path put there, e.g. ``--set`` and ``--set-string``).
"""

Collection = Literal["string", "array", "map"]
_T = TypeVar("_T")


@dataclass(frozen=True)
class Entry:
    """How one ``NAME=VALUE`` becomes an item of an ``entries`` option."""

    value: str = "value"
    """The key the value is stored under (``value``, ``path``, ``count``...)."""
    extra: tuple[tuple[str, Any], ...] = ()
    """Constant keys added to every item, e.g. ``(("forceString", True),)``."""
    integer: bool = False
    """The value must be a non-negative integer (a replica count)."""


@dataclass(frozen=True)
class Flag:
    """One command-line flag of ``kiln render`` and ``kiln generate``.

    ``names`` are the flag spellings (``("-f", "--values")``); ``option`` is the option path in
    the app spec, as kiln.yaml and ``-O`` spell it (``helm.releaseName``, ``namespace``,
    ``secrets.sops.ignoreMac``). ``argv_bound`` says the value reaches a tool's command line
    (as a value, after the renderer's checks): the security rules apply to it.
    """

    names: tuple[str, ...]
    option: str
    shape: Shape = "str"
    help: str = ""
    metavar: str = ""
    choices: tuple[str, ...] = ()
    entry: Entry | None = None
    argv_bound: bool = False

    @property
    def path(self) -> tuple[str, ...]:
        """The option path split on dots."""
        return tuple(self.option.split("."))

    @property
    def multiple(self) -> bool:
        """True when the flag may be repeated (lists, maps and entries)."""
        return self.shape in ("list", "map", "entries")


@dataclass(frozen=True)
class Parameter:
    """One Argo CD plugin parameter (``spec.source.plugin.parameters``).

    ``name`` is how an Application spells it; ``option`` the option path it sets; ``title``
    and ``tooltip`` are what the UI shows. With ``announce=True``, ``kiln cmp parameters``
    announces it for an app of the declaring renderer, with the app's current value.
    """

    name: str
    option: str
    shape: Shape
    title: str
    tooltip: str
    entry: Entry | None = None
    argv_bound: bool = False
    announce: bool = False

    @property
    def collection(self) -> Collection:
        """Argo CD's collection type: ``array`` for lists, ``map`` for maps and entries."""
        if self.shape == "list":
            return "array"
        if self.shape in ("map", "entries"):
            return "map"
        return "string"

    @property
    def path(self) -> tuple[str, ...]:
        """The option path split on dots."""
        return tuple(self.option.split("."))


@dataclass(frozen=True)
class Discovery:
    """When ``kiln cmp discover`` claims an app the declaring renderer was detected for.

    ``globs``: a file in the app directory matching one of them (``fnmatch``). ``objects``: one
    of the files the renderer's ``inputs()`` names holds a Kubernetes object (``apiVersion``
    and ``kind``). With both empty, detection alone claims the app. An explicit ``type`` or a
    ``kiln.yaml`` always claims it.
    """

    globs: tuple[str, ...] = ()
    objects: bool = False


@dataclass(frozen=True)
class Faces:
    """Everything one renderer or secret resolver declares about its faces."""

    flags: tuple[Flag, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    discovery: Discovery | None = None
    tools: tuple[str, ...] = ()
    """Executables the plugin runs (``helm``...): the fast path stamps the ones installed next
    to kiln's Python, so replacing one there invalidates memos."""


CORE = Faces(
    flags=(
        Flag(("--type",), "type", metavar="TYPE",
             help="Renderer: directory, helm, kustomize, jsonnet or a plugin's name."),
        Flag(("-n", "--namespace"), "namespace", help="Namespace to render into."),
        Flag(("--app-name",), "name", help="App name (Helm's release name by default)."),
        Flag(("--kube-version",), "kubeVersion", metavar="V",
             help="Kubernetes version for Helm and kustomize's helm charts."),
        Flag(("--api-versions",), "apiVersions", "list", metavar="GROUP/VERSION",
             help="API versions for .Capabilities (repeatable)."),
        Flag(("--allow-empty",), "allowEmpty", "bool",
             help="Accept a render of no object (an error otherwise: Argo CD would prune "
                  "every resource of the app)."),
    ),
    parameters=(
        Parameter("type", "type", "str", "Renderer",
                  "Force a renderer: helm, kustomize, jsonnet or directory (default: "
                  "detected)."),
        Parameter("allow-empty", "allowEmpty", "bool", "Allow an empty render",
                  "Accept a render of no object (otherwise an error: Argo CD would prune the "
                  "app)."),
    ),
)
"""The faces kiln itself declares (the app spec's top-level keys)."""


@dataclass(frozen=True)
class Declared:
    """The faces of one registered renderer or resolver."""

    kind: str
    """``renderer``, ``secret resolver`` or ``core``."""
    name: str
    declares: Faces


def faces_of(item: object, registry: Any) -> Faces:
    """The :class:`Faces` ``item`` (registered in ``registry``) declares: read through the
    registry, so the base class's default applies; an empty one when it declares none. Anything
    else in ``faces`` is a PluginError naming the item."""
    faces = registry.member(item, "faces")
    if faces is None:
        return Faces()
    if not isinstance(faces, Faces):
        raise PluginError(f"{getattr(item, 'name', item)!r}: 'faces' must be a "
                          f"kiln.core.faces.Faces, got {type(faces).__name__}")
    return faces


def declared(plugins: Any) -> list[Declared]:
    """Every declaration, in order: kiln's own, then each renderer, then each secret resolver,
    in the order their plugins were loaded (built-in ones first). Raises PluginError when two
    declare the same flag or parameter."""
    found = [Declared("core", "kiln", CORE)]
    order = {info.name: i for i, info in enumerate(plugins.describe())}
    for kind, registry in (("renderer", plugins.renderers), ("secret resolver",
                                                             plugins.resolvers)):
        names = sorted(registry, key=lambda n: order.get(registry.owner(n), len(order)))
        found += [Declared(kind, name, faces_of(registry.items[name], registry))
                  for name in names]
    _check_unique(found)
    return found


def _check_unique(found: Iterable[Declared]) -> None:
    flags: dict[str, str] = {}
    params: dict[str, str] = {}
    for item in found:
        for flag in item.declares.flags:
            for spelling in flag.names:
                _claim(flags, spelling, item, "flag")
        for param in item.declares.parameters:
            _claim(params, param.name, item, "parameter")


def _claim(seen: dict[str, str], key: str, item: Declared, what: str) -> None:
    owner = f"{item.kind} {item.name!r}"
    if key in seen:
        raise PluginError(f"{what} {key!r} declared twice (by {seen[key]} and {owner})")
    seen[key] = owner


def all_flags(found: Iterable[Declared]) -> Iterator[Flag]:
    """Every declared flag, in declaration order."""
    for item in found:
        yield from item.declares.flags


def all_parameters(found: Iterable[Declared]) -> Iterator[Parameter]:
    """Every declared CMP parameter, in declaration order."""
    for item in found:
        yield from item.declares.parameters


def all_tools(found: Iterable[Declared]) -> list[str]:
    """Every declared tool name, once each, in declaration order."""
    tools: list[str] = []
    for item in found:
        tools += [t for t in item.declares.tools if t not in tools]
    return tools


def set_option(settings: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Put ``value`` at ``path`` in kiln.yaml-shaped ``settings``; lists of ``entries`` extend
    what another declaration with the same path put there."""
    target = settings
    for part in path[:-1]:
        nested = target.get(part)
        if not isinstance(nested, dict):
            nested = target[part] = {}
        target = nested
    existing = target.get(path[-1])
    if isinstance(existing, list) and isinstance(value, list):
        existing.extend(value)
    else:
        target[path[-1]] = value


def entry_item(entry: Entry, name: str, value: Any) -> dict[str, Any]:
    """One ``entries`` item: ``{"name": name, entry.value: value, **entry.extra}``."""
    return {"name": name, entry.value: value, **dict(entry.extra)}


def with_faces(item: _T, faces: Faces) -> _T:
    """``item`` with ``faces`` set on it (for a plugin whose class lives in another module)."""
    setattr(item, "faces", faces)  # noqa: B010 - the attribute is not on the class
    return item


def load_plugins(env: Mapping[str, str]) -> Any:
    """The plugins ``env`` loads (built-in and entry points, ``KILN_DISABLE_PLUGINS`` honoured),
    registered but not used: what the faces are built from. A plugin that fails to load is
    not reported here (``quiet``): the engine's own load reports it, once."""
    from kiln.core.paths import default_cache_dir
    from kiln.core.plugins import Plugins

    return Plugins(env, state_dir=default_cache_dir(env), quiet=True)


def parameter_text(value: Any) -> str:
    """A scalar as a CMP parameter shows it: ``true``/``false``, ``null``, else ``str()``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
