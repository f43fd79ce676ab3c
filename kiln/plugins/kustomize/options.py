"""The ``kustomize:`` section of kiln.yaml (Argo CD's ``spec.source.kustomize``) and build flags.

Field names are Argo CD's. ``buildOptions`` is Argo CD's ``kustomize.buildOptions`` string; kiln
accepts only the flags that neither run programs nor write files, so every build stays confined
to the app's source root.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kiln.core.app import Options
from kiln.core.errors import ConfigError

LOAD_RESTRICTORS = ("LoadRestrictionsRootOnly", "LoadRestrictionsNone")

_BOOL_FLAGS = frozenset({"--enable-helm", "--helm-debug", "--enable-managedby-label"})
_VALUE_FLAGS = frozenset({"--load-restrictor", "--helm-kube-version", "--helm-api-versions",
                          "--reorder"})
_REFUSED = {
    "--enable-alpha-plugins": "runs plugin programs",
    "--enable-exec": "runs plugin programs",
    "--as-current-user": "runs plugin containers",
    "--mount": "mounts host paths into plugin containers",
    "--network": "gives plugin containers network access",
    "--network-name": "configures plugin containers",
    "--env": "passes variables to plugin containers",
    "-e": "passes variables to plugin containers",
    "--output": "writes files",
    "-o": "writes files",
    "--helm-command": "kiln always runs its own helm (set KILN_HELM to choose it)",
}


class Replica(Options, frozen=True):
    """One ``replicas`` entry: the workload's name and its count (an int, or a string of one)."""

    name: str
    count: int | str


class PatchTarget(Options, frozen=True):
    """A patch's ``target`` selector, as in kustomize."""

    group: str | None = None
    version: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    label_selector: str | None = None
    annotation_selector: str | None = None


class Patch(Options, frozen=True):
    """One ``patches`` entry: a file (``path``, relative to the app) or an inline ``patch``."""

    path: str | None = None
    patch: str | None = None
    target: PatchTarget | None = None
    options: dict[str, bool] | None = None


class KustomizeOptions(Options, frozen=True):
    """The ``kustomize:`` section of kiln.yaml, applied the way Argo CD's ``kustomize edit`` is."""

    name_prefix: str = ""
    name_suffix: str = ""
    images: list[str] = []
    replicas: list[Replica] = []
    common_labels: dict[str, str] = {}
    force_common_labels: bool = False
    label_without_selector: bool = False
    label_include_templates: bool = False
    common_annotations: dict[str, str] = {}
    force_common_annotations: bool = False
    common_annotations_envsubst: bool = False
    namespace: str = ""
    patches: list[Patch] = []
    components: list[str] = []
    ignore_missing_components: bool = False
    build_options: str = ""

    def edits_app(self) -> bool:
        """Tell whether an option changes the app's kustomization (Argo CD's ``kustomize edit``)."""
        return bool(self.name_prefix or self.name_suffix or self.images or self.replicas
                    or self.common_labels or self.common_annotations or self.namespace
                    or self.patches or self.components)


@dataclass(frozen=True)
class BuildFlags:
    """``buildOptions`` checked and split: the flags passed on, and what kiln itself needs."""

    argv: tuple[str, ...] = ()
    enable_helm: bool = False
    load_restrictor: str = "LoadRestrictionsRootOnly"
    helm_kube_version: str | None = None
    helm_api_versions: tuple[str, ...] = field(default_factory=tuple)


def parse_build_options(text: str) -> BuildFlags:
    """Split ``buildOptions`` on whitespace (as Argo CD does) and check every flag.

    Flags that run programs or write files are refused with a ConfigError naming them, as is any
    flag kiln does not know; ``--flag=value`` and ``--flag value`` are both accepted.
    """
    words = text.split()
    argv: list[str] = []
    enable_helm = False
    restrictor = "LoadRestrictionsRootOnly"
    kube_version: str | None = None
    api_versions: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        name, eq, value = word.partition("=")
        if name in _REFUSED:
            raise ConfigError(f"kustomize.buildOptions: {name} is not allowed: {_REFUSED[name]}")
        if name in _BOOL_FLAGS:
            if eq and value not in ("true", "false"):
                raise ConfigError(f"kustomize.buildOptions: {name} takes true or false")
            on = value != "false"
            if name == "--enable-helm":
                enable_helm = on
            else:
                argv.append(f"{name}={'true' if on else 'false'}")
            i += 1
            continue
        if name in _VALUE_FLAGS:
            if not eq:
                if i + 1 >= len(words):
                    raise ConfigError(f"kustomize.buildOptions: {name} needs a value")
                value = words[i + 1]
                i += 1
            i += 1
            if name == "--load-restrictor":
                if value not in LOAD_RESTRICTORS:
                    raise ConfigError(f"kustomize.buildOptions: --load-restrictor must be one "
                                      f"of {', '.join(LOAD_RESTRICTORS)}, got {value!r}")
                restrictor = value
            elif name == "--helm-kube-version":
                kube_version = value
            elif name == "--helm-api-versions":
                api_versions.extend(v for v in value.split(",") if v)
            else:
                argv.extend((name, value))
            continue
        allowed = ", ".join(sorted(_BOOL_FLAGS | _VALUE_FLAGS))
        raise ConfigError(f"kustomize.buildOptions: unsupported argument {word!r} "
                          f"(allowed: {allowed})")
    return BuildFlags(tuple(argv), enable_helm, restrictor, kube_version, tuple(api_versions))
