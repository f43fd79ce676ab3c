"""Trust levels for settings: who may choose where credentials go.

Every setting comes from one of three levels:

- **operator**: kiln's own process environment and configuration, and the command-line flags of
  the person running kiln;
- **repository**: ``kiln.yaml`` and other files of the source tree (SecretStore manifests too);
- **application**: what an Argo CD Application hands the plugin (``ARGOCD_ENV_*``,
  ``ARGOCD_APP_PARAMETERS``/``PARAM_*``).

Repository and application may choose what to render and which secrets to reference, never where
credentials are sent or which local files are read as credentials. Plugins declare which of
their settings do that (:class:`Guard`): option fields through ``Options.guarded`` (kiln.yaml
spelling), environment variables by reading them through :func:`env_setting`. Such a setting
from a lower level is refused with one line naming the key and where it came from, unless the
operator allows the key by name: ``KILN_ALLOW_APP_SETTINGS`` (a comma- or blank-separated list)
and/or a file named by ``KILN_ALLOW_APP_SETTINGS_FILE`` (one or more names a line, ``#``
comments). A :data:`Guard.FILE` setting (a path read as a credential) is never taken from the
repository level, allowed or not.

Precedence for an environment variable ``X`` (argocd-vault-plugin's rule): ``ARGOCD_ENV_X``
wins over ``X`` whenever it is present, **even when empty** — AVP copies every ``ARGOCD_ENV_*``
variable into viper with ``Set``, which overrides the plain variable with the empty string.
Surrounding blanks are stripped. Every plugin reads such variables through
:func:`env_lookup`, so an empty ``ARGOCD_ENV_AVP_TYPE`` means the same thing in all of them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.core.errors import ConfigError

ARGOCD_ENV_PREFIX = "ARGOCD_ENV_"
ALLOW_ENV = "KILN_ALLOW_APP_SETTINGS"
"""Operator variable: the names of guarded settings repository/application level may set."""
ALLOW_FILE_ENV = "KILN_ALLOW_APP_SETTINGS_FILE"
"""Operator variable: a file listing more such names."""
ALLOW_FILE_MAX_BYTES = 1 << 16

_TRUE = frozenset({"1", "t", "true"})
_FALSE = frozenset({"0", "f", "false"})


class Level(enum.IntEnum):
    """Where a setting came from; a higher level is more trusted."""

    APPLICATION = 1
    REPOSITORY = 2
    OPERATOR = 3

    @property
    def label(self) -> str:
        """The level's name as error messages print it."""
        return self.name.lower()


class Guard(enum.Enum):
    """What makes a setting credential-routing (the reason printed when it is refused)."""

    ROUTE = "chooses where credentials are sent or which credentials are used"
    FILE = "names a local file read as a credential"
    POLICY = "is a restriction only the operator sets"


@dataclass(frozen=True)
class Origin:
    """Where one setting came from: its level and the file or variable that set it."""

    level: Level
    source: str


OPERATOR = Origin(Level.OPERATOR, "operator")


class TrustError(ConfigError):
    """A setting from repository or application level that only the operator may make."""


@dataclass(frozen=True)
class Allowlist:
    """The guarded setting names the operator lets repository/application level set."""

    names: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Allowlist:
        """Read ``KILN_ALLOW_APP_SETTINGS`` and the file ``KILN_ALLOW_APP_SETTINGS_FILE`` names.

        Only the plain variables count (an ``ARGOCD_ENV_`` form is the application's, never
        read). An unreadable file is a ConfigError naming it.
        """
        names = set(_names(env.get(ALLOW_ENV, "")))
        file = env.get(ALLOW_FILE_ENV, "").strip()
        if file:
            names.update(_names(_read_allow_file(Path(file))))
        return cls(frozenset(names))

    def allows(self, name: str) -> bool:
        """True when the operator listed ``name``."""
        return name in self.names


def _names(text: str) -> Iterable[str]:
    for line in text.splitlines():
        line = line.partition("#")[0]
        yield from (n for n in line.replace(",", " ").split() if n)


