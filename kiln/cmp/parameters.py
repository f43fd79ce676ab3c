"""The CMP parameter table: every Argo CD plugin parameter kiln accepts and the option it sets.

One row per parameter: its name (as written in ``spec.source.plugin.parameters``), its
collection type (``string``, ``array`` or ``map``), the UI title and tooltip announced in
``plugin.yaml``, and where it lands in the kiln.yaml-shaped settings. The same table drives the
static announcements, the environment parser and the documentation, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kiln.core.errors import ConfigError

Collection = Literal["string", "array", "map"]
# How a raw parameter value becomes an option value.
Shape = Literal[
    "str",          # string -> string
    "bool",         # "true"/"false" -> bool
    "list",         # array -> list of strings
    "map",          # map -> mapping of strings
    "helm-set",     # map -> [{name, value}]
    "helm-set-string",  # map -> [{name, value, forceString: true}]
    "helm-set-file",    # map -> [{name, path}]
    "replicas",     # map -> [{name, count}] (count an integer)
    "vars",         # map -> [{name, value}]
    "vars-code",    # map -> [{name, value, code: true}]
]

SOURCE = "ARGOCD_APP_PARAMETERS"


@dataclass(frozen=True)
class ParamSpec:
    """One row of the table: a parameter and the option it sets.

    ``section`` is the settings section (``helm``, ``kustomize``...) or None for a top-level
    key; ``key`` is the camelCase option name agreed for that section.
    """

    name: str
    collection: Collection
    section: str | None
    key: str
    shape: Shape
    title: str
    tooltip: str

    @property
    def target(self) -> str:
        """Where the value lands, as written in kiln.yaml (``helm.valueFiles``)."""
        return f"{self.section}.{self.key}" if self.section else self.key

    @property
    def item_type(self) -> str:
        """The announced ``itemType``: ``boolean`` for flags, else ``string``."""
        return "boolean" if self.shape == "bool" else "string"

    def announcement(self) -> dict[str, Any]:
        """The static ParameterAnnouncement for this row (no default value)."""
        return {
            "name": self.name,
            "title": self.title,
            "tooltip": self.tooltip,
            "itemType": self.item_type,
            "collectionType": self.collection,
        }


def _p(name: str, collection: Collection, target: str, shape: Shape, title: str,
       tooltip: str) -> ParamSpec:
    section, _, key = target.rpartition(".")
    return ParamSpec(name, collection, section or None, key, shape, title, tooltip)


TABLE: tuple[ParamSpec, ...] = (
    _p("type", "string", "type", "str", "Renderer",
       "Force a renderer: helm, kustomize, jsonnet or directory (default: detected)."),
    _p("allow-empty", "string", "allowEmpty", "bool", "Allow an empty render",
       "Accept a render of no object (otherwise an error: Argo CD would prune the app)."),
    # Helm
    _p("helm-release-name", "string", "helm.releaseName", "str", "Helm release name",
       "Release name (default: the Argo CD application name)."),
    _p("helm-namespace", "string", "helm.namespace", "str", "Helm namespace",
       "Namespace helm template renders with (default: the application's namespace)."),
    _p("helm-values-files", "array", "helm.valueFiles", "list", "Helm value files",
       "Value files, relative to the chart directory, applied in order."),
    _p("helm-ignore-missing-value-files", "string", "helm.ignoreMissingValueFiles", "bool",
       "Ignore missing value files", "Skip value files that do not exist instead of failing."),
    _p("helm-values", "string", "helm.values", "str", "Helm values (YAML)",
       "Inline values YAML, applied after the value files."),
    _p("helm-parameters", "map", "helm.parameters", "helm-set", "Helm parameters",
       "Values set like helm --set NAME=VALUE (highest precedence)."),
    _p("helm-string-parameters", "map", "helm.parameters", "helm-set-string",
       "Helm string parameters", "Values set like helm --set-string NAME=VALUE."),
    _p("helm-file-parameters", "map", "helm.fileParameters", "helm-set-file",
       "Helm file parameters", "Values read from files like helm --set-file NAME=PATH."),
    _p("helm-skip-crds", "string", "helm.skipCrds", "bool", "Skip CRDs",
       "Do not render the chart's crds/ directory."),
    _p("helm-skip-tests", "string", "helm.skipTests", "bool", "Skip tests",
       "Do not render the chart's test hooks."),
    _p("helm-skip-schema-validation", "string", "helm.skipSchemaValidation", "bool",
       "Skip schema validation", "Do not validate values against values.schema.json."),
    _p("helm-pass-credentials", "string", "helm.passCredentials", "bool",
       "Pass credentials", "Pass repository credentials to every domain."),
    # Kustomize
    _p("kustomize-images", "array", "kustomize.images", "list", "Kustomize images",
       "Image overrides like kustomize edit set image (name=newName:tag)."),
    _p("kustomize-name-prefix", "string", "kustomize.namePrefix", "str", "Name prefix",
       "Prefix added to every resource name."),
    _p("kustomize-name-suffix", "string", "kustomize.nameSuffix", "str", "Name suffix",
       "Suffix added to every resource name."),
    _p("kustomize-namespace", "string", "kustomize.namespace", "str", "Kustomize namespace",
       "Namespace set on every namespaced resource."),
    _p("kustomize-common-labels", "map", "kustomize.commonLabels", "map", "Common labels",
       "Labels added to every resource."),
    _p("kustomize-force-common-labels", "string", "kustomize.forceCommonLabels", "bool",
       "Force common labels", "Overwrite existing labels with the common labels."),
    _p("kustomize-common-annotations", "map", "kustomize.commonAnnotations", "map",
       "Common annotations", "Annotations added to every resource."),
    _p("kustomize-force-common-annotations", "string", "kustomize.forceCommonAnnotations",
       "bool", "Force common annotations",
       "Overwrite existing annotations with the common annotations."),
    _p("kustomize-replicas", "map", "kustomize.replicas", "replicas", "Replicas",
       "Replica counts by workload name (NAME: COUNT)."),
    _p("kustomize-components", "array", "kustomize.components", "list", "Components",
       "Kustomize components added to the kustomization."),
    _p("kustomize-ignore-missing-components", "string", "kustomize.ignoreMissingComponents",
       "bool", "Ignore missing components", "Skip components that do not exist."),
    _p("kustomize-build-options", "string", "kustomize.buildOptions", "str", "Build options",
       "Extra kustomize build flags, e.g. --enable-helm."),
    # Jsonnet
    _p("jsonnet-main", "string", "jsonnet.main", "str", "Jsonnet entry file",
       "The main .jsonnet file (default: detected)."),
    _p("jsonnet-tlas", "map", "jsonnet.tlas", "vars", "Top-level arguments",
       "Top-level arguments as strings (NAME: VALUE)."),
    _p("jsonnet-tlas-code", "map", "jsonnet.tlas", "vars-code", "Top-level arguments (code)",
       "Top-level arguments as Jsonnet code (NAME: CODE)."),
    _p("jsonnet-ext-vars", "map", "jsonnet.extVars", "vars", "External variables",
       "External variables as strings (NAME: VALUE)."),
    _p("jsonnet-ext-vars-code", "map", "jsonnet.extVars", "vars-code",
       "External variables (code)", "External variables as Jsonnet code (NAME: CODE)."),
    _p("jsonnet-libs", "array", "jsonnet.libs", "list", "Library paths",
       "Library search paths, relative to the repository root."),
    # Plain directory
    _p("directory-recurse", "string", "directory.recurse", "bool", "Recurse",
       "Read manifests in sub-directories too."),
    _p("directory-include", "string", "directory.include", "str", "Include glob",
       "Only read files matching this glob, e.g. '{a.yaml,b/*.yaml}'."),
    _p("directory-exclude", "string", "directory.exclude", "str", "Exclude glob",
       "Skip files matching this glob."),
)

BY_NAME: Mapping[str, ParamSpec] = {spec.name: spec for spec in TABLE}


def spec_for(name: str) -> ParamSpec:
    """The row for parameter ``name``; an unknown name is a ConfigError naming it."""
    spec = BY_NAME.get(name)
    if spec is None:
        raise ConfigError(
            f"unknown parameter {name!r} (`kiln cmp plugin-yaml` lists the known ones)",
            source=SOURCE,
        )
    return spec


def parse_bool(name: str, text: str) -> bool:
    """``"true"``/``"false"`` (any case, surrounding blanks ignored; also Go's ``1/t/0/f``, by
    kiln's one boolean parser) as a bool."""
    from kiln.core.trust import parse_bool as strict

    try:
        if text.strip():
            return strict(text, name=name)
    except ConfigError:
        pass
    raise ConfigError(f"parameter {name!r} must be 'true' or 'false', got {text!r}",
                      source=SOURCE)


def option_value(spec: ParamSpec, value: str | list[str] | dict[str, str]) -> Any:
    """Turn a raw parameter value (already checked against the collection) into the option."""
    if spec.shape == "str":
        return value
    if spec.shape == "bool":
        assert isinstance(value, str)
        return parse_bool(spec.name, value)
    if spec.shape == "list":
        return list(value)
    assert isinstance(value, dict)
    if spec.shape == "map":
        return dict(value)
    if spec.shape == "helm-set":
        return [{"name": k, "value": v} for k, v in value.items()]
    if spec.shape == "helm-set-string":
        return [{"name": k, "value": v, "forceString": True} for k, v in value.items()]
    if spec.shape == "helm-set-file":
        return [{"name": k, "path": v} for k, v in value.items()]
    if spec.shape == "replicas":
        return [{"name": k, "count": _count(spec.name, k, v)} for k, v in value.items()]
    if spec.shape == "vars":
        return [{"name": k, "value": v} for k, v in value.items()]
    return [{"name": k, "value": v, "code": True} for k, v in value.items()]


def _count(param: str, name: str, text: str) -> int:
    try:
        count = int(text.strip())
    except ValueError:
        count = -1
    if count < 0:
        raise ConfigError(f"parameter {param!r}: replica count for {name!r} must be a "
                          f"non-negative integer, got {text!r}", source=SOURCE)
    return count


def static_announcements() -> list[dict[str, Any]]:
    """Every row of the table as a static ParameterAnnouncement, in table order."""
    return [spec.announcement() for spec in TABLE]
