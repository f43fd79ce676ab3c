"""The fake API's resource types: the built-in table and the types a CRD registers.

Each :class:`ResourceType` carries what discovery publishes (plural, singular, kind, scope,
verbs, short names, categories) plus what the fake's strategy needs: whether the kind has a
``status`` subresource, whether it tracks ``metadata.generation``, and the top-level (and, for a
few kinds, ``spec``) keys that strict field validation accepts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

META_KEYS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
})
"""The keys of ``ObjectMeta``: anything else under ``metadata`` is an unknown field."""


@dataclass(frozen=True)
class ResourceType:
    """One resource of one group-version, as discovery and the storage layer see it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status: bool = False
    generation: bool = False
    fields: frozenset[str] | None = None
    """Top-level keys besides apiVersion/kind/metadata; None means anything goes."""
    spec_fields: frozenset[str] | None = None
    """Keys accepted under ``spec``; None means anything goes."""
    schema: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    """A CRD version's openAPIV3Schema, validated recursively under Strict."""
    crd: bool = False

    @property
    def singular(self) -> str:
        """The lower-case singular name discovery publishes."""
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        """``group/version``, or ``version`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``plural.group`` (``plural`` for core) as the API's error messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """``Kind.group`` (``Kind`` for core), as ``is invalid`` messages name a kind."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


def _keys(*names: str) -> frozenset[str]:
    return frozenset(names)


_WORKLOAD_SPEC = {
    "Deployment": _keys("replicas", "selector", "template", "strategy", "minReadySeconds",
                        "revisionHistoryLimit", "paused", "progressDeadlineSeconds"),
    "StatefulSet": _keys("replicas", "selector", "template", "volumeClaimTemplates",
                         "serviceName", "podManagementPolicy", "updateStrategy",
                         "revisionHistoryLimit", "minReadySeconds",
                         "persistentVolumeClaimRetentionPolicy", "ordinals"),
    "DaemonSet": _keys("selector", "template", "updateStrategy", "minReadySeconds",
                       "revisionHistoryLimit"),
    "Job": _keys("parallelism", "completions", "activeDeadlineSeconds", "podFailurePolicy",
                 "successPolicy", "backoffLimit", "backoffLimitPerIndex", "maxFailedIndexes",
                 "selector", "manualSelector", "template", "ttlSecondsAfterFinished",
                 "completionMode", "suspend", "podReplacementPolicy", "managedBy"),
    "Service": _keys("ports", "selector", "clusterIP", "clusterIPs", "type", "externalIPs",
                     "sessionAffinity", "loadBalancerIP", "loadBalancerSourceRanges",
                     "externalName", "externalTrafficPolicy", "healthCheckNodePort",
                     "publishNotReadyAddresses", "sessionAffinityConfig", "ipFamilies",
                     "ipFamilyPolicy", "allocateLoadBalancerNodePorts", "loadBalancerClass",
                     "internalTrafficPolicy", "trafficDistribution"),
}


def _builtin(group: str, version: str, kind: str, plural: str, namespaced: bool, *,
             short: Iterable[str] = (), cats: Iterable[str] = (), status: bool = False,
             generation: bool = False, fields: Iterable[str] | None = ("spec",),
             ) -> ResourceType:
    return ResourceType(group=group, version=version, kind=kind, plural=plural,
                        namespaced=namespaced, short_names=tuple(short), categories=tuple(cats),
                        status=status, generation=generation,
                        fields=None if fields is None
                        else frozenset(fields) | ({"status"} if status else set()),
                        spec_fields=_WORKLOAD_SPEC.get(kind))


