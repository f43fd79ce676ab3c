"""Turn the environment Argo CD gives a Config Management Plugin into kiln app settings.

Argo CD runs the plugin's ``generate`` command in the app directory with the build
environment (``ARGOCD_APP_*``), ``KUBE_VERSION``/``KUBE_API_VERSIONS``, the app's plugin env
prefixed ``ARGOCD_ENV_``, and the app's plugin parameters both as JSON in
``ARGOCD_APP_PARAMETERS`` and as ``PARAM_*`` variables. :func:`settings_from_environment` maps
all of it onto kiln.yaml-shaped settings (they override the app's kiln.yaml) plus the build
environment renderers substitute ``$VAR`` from.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from kiln.cmp.parameters import SOURCE, ParamSpec, option_value, spec_for, table, table_of
from kiln.core.errors import ConfigError
from kiln.core.faces import set_option

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.core.engine import Engine

BUILD_ENV_PREFIXES = ("ARGOCD_APP_", "ARGOCD_ENV_")
KUBE_VARS = ("KUBE_VERSION", "KUBE_API_VERSIONS")
PARAM_PREFIX = "PARAM_"
_UNSAFE = re.compile(r"[^A-Z0-9_]")

Value = str | list[str] | dict[str, str]


@dataclass(frozen=True)
class Parameter:
    """One plugin parameter as Argo CD sent it: a name and its string, array or map value."""

    name: str
    value: Value


@dataclass(frozen=True)
class CmpSettings:
    """What the CMP environment says about the app.

    ``settings`` has kiln.yaml's shape and overrides the app's kiln.yaml; ``build_env`` goes on
    ``App.env``; ``source_root`` is the root of the unpacked repository when
    ``ARGOCD_APP_SOURCE_PATH`` locates it (None: let kiln find it).
    """

    settings: dict[str, Any] = field(default_factory=dict)
    build_env: dict[str, str] = field(default_factory=dict)
    source_root: Path | None = None


def settings_from_environment(env: Mapping[str, str], *, app_dir: Path | str | None = None,
                              rows: Sequence[ParamSpec] | None = None) -> CmpSettings:
    """Map Argo CD's CMP environment onto kiln settings, the build env and the source root.

    ``name`` comes from ``ARGOCD_APP_NAME`` (an ``<namespace>_`` prefix, as apps in other
    namespaces carry, is dropped), ``namespace`` from ``ARGOCD_APP_NAMESPACE``,
    ``kubeVersion`` from ``KUBE_VERSION``, ``apiVersions`` from ``KUBE_API_VERSIONS`` (comma
    list), and renderer options from the parameters by the table in
    :mod:`kiln.cmp.parameters` (``rows``; default: what the plugins ``env`` loads declare).
    Raises ConfigError on malformed or unknown parameters.
    """
    rows = table(env) if rows is None else rows
    settings: dict[str, Any] = {}
    name = app_name(env.get("ARGOCD_APP_NAME", ""))
    if name:
        settings["name"] = name
    if env.get("ARGOCD_APP_NAMESPACE"):
        settings["namespace"] = env["ARGOCD_APP_NAMESPACE"]
    if env.get("KUBE_VERSION"):
        settings["kubeVersion"] = env["KUBE_VERSION"].strip()
    api_versions = [v.strip() for v in env.get("KUBE_API_VERSIONS", "").split(",") if v.strip()]
    if api_versions:
        settings["apiVersions"] = api_versions
    for param in parameters_from_environment(env, rows):
        _apply(settings, spec_for(param.name, rows), param.value)
    root = _source_root(Path(app_dir), env.get("ARGOCD_APP_SOURCE_PATH", "")) if app_dir else None
    return CmpSettings(settings=settings, build_env=build_env(env), source_root=root)


def load_app_from_environment(engine: Engine, path: Path | str,
                              env: Mapping[str, str]) -> App:
    """Load the app at ``path`` the way ``kiln generate`` does inside the Argo CD sidecar.

    The app's kiln.yaml is read first and the CMP settings override it; the build env goes on
    ``App.env``. Raises ConfigError/InputError like :meth:`Engine.load_app`.
    """
    cmp = settings_from_environment(env, app_dir=os.path.abspath(path),
                                    rows=table_of(engine.plugins))
    return engine.load_app(path, app_settings=cmp.settings, source_root=cmp.source_root,
                           build_env=cmp.build_env)


def build_env(env: Mapping[str, str]) -> dict[str, str]:
    """Every ``ARGOCD_APP_*`` and ``ARGOCD_ENV_*`` variable, plus ``KUBE_VERSION`` and
    ``KUBE_API_VERSIONS`` when set: the variables option values may reference as ``$VAR``."""
    picked = {k: v for k, v in env.items() if k.startswith(BUILD_ENV_PREFIXES)}
    picked.update({k: env[k] for k in KUBE_VARS if k in env})
    return dict(sorted(picked.items()))


def parameters_from_environment(env: Mapping[str, str],
                                rows: Sequence[ParamSpec]) -> list[Parameter]:
    """The app's parameters: from ``ARGOCD_APP_PARAMETERS`` when set, else the ``PARAM_*``
    variables. Raises ConfigError on malformed JSON, unknown names or wrong value types."""
    text = env.get(SOURCE, "")
    if text.strip():
        return parse_parameters_json(text, rows)
    return parameters_from_param_vars(env, rows)


def parse_parameters_json(text: str, rows: Sequence[ParamSpec]) -> list[Parameter]:
    """Parse Argo CD's ``[{"name": ..., "string"|"array"|"map": ...}]`` list, checking each
    value against the collection type the table gives its name."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                          source=SOURCE) from None
    except RecursionError:
        raise ConfigError("JSON nested too deeply", source=SOURCE) from None
    if not isinstance(data, list):
        raise ConfigError("must be a JSON list of parameters", source=SOURCE)
    params: list[Parameter] = []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ConfigError(f"item {index} must be an object with a string 'name'",
                              source=SOURCE)
        spec = spec_for(item["name"], rows)
        if any(p.name == spec.name for p in params):
            raise ConfigError(f"parameter {spec.name!r} is given twice", source=SOURCE)
        params.append(Parameter(spec.name, _json_value(spec, item)))
    return params


