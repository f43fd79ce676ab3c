"""The app spec: what to render, and how it is loaded from kiln.yaml and command-line flags.

``App`` is one frozen dataclass. Renderer and resolver options are typed too: each plugin
registers a frozen ``msgspec.Struct`` for its section (``helm:``, ``secrets.vault:``), and the
loader converts and schema-checks the sections against those types, so an unknown key is an
error naming the key and the file.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

import msgspec

from kiln.core.errors import ConfigError, InputError
from kiln.core.trust import Allowlist, Guard, Origin, check_section

T = TypeVar("T")

APP_FILE = "kiln.yaml"
APP_FILE_MAX_BYTES = 1 << 20
TOP_LEVEL_KEYS = ("type", "name", "namespace", "kubeVersion", "apiVersions", "secrets",
                  "allowEmpty")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class App:
    """One app to render.

    ``path`` is the app directory. ``source_root`` bounds every file a renderer may read: given
    explicitly, else the top of the git work tree holding the app, else the app directory.
    ``options`` maps a renderer name to its options (a Struct, or a plain mapping converted on
    first use); ``secrets`` does the same for secret resolvers. ``env`` is the build environment
    (Argo CD's ``ARGOCD_APP_*`` and ``ARGOCD_ENV_*`` variables) renderers may substitute.
    ``origins`` maps a dotted settings path (``secrets.vault.address``) to the level and file
    or variable that set it (:mod:`kiln.core.trust`); a path absent from it is the operator's.
    ``allow_empty`` (kiln.yaml ``allowEmpty``) accepts a render of no object, which is an error
    otherwise (Argo CD's ``allowEmpty``: an empty stream prunes every resource of the app).
    """

    path: Path
    name: str | None = None
    namespace: str | None = None
    type: str | None = None
    source_root: Path | None = None
    kube_version: str | None = None
    api_versions: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    origins: Mapping[str, Origin] = field(default_factory=dict)
    allow_empty: bool = False

    def __post_init__(self) -> None:
        path = Path(os.path.abspath(self.path))
        object.__setattr__(self, "path", path)
        root = self.source_root
        root = Path(os.path.abspath(root)) if root is not None else find_source_root(path)
        object.__setattr__(self, "source_root", root)
        object.__setattr__(self, "api_versions", tuple(self.api_versions))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        object.__setattr__(self, "secrets", MappingProxyType(dict(self.secrets)))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))
        object.__setattr__(self, "origins", MappingProxyType(dict(self.origins)))

    @property
    def root(self) -> Path:
        """The source root (always set after construction)."""
        assert self.source_root is not None
        return self.source_root

    @property
    def display_name(self) -> str:
        """The app's name: ``name`` when set, else the app directory's name."""
        return self.name or self.path.name

    def options_for(self, section: str, cls: builtins.type[T]) -> T:
        """Return the typed options of ``section`` (defaults when the section is absent)."""
        return _typed(self.options.get(section), cls, section)

    def secrets_for(self, section: str, cls: builtins.type[T]) -> T:
        """Return the typed options of ``secrets.<section>`` (defaults when absent)."""
        return _typed(self.secrets.get(section), cls, f"secrets.{section}")

    def identity(self) -> dict[str, Any]:
        """The spec as plain data for the cache key: everything but where the app lives.

        Build-env variables the options reference (``$ARGOCD_APP_REVISION`` in a Helm
        parameter) are part of it with their values, so a substituted value that changes is a
        miss; variables nothing references stay out, so other revisions still hit.
        """
        options = {k: msgspec.to_builtins(v) for k, v in sorted(self.options.items())}
        identity = {
            "name": self.name,
            "namespace": self.namespace,
            "type": self.type,
            "kubeVersion": self.kube_version,
            "apiVersions": list(self.api_versions),
            "options": options,
        }
        names = _referenced_names(options)
        if names:
            identity["env"] = {name: self.env.get(name, "") for name in sorted(names)}
        return identity


def _referenced_names(data: Any) -> set[str]:
    """Every ``$VAR`` name referenced by a string (key or value) anywhere in ``data``."""
    from kiln.core.envsubst import referenced

    if isinstance(data, str):
        return referenced(data)
    if isinstance(data, dict):
        return set().union(*(_referenced_names(k) | _referenced_names(v)
                             for k, v in data.items())) if data else set()
    if isinstance(data, (list, tuple)):
        return set().union(*(_referenced_names(v) for v in data)) if data else set()
    return set()


def _typed(value: Any, cls: type[T], where: str, source: str | None = None) -> T:
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    return convert_section(value, cls, where, source)


COMMAND_LINE = "command line"
"""The source :meth:`kiln.core.engine.Engine.load_app` records for settings given as flags."""


def convert_section(data: Any, cls: type[T], where: str, source: str | None,
                    origins: Mapping[str, Origin] | None = None) -> T:
    """Convert plain data into the Struct ``cls``; a schema violation is a ConfigError.

    The error names the offending key's dotted path, suggests the closest known key for an
    unknown one, and names where that key was set (``origins``; else ``source``).
    """
    try:
        return msgspec.convert(data, type=cls, strict=False)
    except msgspec.ValidationError as exc:
        message, path = _schema_message(str(exc), where, cls)
        raise ConfigError(message, source=source_of(path, origins, source)) from None


def _schema_message(msg: str, where: str, cls: Any = None) -> tuple[str, str]:
    """``(message, dotted path of the key at fault)`` for a msgspec validation message."""
    text, _, at = msg.partition(" - at `$")
    at = at.rstrip("`")
    loc = where + at.strip()
    unknown = "Object contains unknown field `"
    if text.startswith(unknown):
        key = text[len(unknown):].rstrip("`")
        path = f"{loc}.{key}" if loc else key
        known = _field_names(cls) if not at else []
        return f"unknown key {path!r}{did_you_mean(key, known)}", path
    if text:
        return f"{loc or 'top level'}: {text[0].lower() + text[1:]}", loc
    return loc, loc


def _field_names(cls: Any) -> list[str]:
    """The kiln.yaml spellings of a Struct's fields ([] for anything else)."""
    try:
        return [f.encode_name for f in msgspec.structs.fields(cls)]
    except TypeError:
        return []


def did_you_mean(word: str, known: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` to ``word``, else ''."""
    import difflib

    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    if not close:
        lowered = {k.lower(): k for k in known}
        close = [lowered[word.lower()]] if word.lower() in lowered else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def source_of(path: str, origins: Mapping[str, Origin] | None, default: str | None) -> str | None:
    """Where setting ``path`` was given, for an error about it: the kiln.yaml file or the
    variable that set it, ``-O PATH`` for a setting given on the command line (every app flag
    is a spelling of some ``-O PATH``, and only ``-O`` gives keys the schema does not know;
    a part of a list or map names the setting holding it), else ``default``."""
    if not origins:
        return default
    parts = path.replace("[", ".[").split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end]).replace(".[", "[")
        found = [o for p, o in origins.items() if p == prefix or p.startswith(prefix + ".")]
        if found:
            origin = min(found, key=lambda o: o.level)
            if origin.source == COMMAND_LINE:
                return f"-O {path}" if prefix == path else f"{COMMAND_LINE} ({prefix})"
            return origin.source
    return default


def find_source_root(app_dir: Path) -> Path:
    """Return the top of the git work tree holding ``app_dir``, else ``app_dir`` itself."""
    for candidate in (app_dir, *app_dir.parents):
        if (candidate / ".git").exists():
            return candidate
    return app_dir


def read_app_file(app_dir: Path) -> dict[str, Any]:
    """Read ``kiln.yaml`` from ``app_dir`` as plain data ({} when absent)."""
    from kiln.core.manifests import load_yaml_documents

    path = app_dir / APP_FILE
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=str(path)) from None
    if size > APP_FILE_MAX_BYTES:
        raise InputError(f"larger than {APP_FILE_MAX_BYTES} bytes", source=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", source=str(path)) from None
    docs = [d for d in load_yaml_documents(text, str(path)) if d is not None]
    if not docs:
        return {}
    if len(docs) > 1 or not isinstance(docs[0], dict):
        raise ConfigError("must hold one YAML mapping", source=str(path))
    return docs[0]


def build_app(
    path: Path,
    settings: Mapping[str, Any],
    *,
    renderer_types: Mapping[str, type[Any] | None],
    resolver_types: Mapping[str, type[Any] | None],
    source_root: Path | None = None,
    env: Mapping[str, str] | None = None,
    source: str | None = None,
    origins: Mapping[str, Origin] | None = None,
    allow: Allowlist | None = None,
) -> App:
    """Build an App from kiln.yaml-shaped ``settings``, checking every key against the schema.

    ``origins`` (from :func:`kiln.core.trust.merge_layers`) says who set each key; a guarded
    key (``Options.guarded``) set below operator level raises TrustError unless ``allow``
    lists it. Without ``origins`` every setting is the operator's.
    """
    origins = origins or {}
    allow = allow or Allowlist()
    options: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    for key, value in settings.items():
        if key in TOP_LEVEL_KEYS:
            continue
        if key not in renderer_types:
            known = [*TOP_LEVEL_KEYS, *renderer_types]
            raise ConfigError(f"unknown key {key!r}{did_you_mean(key, known)}",
                              source=source_of(key, origins, source))
        cls = renderer_types[key]
        if cls is None:
            raise ConfigError(f"renderer {key!r} takes no options",
                              source=source_of(key, origins, source))
        options[key] = convert_section(value or {}, cls, key, source, origins)
        check_section(key, cls, origins, allow)
    raw_secrets = settings.get("secrets") or {}
    if not isinstance(raw_secrets, Mapping):
        raise ConfigError("'secrets' must be a mapping",
                          source=source_of("secrets", origins, source))
    for key, value in raw_secrets.items():
        cls = resolver_types.get(key)
        if cls is None:
            hint = did_you_mean(key, list(resolver_types))
            raise ConfigError(f"unknown key 'secrets.{key}'{hint}",
                              source=source_of(f"secrets.{key}", origins, source))
        secrets[key] = convert_section(value or {}, cls, f"secrets.{key}", source, origins)
        check_section(f"secrets.{key}", cls, origins, allow)
    api_versions = settings.get("apiVersions") or ()
    if isinstance(api_versions, str):
        api_versions = tuple(v for v in api_versions.split(",") if v)
    scalars = {k: settings.get(k) for k in ("type", "name", "namespace", "kubeVersion")}
    for key, value in scalars.items():
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{key!r} must be a string", source=source_of(key, origins, source))
    allow_empty = settings.get("allowEmpty", False)
    if not isinstance(allow_empty, bool):
        raise ConfigError("'allowEmpty' must be true or false",
                          source=source_of("allowEmpty", origins, source))
    if not isinstance(api_versions, (list, tuple)) or not all(
        isinstance(v, str) for v in api_versions
    ):
        raise ConfigError("'apiVersions' must be a list of strings",
                          source=source_of("apiVersions", origins, source))
    return App(
        path=path,
        name=scalars["name"],
        namespace=scalars["namespace"],
        type=scalars["type"],
        source_root=source_root,
        kube_version=scalars["kubeVersion"],
        api_versions=tuple(api_versions),
        options=options,
        secrets=secrets,
        env=env or {},
        origins=origins,
        allow_empty=allow_empty,
    )


class Options(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="camel",
              kw_only=True):
    """Base class for plugin option sections: frozen, camelCase keys, unknown keys rejected.

    ``guarded`` maps the keys (kiln.yaml spelling) that choose where credentials are sent or
    which local files are read as credentials to their :class:`kiln.core.trust.Guard`: only the
    operator may set them unless it allows them by name (see :mod:`kiln.core.trust`).
    """

    guarded: ClassVar[Mapping[str, Guard]] = MappingProxyType({})
