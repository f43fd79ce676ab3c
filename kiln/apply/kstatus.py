"""Whether an applied object is ready: the kstatus rules (``cli-utils/pkg/kstatus/status``).

:func:`status_of` answers one of :data:`STATUSES` for a live object, checking in kstatus's
order: ``deletionTimestamp`` (Terminating), a stale ``observedGeneration`` (InProgress), the
``Reconciling`` / ``Stalled`` conditions, the rule of the object's kind (Deployment,
StatefulSet, DaemonSet, ReplicaSet, Job, Pod, PersistentVolumeClaim, Service,
CustomResourceDefinition), then a ``Ready`` condition, else Current (so a custom resource with
no status is Current at once).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

CURRENT = "Current"
IN_PROGRESS = "InProgress"
FAILED = "Failed"
TERMINATING = "Terminating"
NOT_FOUND = "NotFound"
UNKNOWN = "Unknown"
STATUSES = (CURRENT, IN_PROGRESS, FAILED, TERMINATING, NOT_FOUND, UNKNOWN)


@dataclass(frozen=True)
class Status:
    """One object's status and a short reason (no field value beyond counts and names)."""

    status: str
    message: str = ""


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = obj.get("status") or {}
    found = {}
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type"):
            found[str(cond["type"])] = cond
    return found


def _is(cond: Mapping[str, Any] | None, value: str) -> bool:
    return cond is not None and str(cond.get("status")) == value