def _json_value(spec: ParamSpec, item: Mapping[str, Any]) -> Value:
    present = [k for k in ("string", "array", "map") if k in item]
    if spec.collection not in present and present:
        raise ConfigError(f"parameter {spec.name!r} takes {_article(spec.collection)}, "
                          f"got {_article(present[0])}", source=SOURCE)
    raw = item.get(spec.collection)
    if spec.collection == "string":
        raw = "" if raw is None else raw
        if not isinstance(raw, str):
            raise ConfigError(f"parameter {spec.name!r}: 'string' must be a string",
                              source=SOURCE)
        return raw
    if spec.collection == "array":
        raw = [] if raw is None else raw
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            raise ConfigError(f"parameter {spec.name!r}: 'array' must be a list of strings",
                              source=SOURCE)
        return list(raw)
    raw = {} if raw is None else raw
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ConfigError(f"parameter {spec.name!r}: 'map' must map names to strings",
                          source=SOURCE)
    return dict(raw)


def _article(collection: str) -> str:
    return "an array" if collection == "array" else f"a {collection}"


def escape_name(name: str) -> str:
    """Argo CD's environment-variable form of a parameter name or map key: upper case, every
    character outside ``[A-Z0-9_]`` turned into ``_``."""
    return _UNSAFE.sub("_", name.upper())