BUILTINS: tuple[ResourceType, ...] = (
    _builtin("", "v1", "Namespace", "namespaces", False, short=("ns",), status=True),
    _builtin("", "v1", "ConfigMap", "configmaps", True, short=("cm",),
             fields=("data", "binaryData", "immutable")),
    _builtin("", "v1", "Secret", "secrets", True,
             fields=("data", "stringData", "type", "immutable")),
    _builtin("", "v1", "Service", "services", True, short=("svc",), cats=("all",), status=True),
    _builtin("", "v1", "ServiceAccount", "serviceaccounts", True, short=("sa",),
             fields=("secrets", "imagePullSecrets", "automountServiceAccountToken")),
    _builtin("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, short=("pvc",),
             status=True),
    _builtin("", "v1", "Pod", "pods", True, short=("po",), cats=("all",), status=True),
    _builtin("", "v1", "ResourceQuota", "resourcequotas", True, short=("quota",), status=True),
    _builtin("", "v1", "LimitRange", "limitranges", True, short=("limits",)),
    _builtin("apps", "v1", "Deployment", "deployments", True, short=("deploy",), cats=("all",),
             status=True, generation=True),
    _builtin("apps", "v1", "StatefulSet", "statefulsets", True, short=("sts",), cats=("all",),
             status=True, generation=True),
    _builtin("apps", "v1", "DaemonSet", "daemonsets", True, short=("ds",), cats=("all",),
             status=True, generation=True),
    _builtin("apps", "v1", "ReplicaSet", "replicasets", True, short=("rs",), cats=("all",),
             status=True, generation=True),
    _builtin("batch", "v1", "Job", "jobs", True, cats=("all",), status=True, generation=True),
    _builtin("batch", "v1", "CronJob", "cronjobs", True, short=("cj",), cats=("all",),
             status=True, generation=True),
    _builtin("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False,
             fields=("rules", "aggregationRule")),
    _builtin("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings",
             False, fields=("subjects", "roleRef")),
    _builtin("rbac.authorization.k8s.io", "v1", "Role", "roles", True, fields=("rules",)),
    _builtin("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True,
             fields=("subjects", "roleRef")),
    _builtin("apiextensions.k8s.io", "v1", "CustomResourceDefinition",
             "customresourcedefinitions", False, short=("crd", "crds"), status=True,
             generation=True),
    _builtin("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, short=("sc",),
             fields=("provisioner", "parameters", "reclaimPolicy", "mountOptions",
                     "allowVolumeExpansion", "volumeBindingMode", "allowedTopologies")),
    _builtin("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    _builtin("networking.k8s.io", "v1", "Ingress", "ingresses", True, short=("ing",),
             status=True, generation=True),
    _builtin("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True,
             short=("netpol",), generation=True),
    _builtin("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True,
             short=("pdb",), status=True, generation=True),
    _builtin("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False,
             short=("pc",), fields=("value", "globalDefault", "description",
                                    "preemptionPolicy")),
    _builtin("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
             "validatingwebhookconfigurations", False, fields=("webhooks",), generation=True),
    _builtin("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
             "mutatingwebhookconfigurations", False, fields=("webhooks",), generation=True),
)

_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int]:
    """A sort key that orders versions as Kubernetes does (v2 > v1 > v1beta2 > v1alpha1 > x).

    Sort ascending and take the last, or sort descending by this key for the preferred first.
    """
    m = _VERSION_RE.match(version)
    if not m:
        return (0, 0, 0)
    major = int(m.group(1))
    stage = {"alpha": 1, "beta": 2}.get(m.group(2) or "", 3)
    minor = int(m.group(3) or 0)
    return (stage, major, minor)


def types_from_crd(crd: Mapping[str, Any]) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition serves (one per served version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out: list[ResourceType] = []
    for ver in spec.get("versions") or []:
        if not ver.get("served", True):
            continue
        subresources = ver.get("subresources") or {}
        schema = (ver.get("schema") or {}).get("openAPIV3Schema")
        out.append(ResourceType(
            group=str(spec.get("group", "")), version=str(ver.get("name", "")),
            kind=str(names.get("kind", "")), plural=str(names.get("plural", "")),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            status="status" in subresources, generation=True, fields=None,
            schema=schema if isinstance(schema, Mapping) else None, crd=True))
    return out


def unknown_schema_fields(value: Any, schema: Mapping[str, Any], path: str) -> list[str]:
    """The paths (``.spec.foo``) in ``value`` that an openAPIV3Schema does not declare.

    Follows ``properties``, ``items`` and ``additionalProperties``; stops at
    ``x-kubernetes-preserve-unknown-fields: true`` and at schemas with no ``properties``.
    """
    if schema.get("x-kubernetes-preserve-unknown-fields") is True:
        return []
    found: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        for key, sub in value.items():
            child = f"{path}.{key}"
            if isinstance(props, Mapping) and key in props:
                found += unknown_schema_fields(sub, props[key], child)
            elif isinstance(additional, Mapping):
                found += unknown_schema_fields(sub, additional, child)
            elif isinstance(props, Mapping) and additional is not True:
                found.append(child)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            found += unknown_schema_fields(item, schema["items"], f"{path}[{index}]")
    return found
