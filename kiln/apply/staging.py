"""The order objects are applied in: Argo CD sync waves, then Flux's stages and kind order.

:func:`plan` cuts the objects into :class:`Stage` s, each applied (and, when ``wait`` is set,
waited on until Current) before the next starts:

1. Objects are grouped by their ``argocd.argoproj.io/sync-wave`` annotation (an integer,
   default 0); waves run in ascending order.
2. Inside a wave, like Flux's ``ApplyAllStaged``: first the *cluster definitions*
   (CustomResourceDefinition, Namespace, ClusterRole, ClusterRoleBinding), always waited on so
   that kinds a CRD defines resolve; then the ``*Class`` kinds (StorageClass, IngressClass...),
   then everything else.
3. Inside a stage, objects are sorted by :data:`KIND_ORDER` (then group, kind, namespace, name):
   unlisted kinds after the listed ones, admission webhooks last of all.

Pruning deletes run in the reverse of this order (:func:`delete_order`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kiln.core.errors import ApplyError

SYNC_WAVE = "argocd.argoproj.io/sync-wave"

KIND_ORDER: tuple[str, ...] = (
    "CustomResourceDefinition", "Namespace", "ClusterRole", "ClusterClass", "RuntimeClass",
    "PriorityClass", "StorageClass", "VolumeSnapshotClass", "IngressClass", "GatewayClass",
    "ClusterRoleBinding", "ResourceQuota", "ServiceAccount", "Role", "RoleBinding", "ConfigMap",
    "Secret", "Service", "LimitRange", "Deployment", "StatefulSet", "CronJob",
    "PodDisruptionBudget",
)
"""Flux's kind order (``fluxcd/pkg/ssa``): these first, in this order."""

LAST_KINDS: tuple[str, ...] = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
"""Applied after every other kind (a webhook must not intercept what it serves)."""

CLUSTER_DEFINITIONS = frozenset(
    {"CustomResourceDefinition", "Namespace", "ClusterRole", "ClusterRoleBinding"})
"""The first stage of each wave, waited on until Current before anything else is applied."""

_RANK = {kind: i for i, kind in enumerate(KIND_ORDER)}
_OTHER = len(KIND_ORDER)
_LAST = {kind: _OTHER + 1 + i for i, kind in enumerate(LAST_KINDS)}


@dataclass(frozen=True)
class Stage:
    """One step of an apply: its wave, its name (``definitions``, ``classes`` or ``resources``),
    its objects in apply order, and whether the apply waits for them before going on."""

    wave: int
    name: str
    objects: tuple[dict[str, Any], ...]
    wait: bool


def group_of(obj: dict[str, Any]) -> str:
    """The API group of ``obj`` (``""`` for the core group)."""
    api_version = str(obj.get("apiVersion") or "")
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def ref_of(obj: dict[str, Any]) -> str:
    """``Kind/namespace/name`` (``Kind//name`` for a cluster-scoped or unnamespaced object)."""
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind', '?')}/{meta.get('namespace') or ''}/{meta.get('name', '?')}"


def kind_rank(kind: str) -> int:
    """Where ``kind`` sorts: :data:`KIND_ORDER` first, other kinds next, webhooks last."""
    return _RANK.get(kind, _LAST.get(kind, _OTHER))


def sort_key(obj: dict[str, Any]) -> tuple[int, str, str, str, str]:
    """The apply-order key of one object: kind rank, group, kind, namespace, name."""
    meta = obj.get("metadata") or {}
    kind = str(obj.get("kind") or "")
    return (kind_rank(kind), group_of(obj), kind, str(meta.get("namespace") or ""),
            str(meta.get("name") or ""))


def wave_of(obj: dict[str, Any]) -> int:
    """The object's Argo CD sync wave (default 0); a non-integer wave is an ApplyError."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(SYNC_WAVE)
    if raw is None:
        return 0
    try:
        return int(str(raw).strip())
    except ValueError:
        raise ApplyError(f"annotation {SYNC_WAVE} must be an integer, got {str(raw)[:40]!r}",
                         source=ref_of(obj)) from None


def _stage_name(kind: str) -> str:
    if kind in CLUSTER_DEFINITIONS:
        return "definitions"
    return "classes" if kind.endswith("Class") else "resources"


_STAGES = ("definitions", "classes", "resources")


def plan(objects: Iterable[dict[str, Any]], *, wait: bool = False) -> list[Stage]:
    """Cut ``objects`` into stages in apply order (see the module docstring).

    The definitions stage is always waited on (kinds must resolve before their objects are
    applied); the others only when ``wait``. Empty stages are left out.
    """
    waves: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for obj in objects:
        stage = _stage_name(str(obj.get("kind") or ""))
        waves.setdefault(wave_of(obj), {}).setdefault(stage, []).append(obj)
    stages = []
    for wave in sorted(waves):
        for name in _STAGES:
            members = waves[wave].get(name)
            if members:
                stages.append(Stage(wave, name, tuple(sorted(members, key=sort_key)),
                                    wait or name == "definitions"))
    return stages


def apply_order(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every object in the order :func:`plan` applies them."""
    return [obj for stage in plan(objects) for obj in stage.objects]


def delete_order(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The order pruning deletes ``objects`` in: the reverse of :func:`apply_order`."""
    return list(reversed(apply_order(objects)))
