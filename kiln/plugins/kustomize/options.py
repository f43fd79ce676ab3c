"""The ``kustomize:`` section of kiln.yaml (Argo CD's ``spec.source.kustomize``) and build flags.

Field names are Argo CD's. ``buildOptions`` is Argo CD's ``kustomize.buildOptions`` string; kiln
accepts only an allowlist of flags that neither run programs, write files nor read outside the
app (``KILN_KUSTOMIZE_ALLOW_BUILD_OPTIONS`` in kiln's own environment widens it), so every
build stays confined to the app's source root.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kiln.core.app import Options
from kiln.core.argv import api_version as check_api_version
from kiln.core.argv import dns_subdomain, name_affix, no_control, shown
from kiln.core.argv import kube_version as check_kube_version
from kiln.core.errors import ConfigError

if TYPE_CHECKING:
    from kiln.core.app import App

LOAD_RESTRICTORS = ("LoadRestrictionsRootOnly", "LoadRestrictionsNone")
ALLOW_ENV = "KILN_KUSTOMIZE_ALLOW_BUILD_OPTIONS"
"""The operator's switch (kiln's own environment): more build flags an app may use."""

_BOOL_FLAGS = frozenset({"--enable-helm", "--helm-debug", "--enable-managedby-label"})
_VALUE_FLAGS = frozenset({"--load-restrictor", "--helm-kube-version", "--helm-api-versions",
                          "--reorder"})
REORDER = ("legacy", "none")
_NEVER = {
    "--output": "writes files",
    "-o": "writes files",
    "--helm-command": "kiln always runs its own helm (set KILN_HELM to choose it)",
}
"""Flags no switch allows."""
_REFUSED = {
    "--enable-alpha-plugins": "runs plugin programs",
    "--enable-exec": "runs plugin programs",
    "--as-current-user": "runs plugin containers",
    "--mount": "mounts host paths into plugin containers",
    "--network": "gives plugin containers network access",
    "--network-name": "configures plugin containers",
    "--env": "passes variables to plugin containers",
    "-e": "passes variables to plugin containers",
}
"""Flags refused unless the operator lists them in ``KILN_KUSTOMIZE_ALLOW_BUILD_OPTIONS``."""
NONE_RESTRICTOR = "--load-restrictor=LoadRestrictionsNone"
"""How the operator allows ``--load-restrictor LoadRestrictionsNone`` (files outside the app)."""


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


def check_app_values(app: App, opts: KustomizeOptions, flags: BuildFlags) -> None:
    """Check the shape of every option value kiln writes into the kustomization or onto the
    kustomize command line (ConfigError naming the option): name prefix/suffix, replica names
    and counts, components, and — with ``--enable-helm`` — the app's kubeVersion/apiVersions.
    Images, labels, annotations and the namespace are checked by :mod:`.edit` after
    substitution."""
    name_affix(opts.name_prefix, "kustomize.namePrefix")
    name_affix(opts.name_suffix, "kustomize.nameSuffix")
    for index, rep in enumerate(opts.replicas):
        dns_subdomain(rep.name, f"kustomize.replicas[{index}].name")
    for index, component in enumerate(opts.components):
        no_control(component, f"kustomize.components[{index}]")
    if flags.enable_helm:
        if app.kube_version:
            check_kube_version(app.kube_version, "kubeVersion")
        for api in app.api_versions:
            check_api_version(api, "apiVersions")


def operator_allowed(env: Mapping[str, str]) -> frozenset[str]:
    """The flags the operator allows beyond the default list: :data:`ALLOW_ENV`,
    comma-separated (``--enable-alpha-plugins,--load-restrictor=LoadRestrictionsNone``)."""
    return frozenset(f.strip() for f in env.get(ALLOW_ENV, "").split(",") if f.strip())


def parse_build_options(text: str, operator: Mapping[str, str] | None = None) -> BuildFlags:
    """Split ``buildOptions`` on whitespace (as Argo CD does) and check every flag.

    Accepted by default: ``--enable-helm``, ``--helm-debug``, ``--enable-managedby-label``
    (optionally ``=true|false``), ``--helm-kube-version V``, ``--helm-api-versions A[,B]``,
    ``--reorder legacy|none`` and ``--load-restrictor LoadRestrictionsRootOnly``; values are
    checked for their shape and passed on as ``--flag=VALUE``. ``operator`` is kiln's own
    environment: ``KILN_KUSTOMIZE_ALLOW_BUILD_OPTIONS`` there may allow flags that run
    programs or reach outside the app (``--enable-exec``, ``--mount=...``,
    ``--load-restrictor=LoadRestrictionsNone``); such a flag must be written as one word
    (``--flag`` or ``--flag=VALUE``). ``--output`` and ``--helm-command`` are never accepted.
    Anything else is a ConfigError naming the flag.
    """
    allowed = operator_allowed(os.environ if operator is None else operator)
    words = text.split()
    argv: list[str] = []
    enable_helm = False
    restrictor = "LoadRestrictionsRootOnly"
    kube_version: str | None = None
    api_versions: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        no_control(word, "kustomize.buildOptions")
        name, eq, value = word.partition("=")
        if name in _NEVER:
            raise ConfigError(f"kustomize.buildOptions: {name} is not allowed: {_NEVER[name]}")
        if name in _REFUSED:
            if name not in allowed:
                raise ConfigError(f"kustomize.buildOptions: {name} is not allowed: "
                                  f"{_REFUSED[name]} (an operator may allow it with {ALLOW_ENV})")
            argv.append(word)
            i += 1
            continue
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
            what = f"kustomize.buildOptions {name}"
            if name == "--load-restrictor":
                if value not in LOAD_RESTRICTORS:
                    raise ConfigError(f"kustomize.buildOptions: --load-restrictor must be one "
                                      f"of {', '.join(LOAD_RESTRICTORS)}, got {shown(value)}")
                if value == "LoadRestrictionsNone" and not (
                        {NONE_RESTRICTOR, "--load-restrictor"} & allowed):
                    raise ConfigError("kustomize.buildOptions: --load-restrictor "
                                      "LoadRestrictionsNone is not allowed: it reads files "
                                      f"outside the app (an operator may allow it with "
                                      f"{ALLOW_ENV}={NONE_RESTRICTOR})")
                restrictor = value
            elif name == "--helm-kube-version":
                kube_version = check_kube_version(value, what)
            elif name == "--helm-api-versions":
                api_versions.extend(check_api_version(v, what) for v in value.split(",") if v)
            else:
                if value not in REORDER:
                    raise ConfigError(f"kustomize.buildOptions: --reorder must be one of "
                                      f"{', '.join(REORDER)}, got {shown(value)}")
                argv.append(f"{name}={value}")
            continue
        if name in allowed or word in allowed:
            argv.append(word)
            i += 1
            continue
        default = ", ".join(sorted(_BOOL_FLAGS | _VALUE_FLAGS))
        raise ConfigError(f"kustomize.buildOptions: unsupported argument {shown(word)} "
                          f"(allowed: {default}; an operator may allow more with {ALLOW_ENV})")
    return BuildFlags(tuple(argv), enable_helm, restrictor, kube_version, tuple(api_versions))
