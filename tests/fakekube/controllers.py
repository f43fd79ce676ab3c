"""The fake's stand-in for controllers: the ``status`` a real cluster would report after a while.

Each function returns the status a kind reaches once "rolled out", or while held (``stuck``: in
progress forever; ``failed``: the failure kstatus recognises). Nothing runs pods: the numbers
simply follow ``spec``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

MANAGER = "kube-controller-manager"
"""The field manager (Update, subresource status) the fake's controllers write as."""

MODES = ("ready", "stuck", "failed")


def _hash(obj: Mapping[str, Any]) -> str:
    template = json.dumps((obj.get("spec") or {}).get("template"), sort_keys=True)
    return hashlib.sha256(template.encode()).hexdigest()[:10]


def _cond(ctype: str, status: str, reason: str, message: str, now: str,
          update_time: bool = True) -> dict[str, Any]:
    out = {"type": ctype, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": now}
    if update_time:
        out["lastUpdateTime"] = now
    return out


def _counts(**values: int) -> dict[str, int]:
    """Status counters, with zeros left out as the API's ``omitempty`` does."""
    return {k: v for k, v in values.items() if v}


def deployment(obj: Mapping[str, Any], mode: str, now: str) -> dict[str, Any]:
    """Deployment status: all replicas updated and available, or held in progress / failed."""
    spec = obj.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    name = (obj.get("metadata") or {}).get("name", "")
    rs = f"{name}-{_hash(obj)}"
    gen = (obj.get("metadata") or {}).get("generation", 1)
    if mode == "ready":
        return {"observedGeneration": gen,
                **_counts(replicas=replicas, updatedReplicas=replicas, readyReplicas=replicas,
                          availableReplicas=replicas),
                "conditions": [
                    _cond("Available", "True", "MinimumReplicasAvailable",
                          "Deployment has minimum availability.", now),
                    _cond("Progressing", "True", "NewReplicaSetAvailable",
                          f'ReplicaSet "{rs}" has successfully progressed.', now)]}
    progressing = (_cond("Progressing", "False", "ProgressDeadlineExceeded",
                         f'ReplicaSet "{rs}" has timed out progressing.', now)
                   if mode == "failed" else
                   _cond("Progressing", "True", "ReplicaSetUpdated",
                         f'ReplicaSet "{rs}" is progressing.', now))
    return {"observedGeneration": gen,
            **_counts(replicas=replicas, updatedReplicas=replicas,
                      unavailableReplicas=replicas),
            "conditions": [_cond("Available", "False", "MinimumReplicasUnavailable",
                                 "Deployment does not have minimum availability.", now),
                           progressing]}


def statefulset(obj: Mapping[str, Any], mode: str, now: str) -> dict[str, Any]:
    """StatefulSet status: current = updated = ready = spec.replicas, revisions equal."""
    spec = obj.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    name = (obj.get("metadata") or {}).get("name", "")
    revision = f"{name}-{_hash(obj)}"
    gen = (obj.get("metadata") or {}).get("generation", 1)
    ready = replicas if mode == "ready" else 0
    return {"observedGeneration": gen, "collisionCount": 0,
            **_counts(replicas=replicas, readyReplicas=ready, currentReplicas=replicas,
                      updatedReplicas=replicas, availableReplicas=ready),
            "currentRevision": revision, "updateRevision": revision}


def daemonset(obj: Mapping[str, Any], mode: str, now: str) -> dict[str, Any]:
    """DaemonSet status on a one-node cluster."""
    gen = (obj.get("metadata") or {}).get("generation", 1)
    ready = 1 if mode == "ready" else 0
    return {"observedGeneration": gen, "desiredNumberScheduled": 1,
            "currentNumberScheduled": 1, "numberMisscheduled": 0, "numberReady": ready,
            **_counts(updatedNumberScheduled=1, numberAvailable=ready,
                      numberUnavailable=1 - ready)}


def replicaset(obj: Mapping[str, Any], mode: str, now: str) -> dict[str, Any]:
    """ReplicaSet status."""
    spec = obj.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    gen = (obj.get("metadata") or {}).get("generation", 1)
    ready = replicas if mode == "ready" else 0
    return {"observedGeneration": gen,
            **_counts(replicas=replicas, fullyLabeledReplicas=replicas, readyReplicas=ready,
                      availableReplicas=ready)}


def job(obj: Mapping[str, Any], mode: str, now: str) -> dict[str, Any]:
    """Job status: Complete (SuccessCriteriaMet first), still active, or Failed."""
    completions = int((obj.get("spec") or {}).get("completions", 1))
    status: dict[str, Any] = {"startTime": now, "ready": 0, "terminating": 0,
                              "uncountedTerminatedPods": {}}
    if mode == "ready":
        status.update(completionTime=now, succeeded=completions, conditions=[
            _cond("SuccessCriteriaMet", "True", "CompletionsReached",
                  "Reached expected number of succeeded pods", now, update_time=False),
            _cond("Complete", "True", "CompletionsReached",
                  "Reached expected number of succeeded pods", now, update_time=False)])
        status["conditions"] = [dict(c, lastProbeTime=now) for c in status["conditions"]]
    elif mode == "failed":
        status.update(failed=1, conditions=[
            dict(_cond("FailureTarget", "True", "BackoffLimitExceeded",
                       "Job has reached the specified backoff limit", now, update_time=False),
                 lastProbeTime=now),
            dict(_cond("Failed", "True", "BackoffLimitExceeded",
                       "Job has reached the specified backoff limit", now, update_time=False),
                 lastProbeTime=now)])
    else:
        status["active"] = 1
    return status


def pvc(obj: Mapping[str, Any], mode: str, now: str) -> dict[str, Any]:
    """PVC status: Bound with the requested capacity, or Pending."""
    spec = obj.get("spec") or {}
    if mode != "ready":
        return {"phase": "Pending"}
    capacity = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {"phase": "Bound", "accessModes": list(spec.get("accessModes") or []),
            "capacity": {"storage": capacity}}


def pod(obj: Mapping[str, Any], mode: str, now: str) -> dict[str, Any]:
    """Pod status: Running and Ready, Pending, or Failed."""
    if mode == "failed":
        return {"phase": "Failed", "startTime": now}
    if mode != "ready":
        return {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}]}
    return {"phase": "Running", "startTime": now, "conditions": [
        {"type": t, "status": "True", "lastTransitionTime": now}
        for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                  "PodScheduled")]}


def crd(obj: Mapping[str, Any], established: bool, now: str) -> dict[str, Any]:
    """CRD status: NamesAccepted, then Established (False/Installing until registered)."""
    spec = obj.get("spec") or {}
    names = dict(spec.get("names") or {})
    storage = [v.get("name") for v in spec.get("versions") or []
               if isinstance(v, dict) and v.get("storage")]
    old = obj.get("status") or {}
    stored = list(old.get("storedVersions") or [])
    stored += [v for v in storage if v not in stored]
    est = (_cond("Established", "True", "InitialNamesAccepted",
                 "the initial names have been accepted", now, update_time=False)
           if established else
           _cond("Established", "False", "Installing", "the initial names have been accepted",
                 now, update_time=False))
    return {"conditions": [_cond("NamesAccepted", "True", "NoConflicts", "no conflicts found",
                                 now, update_time=False), est],
            "acceptedNames": names, "storedVersions": stored}


WORKLOADS = {"Deployment": deployment, "StatefulSet": statefulset, "DaemonSet": daemonset,
             "ReplicaSet": replicaset, "Job": job, "PersistentVolumeClaim": pvc, "Pod": pod}
"""Kinds whose status the fake's controllers fill, by kind."""