def _read_allow_file(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(ALLOW_FILE_MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read ({ALLOW_FILE_ENV}): {exc.strerror}",
                          source=str(path)) from None
    if len(data) > ALLOW_FILE_MAX_BYTES:
        raise ConfigError(f"larger than {ALLOW_FILE_MAX_BYTES} bytes ({ALLOW_FILE_ENV})",
                          source=str(path))
    return data.decode("utf-8", "replace")


def check(name: str, guard: Guard, origin: Origin, allow: Allowlist) -> None:
    """Refuse ``name`` set at ``origin`` unless the operator may be the only one to set it.

    Operator level always passes. Below it, a :data:`Guard.FILE` setting from the repository is
    refused even when allowed; anything else passes only when ``allow`` lists ``name``. The
    error names the key, the level and the file or variable, never the value.
    """
    if origin.level >= Level.OPERATOR:
        return
    if guard is Guard.FILE and origin.level is Level.REPOSITORY:
        raise TrustError(f"{name} {guard.value}: never taken from the repository level, "
                         "only the operator sets it", source=origin.source)
    if allow.allows(name):
        return
    raise TrustError(f"{name} {guard.value}: refused from the {origin.level.label} level; "
                     f"the operator may allow it with {ALLOW_ENV}={name}", source=origin.source)


# -- environment variables ---------------------------------------------------------------------

def env_lookup(env: Mapping[str, str], name: str) -> tuple[str | None, str | None]:
    """``(value, variable)`` of ``name``: ``ARGOCD_ENV_<name>`` when present (even empty),
    else ``<name>``; the value stripped; ``(None, None)`` when neither is set."""
    for var in (ARGOCD_ENV_PREFIX + name, name):
        value = env.get(var)
        if value is not None:
            return value.strip(), var
    return None, None


def env_setting(env: Mapping[str, str], name: str, guard: Guard | None = None,
                allow: Allowlist | None = None) -> str | None:
    """The value of ``name`` by :func:`env_lookup`'s precedence (None when unset).

    With a ``guard``, an ``ARGOCD_ENV_<name>`` form (application level) raises TrustError unless
    the operator allows ``name`` (``allow``, read from ``env`` when not given).
    """
    value, var = env_lookup(env, name)
    if guard is not None and var is not None and var != name:
        allowed = allow if allow is not None else Allowlist.from_env(env)
        check(name, guard, Origin(Level.APPLICATION, var), allowed)
    return value


def env_text(env: Mapping[str, str], name: str, guard: Guard | None = None,
             allow: Allowlist | None = None) -> str:
    """:func:`env_setting`, with '' for an unset variable."""
    return env_setting(env, name, guard, allow) or ""


# -- option sections ---------------------------------------------------------------------------

def guarded_fields(cls: Any) -> Mapping[str, Guard]:
    """The guarded keys an options type declares (``Options.guarded``, kiln.yaml spelling)."""
    declared = getattr(cls, "guarded", None)
    return declared if isinstance(declared, Mapping) else {}


def check_section(where: str, cls: Any, origins: Mapping[str, Origin],
                  allow: Allowlist) -> None:
    """Check every guarded key of section ``where`` (``secrets.vault``) against its origin.

    ``origins`` maps a dotted settings path to where it was set (see :func:`merge_layers`); a
    key absent from it was set by the operator (a library caller).
    """
    for key, guard in guarded_fields(cls).items():
        path = f"{where}.{key}"
        origin = _origin_of(path, origins)
        if origin is not None:
            check(path, guard, origin, allow)


def _origin_of(path: str, origins: Mapping[str, Origin]) -> Origin | None:
    """The least trusted origin of ``path`` or anything below it (a list or map value)."""
    found = [o for p, o in origins.items() if p == path or p.startswith(path + ".")]
    return min(found, key=lambda o: o.level) if found else None


def origin_of(path: str, origins: Mapping[str, Origin]) -> Origin:
    """Where setting ``path`` (or the least trusted part of it) came from; the operator when
    ``origins`` does not know it."""
    return _origin_of(path, origins) or OPERATOR


def merge_layers(layers: Iterable[tuple[Origin, Mapping[str, Any] | None]]
                 ) -> tuple[dict[str, Any], dict[str, Origin]]:
    """Overlay kiln.yaml-shaped ``layers`` (lowest first) and record who set each leaf.

    Mappings merge key by key, anything else replaces; a None value is no setting. Returns the
    merged settings and a map from each leaf's dotted path to the origin of its value.
    """
    merged: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for origin, data in layers:
        if data:
            _overlay(merged, data, origin, origins, "")
    return merged, origins


def _overlay(target: dict[str, Any], data: Mapping[str, Any], origin: Origin,
             origins: dict[str, Origin], prefix: str) -> None:
    for key, value in data.items():
        if value is None:
            continue
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            current = target.get(key)
            if not isinstance(current, dict):
                _forget(origins, path)
                current = target[key] = {}
                if not value:
                    origins[path] = origin  # an empty section still says "use this resolver"
            if value:
                origins.pop(path, None)  # the section's keys carry their own origins now
            _overlay(current, value, origin, origins, path + ".")
        else:
            _forget(origins, path)
            target[key] = value
            origins[path] = origin


def _forget(origins: dict[str, Origin], path: str) -> None:
    for p in [p for p in origins if p == path or p.startswith(path + ".")]:
        del origins[p]


# -- small shared parsers ----------------------------------------------------------------------

def parse_bool(text: str, *, name: str, default: bool = False) -> bool:
    """Go's ``strconv.ParseBool`` vocabulary (``1 t true`` / ``0 f false``; any case, blanks
    ignored), which Vault's, AVP's and sops' Go code use; ``default`` for empty text; anything
    else is a ConfigError naming ``name``."""
    lowered = text.strip().lower()
    if not lowered:
        return default
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {text.strip()!r}")