def _int(data: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = data.get(key, default)
    return value if isinstance(value, int) else default


def status_of(obj: Mapping[str, Any] | None) -> Status:
    """The kstatus status of a live object (``None``: NotFound)."""
    if obj is None:
        return Status(NOT_FOUND, "not found")
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return Status(TERMINATING, "being deleted")
    status = obj.get("status") or {}
    generation = meta.get("generation")
    observed = status.get("observedGeneration") if isinstance(status, Mapping) else None
    if observed is not None and generation is not None and observed != generation:
        return Status(IN_PROGRESS, f"observed generation {observed}, not {generation}")
    conditions = _conditions(obj)
    if _is(conditions.get("Reconciling"), "True"):
        return Status(IN_PROGRESS, str(conditions["Reconciling"].get("reason") or "Reconciling"))
    if _is(conditions.get("Stalled"), "True"):
        return Status(FAILED, str(conditions["Stalled"].get("reason") or "Stalled"))
    rule = _RULES.get(str(obj.get("kind") or ""))
    if rule is not None:
        found = rule(obj, status if isinstance(status, Mapping) else {}, conditions)
        if found is not None:
            return found
    ready = conditions.get("Ready")
    if ready is not None:
        if _is(ready, "True"):
            return Status(CURRENT, "Ready")
        return Status(IN_PROGRESS, str(ready.get("reason") or "not Ready"))
    return Status(CURRENT)


Conditions = dict[str, Mapping[str, Any]]
Rule = Callable[[Mapping[str, Any], Mapping[str, Any], Conditions], "Status | None"]


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec") or {}
    return spec if isinstance(spec, Mapping) else {}


def _deployment(obj: Mapping[str, Any], st: Mapping[str, Any], cond: Conditions
                ) -> Status | None:
    progressing = cond.get("Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Status(FAILED, "progress deadline exceeded")
    spec = _spec(obj)
    want = _int(spec, "replicas", 1)
    have, updated = _int(st, "replicas"), _int(st, "updatedReplicas")
    available, ready = _int(st, "availableReplicas"), _int(st, "readyReplicas")
    if want > have or want > updated:
        return Status(IN_PROGRESS, f"{updated} of {want} replicas updated")
    if have > want:
        return Status(IN_PROGRESS, f"{have - want} old replicas pending termination")
    if updated > available:
        return Status(IN_PROGRESS, f"{available} of {updated} updated replicas available")
    if want > ready:
        return Status(IN_PROGRESS, f"{ready} of {want} replicas ready")
    if "progressDeadlineSeconds" in spec and not (
            _is(progressing, "True")
            and progressing is not None
            and progressing.get("reason") == "NewReplicaSetAvailable"):
        return Status(IN_PROGRESS, "new replica set not yet available")
    if not _is(cond.get("Available"), "True"):
        return Status(IN_PROGRESS, "not Available")
    return Status(CURRENT, f"{want} replicas ready")


def _statefulset(obj: Mapping[str, Any], st: Mapping[str, Any], cond: Conditions
                 ) -> Status | None:
    spec = _spec(obj)
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return Status(CURRENT, "OnDelete update strategy")
    want = _int(spec, "replicas", 1)
    have, ready = _int(st, "replicas"), _int(st, "readyReplicas")
    if want > have:
        return Status(IN_PROGRESS, f"{have} of {want} replicas")
    if want > ready:
        return Status(IN_PROGRESS, f"{ready} of {want} replicas ready")
    if have > want:
        return Status(IN_PROGRESS, f"{have - want} extra replicas pending termination")
    rolling = strategy.get("rollingUpdate") or {}
    partition = rolling.get("partition")
    if isinstance(partition, int) and partition > 0:
        if _int(st, "updatedReplicas") < want - partition:
            return Status(IN_PROGRESS, "partitioned roll out in progress")
        return Status(CURRENT, "partitioned roll out complete")
    if _int(st, "currentReplicas") != want:
        return Status(IN_PROGRESS, f"{_int(st, 'currentReplicas')} of {want} replicas current")
    if st.get("currentRevision") != st.get("updateRevision"):
        return Status(IN_PROGRESS, "waiting for the update revision")
    return Status(CURRENT, f"{want} replicas ready")


def _daemonset(obj: Mapping[str, Any], st: Mapping[str, Any], cond: Conditions
               ) -> Status | None:
    meta = obj.get("metadata") or {}
    if meta.get("generation") is None or st.get("observedGeneration") is None:
        return Status(IN_PROGRESS, "not yet observed")
    desired = _int(st, "desiredNumberScheduled")
    for key in ("currentNumberScheduled", "updatedNumberScheduled", "numberAvailable",
                "numberReady"):
        if desired > _int(st, key):
            return Status(IN_PROGRESS, f"{key} {_int(st, key)} of {desired}")
    return Status(CURRENT, f"{desired} pods ready")


def _replicaset(obj: Mapping[str, Any], st: Mapping[str, Any], cond: Conditions
                ) -> Status | None:
    if _is(cond.get("ReplicaFailure"), "True"):
        return Status(IN_PROGRESS, "replica failure")
    want = _int(_spec(obj), "replicas", 1)
    for key in ("fullyLabeledReplicas", "availableReplicas", "readyReplicas"):
        if want > _int(st, key):
            return Status(IN_PROGRESS, f"{key} {_int(st, key)} of {want}")
    if _int(st, "replicas") > want:
        return Status(IN_PROGRESS, "extra replicas pending termination")
    return Status(CURRENT, f"{want} replicas ready")


def _job(obj: Mapping[str, Any], st: Mapping[str, Any], cond: Conditions) -> Status | None:
    if _is(cond.get("Complete"), "True"):
        return Status(CURRENT, "complete")
    if _is(cond.get("Failed"), "True"):
        return Status(FAILED, "failed")
    if _is(cond.get("Suspended"), "True"):
        return Status(CURRENT, "suspended")
    if not st.get("startTime"):
        return Status(IN_PROGRESS, "not started")
    return Status(CURRENT, "started")


def _pod(obj: Mapping[str, Any], st: Mapping[str, Any], cond: Conditions) -> Status | None:
    phase = st.get("phase")
    if phase in ("Succeeded", "Failed"):
        return Status(CURRENT, f"phase {phase}")
    for container in st.get("containerStatuses") or []:
        waiting = ((container or {}).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            return Status(FAILED, "CrashLoopBackOff")
    if phase == "Running" and _is(cond.get("Ready"), "True"):
        return Status(CURRENT, "running and ready")
    scheduled = cond.get("PodScheduled")
    if phase == "Pending" and scheduled is not None and scheduled.get("reason") == \
            "Unschedulable":
        return Status(IN_PROGRESS, "unschedulable")
    return Status(IN_PROGRESS, f"phase {phase or 'unknown'}")


def _pvc(obj: Mapping[str, Any], st: Mapping[str, Any], cond: Conditions) -> Status | None:
    if st.get("phase") == "Bound":
        return Status(CURRENT, "bound")
    return Status(IN_PROGRESS, "not bound")


def _service(obj: Mapping[str, Any], st: Mapping[str, Any], cond: Conditions
             ) -> Status | None:
    spec = _spec(obj)
    if spec.get("type") == "LoadBalancer" and not spec.get("clusterIP"):
        return Status(IN_PROGRESS, "waiting for a cluster IP")
    return Status(CURRENT)


def _crd(obj: Mapping[str, Any], st: Mapping[str, Any], cond: Conditions) -> Status | None:
    if _is(cond.get("NamesAccepted"), "False"):
        return Status(FAILED, "names not accepted")
    established = cond.get("Established")
    if _is(established, "True"):
        return Status(CURRENT, "established")
    if _is(established, "False") and established is not None and \
            established.get("reason") != "Installing":
        return Status(FAILED, str(established.get("reason") or "not established"))
    return Status(IN_PROGRESS, "not yet established")


def _always(obj: Mapping[str, Any], st: Mapping[str, Any], cond: Conditions) -> Status | None:
    return Status(CURRENT)


_RULES: dict[str, Rule] = {
    "Deployment": _deployment,
    "StatefulSet": _statefulset,
    "DaemonSet": _daemonset,
    "ReplicaSet": _replicaset,
    "Job": _job,
    "Pod": _pod,
    "PersistentVolumeClaim": _pvc,
    "Service": _service,
    "CustomResourceDefinition": _crd,
    "Secret": _always,
    "ConfigMap": _always,
    "CronJob": _always,
    "PodDisruptionBudget": _always,
}
