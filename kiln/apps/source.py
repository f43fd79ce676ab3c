"""One Argo CD ``ApplicationSource`` as kiln settings: the app directory, kiln.yaml-shaped
settings (application level) and the source's part of the build environment.

Field names and meaning are Argo CD's (``pkg/apis/application/v1alpha1/types.go``); each
field is mapped onto the kiln option that does the same (``helm.valueFiles`` ...), ignored
when it cannot change what is rendered (``targetRevision``: the checkout is what is
rendered), or refused with a ConfigError naming it. docs/applications.md has the table.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.apps.fields import Fields
from kiln.apps.repourl import is_checkout
from kiln.core.errors import ConfigError

HELM_VERSIONS = ("", "3", "v3")
"""``helm.version`` values kiln honours (it renders with Helm 3)."""


@dataclass(frozen=True)
class Checkout:
    """What a source is resolved against: the local checkout and the URLs that name it."""

    root: Path
    repo_urls: Sequence[str] = ()


@dataclass(frozen=True)
class RefSource:
    """A ``ref`` source of a multi-source Application: ``$<name>/...`` paths resolve in it."""

    name: str
    field: str  # ``spec.sources[2]``


@dataclass
class Mapped:
    """A source as kiln renders it."""

    path: str
    settings: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


def map_source(src: Fields, checkout: Checkout, refs: Mapping[str, RefSource],
               build_env: Mapping[str, str], *, multi: bool) -> Mapped | None:
    """Map the source ``src`` (its path is e.g. ``spec.sources[1]``); None for a ``ref``-only
    source of a multi-source Application (it only provides ``$ref`` files).

    ``build_env`` is the Application's part of the build environment (``ARGOCD_APP_NAME``...),
    used to substitute plugin env values as Argo CD does.
    """
    repo_url = src.string("repoURL", required=True)
    path = src.string("path")
    chart = src.string("chart")
    revision = src.string("targetRevision")
    ref = src.string("ref")
    src.string("name")  # names the source in multi-source naming and the UI
    src.string("tagPrefix")  # a git tag filter for targetRevision: the checkout is rendered
    types = [k for k in ("helm", "kustomize", "directory", "plugin") if src.has(k)]
    if len(types) > 1:
        raise src.error(None, "multiple application sources defined: " + ", ".join(
            src.at(t) for t in types))
    if multi and ref and not path and not chart:
        for key in ("helm", "kustomize", "directory", "plugin"):
            src.refuse(key, "a ref source without path is never rendered")
        if not is_checkout(repo_url, checkout.repo_urls):
            raise _not_checkout(src, repo_url, checkout)
        src.done()
        return None
    env = {
        "ARGOCD_APP_SOURCE_PATH": path,
        "ARGOCD_APP_SOURCE_REPO_URL": repo_url,
        "ARGOCD_APP_SOURCE_TARGET_REVISION": revision,
    }
    settings: dict[str, Any] = {}
    if chart:
        if path:
            raise src.error("path", "a chart source (spec chart) has no path in the checkout; "
                            "set one of path and chart")
        if repo_url.startswith("file://") or not repo_url:
            raise src.error("repoURL", "a chart source needs a Helm repository or OCI "
                            "registry URL")
        app_path = "."
        settings["type"] = "helm"
        settings["helm"] = {"repoURL": repo_url, "chart": chart}
        if revision:
            settings["helm"]["version"] = revision
    else:
        if repo_url.startswith("oci://"):
            raise src.error("repoURL", "not supported by kiln (an OCI artifact source; kiln "
                            "renders the local checkout)")
        if not is_checkout(repo_url, checkout.repo_urls):
            raise _not_checkout(src, repo_url, checkout)
        app_path = repo_path(path or ".", src, "path")
    mapped = Mapped(app_path, settings, env)
    helm = src.mapping("helm")
    if helm is not None:
        _helm(helm, mapped, refs, checkout, remote=bool(chart))
    kustomize = src.mapping("kustomize")
    if kustomize is not None:
        _no_chart(src, chart, "kustomize")
        _kustomize(kustomize, mapped)
    directory = src.mapping("directory")
    if directory is not None:
        _no_chart(src, chart, "directory")
        _directory(directory, mapped, checkout)
    plugin = src.mapping("plugin")
    if plugin is not None:
        _no_chart(src, chart, "plugin")
        _plugin(plugin, mapped, build_env)
    src.done()
    return mapped


def _no_chart(src: Fields, chart: str, key: str) -> None:
    if chart:
        raise src.error(key, "a chart source is rendered by Helm; only helm options apply")


def _not_checkout(src: Fields, url: str, checkout: Checkout) -> ConfigError:
    known = ", ".join(checkout.repo_urls)
    return src.error("repoURL", f"{url!r} is not the checkout being rendered "
                     f"(the checkout is {known})")


def repo_path(raw: str, where: Fields, key: str) -> str:
    """``raw`` as a normalised POSIX path relative to the repository root ('.' for the root);
    a path that leaves the repository is a ConfigError naming ``key``."""
    if "\x00" in raw:
        raise where.error(key, "must not hold a NUL character")
    norm = posixpath.normpath(raw.lstrip("/") or ".")
    if norm == ".." or norm.startswith("../"):
        raise where.error(key, f"{raw!r} leaves the repository")
    return norm


# -- helm --------------------------------------------------------------------------------------

def _helm(helm: Fields, mapped: Mapped, refs: Mapping[str, RefSource], checkout: Checkout,
          *, remote: bool) -> None:
    out: dict[str, Any] = mapped.settings.setdefault("helm", {})
    mapped.settings.setdefault("type", "helm")
    for key in ("releaseName", "namespace", "values"):
        value = helm.string(key)
        if value:
            out[key] = value
    for key in ("skipCrds", "skipTests", "skipSchemaValidation", "ignoreMissingValueFiles",
                "passCredentials"):
        if helm.boolean(key):
            out[key] = True
    version = helm.string("version")
    if version not in HELM_VERSIONS:
        raise helm.error("version", f"Helm {version!r} is not supported by kiln (it renders "
                         "with Helm 3)")
    value_files = []
    for index, raw in enumerate(helm.strings("valueFiles")):
        value_files.append(_file_path(raw, mapped.path, refs, helm, f"valueFiles[{index}]",
                                      remote=remote))
    if value_files:
        out["valueFiles"] = value_files
    values_object = helm.raw("valuesObject")
    if values_object is not None:
        if not isinstance(values_object, dict):
            raise helm.error("valuesObject", "must be a mapping")
        out["valuesObject"] = values_object
    parameters = []
    for item in helm.items("parameters"):
        param: dict[str, Any] = {"name": item.string("name"), "value": item.string("value")}
        if item.boolean("forceString"):
            param["forceString"] = True
        item.done()
        parameters.append(param)
    if parameters:
        out["parameters"] = parameters
    file_parameters = []
    for item in helm.items("fileParameters"):
        file_parameters.append({
            "name": item.string("name"),
            "path": _file_path(item.string("path"), mapped.path, refs, item, "path",
                               remote=remote),
        })
        item.done()
    if file_parameters:
        out["fileParameters"] = file_parameters
    _capabilities(helm, mapped)
    helm.done()


def _capabilities(section: Fields, mapped: Mapped) -> None:
    """``kubeVersion``/``apiVersions`` of a helm or kustomize section: kiln's app-level keys,
    and ``KUBE_VERSION``/``KUBE_API_VERSIONS`` in the build environment."""
    kube_version = section.string("kubeVersion")
    api_versions = section.strings("apiVersions")
    if kube_version:
        mapped.settings["kubeVersion"] = kube_version
        mapped.env["KUBE_VERSION"] = kube_version
    if api_versions:
        mapped.settings["apiVersions"] = api_versions
        mapped.env["KUBE_API_VERSIONS"] = ",".join(api_versions)


def _file_path(raw: str, app_path: str, refs: Mapping[str, RefSource], where: Fields,
               key: str, *, remote: bool) -> str:
    """A value-file or file-parameter path as kiln's helm option takes it (relative to the app
    directory): a ``$ref/...`` path resolves in the ref source's checkout, which is this one;
    a URL is refused (kiln reads value files from the checkout only)."""
    if "://" in raw:
        raise where.error(key, "not supported by kiln (a value file URL; kiln reads value "
                          "files from the checkout only)")
    if raw.startswith("$"):
        head, _, rest = raw.partition("/")
        ref = refs.get(head[1:])
        if ref is None:
            known = ", ".join(sorted(f"${name}" for name in refs)) or "none"
            raise where.error(key, f"{head!r} names no ref source of spec.sources "
                              f"(refs: {known})")
        target = repo_path(rest, where, key)
        return posixpath.relpath(target, app_path)
    if remote:
        raise where.error(key, "not supported by kiln (a file inside a remote chart; use a "
                          "$ref path into the checkout)")
    if raw.startswith("/"):
        return raw  # relative to the source root, as in Argo CD and kiln
    joined = posixpath.normpath(posixpath.join(app_path, raw))
    if joined.startswith(".."):
        raise where.error(key, f"{raw!r} leaves the repository")
    return raw


# -- kustomize ---------------------------------------------------------------------------------

_KUSTOMIZE_STRINGS = ("namePrefix", "nameSuffix", "namespace")
_KUSTOMIZE_BOOLS = ("forceCommonLabels", "forceCommonAnnotations", "commonAnnotationsEnvsubst",
                    "labelWithoutSelector", "labelIncludeTemplates", "ignoreMissingComponents")


def _kustomize(section: Fields, mapped: Mapped) -> None:
    out: dict[str, Any] = {}
    mapped.settings["type"] = "kustomize"
    for key in _KUSTOMIZE_STRINGS:
        value = section.string(key)
        if value:
            out[key] = value
    for key in _KUSTOMIZE_BOOLS:
        if section.boolean(key):
            out[key] = True
    for key in ("images", "components"):
        values = section.strings(key)
        if values:
            out[key] = values
    for key in ("commonLabels", "commonAnnotations"):
        mapping = section.string_map(key)
        if mapping:
            out[key] = mapping
    replicas = []
    for item in section.items("replicas"):
        count = item.raw("count")
        if isinstance(count, bool) or not isinstance(count, (int, str)):
            raise item.error("count", "must be an integer or a string holding one")
        replicas.append({"name": item.string("name", required=True), "count": count})
        item.done()
    if replicas:
        out["replicas"] = replicas
    patches = [_patch(item) for item in section.items("patches")]
    if patches:
        out["patches"] = patches
    version = section.string("version")
    if version:
        raise section.error("version", "not supported by kiln (it builds with one kustomize: "
                            "KILN_KUSTOMIZE or kubectl's)")
    _capabilities(section, mapped)
    section.done()
    if out:
        mapped.settings["kustomize"] = out


def _patch(item: Fields) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key in ("path", "patch"):
        value = item.string(key)
        if value:
            patch[key] = value
    target = item.mapping("target")
    if target is not None:
        selector = {}
        for key in ("group", "version", "kind", "name", "namespace", "labelSelector",
                    "annotationSelector"):
            value = target.string(key)
            if value:
                selector[key] = value
        target.done()
        patch["target"] = selector
    options = item.raw("options")
    if options is not None:
        if not isinstance(options, dict) or not all(isinstance(v, bool)
                                                     for v in options.values()):
            raise item.error("options", "must map option names to true or false")
        patch["options"] = dict(options)
    item.done()
    return patch


# -- directory and jsonnet ---------------------------------------------------------------------

def _directory(section: Fields, mapped: Mapped, checkout: Checkout) -> None:
    recurse = section.boolean("recurse")
    include = section.string("include")
    exclude = section.string("exclude")
    section.refuse("disableExtensionFilter", "kiln's directory apps read *.yaml, *.yml and "
                   "*.json files only")
    jsonnet = section.mapping("jsonnet")
    options: dict[str, Any] = {}
    if jsonnet is not None:
        for key in ("extVars", "tlas"):
            variables = []
            for item in jsonnet.items(key):
                var: dict[str, Any] = {"name": item.string("name"),
                                       "value": item.string("value")}
                if item.boolean("code"):
                    var["code"] = True
                item.done()
                variables.append(var)
            if variables:
                options[key] = variables
        libs = jsonnet.strings("libs")
        if libs:
            options["libs"] = libs
        jsonnet.done()
    section.done()
    if _has_jsonnet(checkout.root / mapped.path):
        mapped.settings["type"] = "jsonnet"
        for key, value in (("recurse", recurse), ("include", include), ("exclude", exclude)):
            if value:
                raise section.error(key, "not supported by kiln for a Jsonnet directory (kiln "
                                    "evaluates one entry file, main.jsonnet or the only "
                                    "*.jsonnet)")
        if options:
            mapped.settings["jsonnet"] = options
        return
    if options:
        raise section.error("jsonnet", "the directory holds no *.jsonnet file at its root, "
                            "which is the only place kiln evaluates Jsonnet")
    mapped.settings["type"] = "directory"
    out: dict[str, Any] = {}
    if recurse:
        out["recurse"] = True
    if include:
        out["include"] = include
    if exclude:
        out["exclude"] = exclude
    if out:
        mapped.settings["directory"] = out


def _has_jsonnet(directory: Path) -> bool:
    try:
        return any(p.suffix == ".jsonnet" and p.is_file() for p in directory.iterdir())
    except OSError:
        return False


# -- plugin ------------------------------------------------------------------------------------

PLUGIN_NAME = "kiln"


def _plugin(section: Fields, mapped: Mapped, build_env: Mapping[str, str]) -> None:
    from kiln.core.envsubst import envsubst

    name = section.string("name")
    if name and name != PLUGIN_NAME and not name.startswith(PLUGIN_NAME + "-"):
        raise section.error("name", f"{name!r} is not kiln's plugin: kiln renders the "
                            f"sources of plugin {PLUGIN_NAME!r} (or of no named plugin) only")
    env = {**build_env, **mapped.env}
    for item in section.items("env"):
        var = item.string("name", required=True)
        if "=" in var:
            raise item.error("name", f"{var!r} cannot be an environment variable name")
        value = item.string("value")
        item.done()
        mapped.env[f"ARGOCD_ENV_{var}"] = envsubst(value, env)
    params = _plugin_parameters(section)
    if params:
        text = go_json(params)
        mapped.env["ARGOCD_APP_PARAMETERS"] = text
        mapped.env.update(_param_vars(params))
        mapped.settings.update(_parameter_settings(text, section))
    section.done()


def _plugin_parameters(section: Fields) -> list[dict[str, Any]]:
    """The parameters as Argo CD marshals them: ``name`` and each of ``string``/``array``/
    ``map`` that is present (an empty array or map stays, as ``[]``/``{}``)."""
    params: list[dict[str, Any]] = []
    for item in section.items("parameters"):
        param: dict[str, Any] = {"name": item.string("name")}
        if item.has("string"):
            param["string"] = item.string("string")
        if "array" in item.data:
            param["array"] = item.strings("array")
        if "map" in item.data:
            param["map"] = item.string_map("map")
        item.done()
        params.append(param)
    return params


def go_json(data: Any) -> str:
    """JSON as Go's ``encoding/json`` writes a ``map[string]any``: keys sorted, no blanks,
    ``<``, ``>``, ``&``, U+2028 and U+2029 escaped."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _param_vars(params: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``PARAM_<NAME>``, ``PARAM_<NAME>_<i>`` and ``PARAM_<NAME>_<KEY>``, as Argo CD sets them."""
    from kiln.cmp.environment import escape_name

    out: dict[str, str] = {}
    for param in params:
        base = "PARAM_" + escape_name(param["name"])
        if "string" in param:
            out[base] = param["string"]
        for key, value in param.get("map", {}).items():
            out[f"{base}_{escape_name(key)}"] = value
        for index, value in enumerate(param.get("array", [])):
            out[f"{base}_{index}"] = value
    return out


def _parameter_settings(text: str, section: Fields) -> dict[str, Any]:
    """What kiln's CMP parameter table makes of the parameters (kiln.yaml-shaped)."""
    from kiln.cmp.environment import settings_from_environment
    from kiln.cmp.parameters import SOURCE, table

    try:
        return settings_from_environment({SOURCE: text}, rows=table()).settings
    except ConfigError as exc:
        raise section.error("parameters", exc.message) from None