def parameters_from_param_vars(env: Mapping[str, str],
                               rows: Sequence[ParamSpec]) -> list[Parameter]:
    """Rebuild the parameters from ``PARAM_<NAME>``, ``PARAM_<NAME>_<i>`` and
    ``PARAM_<NAME>_<KEY>`` variables (Argo CD sets both forms; this one serves hand runs).

    Argo CD upper-cases and escapes map keys, so a map key comes back exactly as written after
    the parameter's prefix (``PARAM_HELM_PARAMETERS_image.tag`` gives ``image.tag``). An
    unrecognised ``PARAM_*`` variable is a ConfigError naming it.
    """
    escaped = {escape_name(spec.name): spec for spec in rows}
    strings: dict[str, str] = {}
    arrays: dict[str, list[tuple[int, str]]] = {}
    maps: dict[str, dict[str, str]] = {}
    for var in sorted(env):
        if not var.startswith(PARAM_PREFIX):
            continue
        rest = var[len(PARAM_PREFIX):]
        value = env[var]
        exact = escaped.get(rest)
        if exact is not None and exact.collection == "string":
            strings[exact.name] = value
            continue
        spec, suffix = _longest_prefix(rest, escaped)
        if spec is None:
            raise ConfigError(f"unknown parameter variable {var!r} (`kiln cmp plugin-yaml` "
                              "lists the known parameters)", source=var)
        if spec.collection == "array":
            if not suffix.isdigit():
                raise ConfigError(f"parameter {spec.name!r} is an array: expected "
                                  f"PARAM_{escape_name(spec.name)}_<index>", source=var)
            arrays.setdefault(spec.name, []).append((int(suffix), value))
        else:
            maps.setdefault(spec.name, {})[suffix] = value
    params = [Parameter(n, v) for n, v in strings.items()]
    params += [Parameter(n, [v for _, v in sorted(items)]) for n, items in arrays.items()]
    params += [Parameter(n, m) for n, m in maps.items()]
    order = {spec.name: i for i, spec in enumerate(rows)}
    return sorted(params, key=lambda p: order[p.name])


def _longest_prefix(rest: str, escaped: Mapping[str, ParamSpec]) -> tuple[ParamSpec | None, str]:
    best: ParamSpec | None = None
    best_len = -1
    for prefix, spec in escaped.items():
        if spec.collection == "string" or not rest.startswith(prefix + "_"):
            continue
        if len(prefix) > best_len and len(rest) > len(prefix) + 1:
            best, best_len = spec, len(prefix)
    return best, rest[best_len + 1:] if best is not None else ""


def _apply(settings: dict[str, Any], spec: ParamSpec, value: Value) -> None:
    if spec.collection == "string" and isinstance(value, str) and not value.strip():
        return  # an empty string leaves the option unset
    # helm --set and --set-string share helm.parameters: entries extend what is there
    set_option(settings, spec.path, option_value(spec, value))


def app_name(raw: str) -> str:
    """Argo CD names apps outside its own namespace ``<namespace>_<name>``; keep the name."""
    return raw.rpartition("_")[2].strip()


def _source_root(app_dir: Path, source_path: str) -> Path | None:
    """The unpacked repository root: ``app_dir`` minus the trailing components it shares with
    ``ARGOCD_APP_SOURCE_PATH`` (None when that is unset, absolute or climbs out)."""
    if not source_path.strip():
        return None  # outside Argo CD: the git work tree top, as `kiln render` uses
    rel = PurePosixPath(source_path.strip())
    if rel.is_absolute() or ".." in rel.parts:
        return None
    app_dir = Path(os.path.abspath(app_dir))
    parts = [p for p in rel.parts if p != "."]
    if not parts:
        return app_dir
    root = app_dir
    for part in reversed(parts):
        if root.name != part or root.parent == root:
            break
        root = root.parent
    return root if root != app_dir else None


__all__ = [
    "CmpSettings",
    "Parameter",
    "build_env",
    "load_app_from_environment",
    "parameters_from_environment",
    "settings_from_environment",
]
