"""kstatus rules (cli-utils/pkg/kstatus/status), one case per rule of the reference table."""

from __future__ import annotations

from typing import Any

import pytest

from kiln.apply.kstatus import (
    CURRENT,
    FAILED,
    IN_PROGRESS,
    NOT_FOUND,
    TERMINATING,
    status_of,
)


def cond(kind: str, status: str, reason: str = "") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason}


def make(kind: str, spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None,
         generation: int | None = 1, **meta: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"name": "x", **meta}
    if generation is not None:
        m["generation"] = generation
    obj: dict[str, Any] = {"kind": kind, "metadata": m, "spec": spec or {}}
    if status is not None:
        obj["status"] = status
    return obj


READY_DEPLOY = {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                "availableReplicas": 2, "readyReplicas": 2,
                "conditions": [cond("Available", "True"),
                               cond("Progressing", "True", "NewReplicaSetAvailable")]}

CASES: list[tuple[str, dict[str, Any] | None, str]] = [
    ("missing", None, NOT_FOUND),
    ("deleting", make("ConfigMap", deletionTimestamp="2026-01-01T00:00:00Z"), TERMINATING),
    ("stale generation", make("Deployment", {"replicas": 2}, {**READY_DEPLOY,
                                                              "observedGeneration": 0},
                              generation=1), IN_PROGRESS),
    ("reconciling", make("Widget", status={"conditions": [cond("Reconciling", "True")]}),
     IN_PROGRESS),
    ("stalled", make("Widget", status={"conditions": [cond("Stalled", "True")]}), FAILED),
    ("cr without status", make("Widget"), CURRENT),
    ("cr ready", make("Widget", status={"conditions": [cond("Ready", "True")]}), CURRENT),
    ("cr not ready", make("Widget", status={"conditions": [cond("Ready", "False")]}),
     IN_PROGRESS),
    ("deployment ready", make("Deployment", {"replicas": 2, "progressDeadlineSeconds": 600},
                              READY_DEPLOY), CURRENT),
    ("deployment rolling", make("Deployment", {"replicas": 2},
                                {**READY_DEPLOY, "updatedReplicas": 1}), IN_PROGRESS),
    ("deployment extra old pods", make("Deployment", {"replicas": 2},
                                       {**READY_DEPLOY, "replicas": 3}), IN_PROGRESS),
    ("deployment not available", make("Deployment", {"replicas": 2}, {
        **READY_DEPLOY, "conditions": [cond("Available", "False")]}), IN_PROGRESS),
    ("deployment deadline", make("Deployment", {"replicas": 2}, {
        **READY_DEPLOY, "conditions": [cond("Progressing", "False",
                                            "ProgressDeadlineExceeded")]}), FAILED),
    ("deployment waits for the new replica set", make(
        "Deployment", {"replicas": 2, "progressDeadlineSeconds": 60},
        {**READY_DEPLOY, "conditions": [cond("Available", "True"),
                                        cond("Progressing", "True", "ReplicaSetUpdated")]}),
     IN_PROGRESS),
    ("deployment default one replica", make("Deployment", {}, {
        "observedGeneration": 1, "replicas": 0, "conditions": []}), IN_PROGRESS),
    ("statefulset ondelete", make("StatefulSet", {"updateStrategy": {"type": "OnDelete"}},
                                  {}), CURRENT),
    ("statefulset ready", make("StatefulSet", {"replicas": 3}, {
        "observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "currentReplicas": 3,
        "currentRevision": "r1", "updateRevision": "r1"}), CURRENT),
    ("statefulset revision", make("StatefulSet", {"replicas": 3}, {
        "observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "currentReplicas": 3,
        "currentRevision": "r1", "updateRevision": "r2"}), IN_PROGRESS),
    ("statefulset partition", make("StatefulSet", {
        "replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 2}}}, {
        "observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 1}),
     CURRENT),
    ("daemonset ready", make("DaemonSet", {}, {
        "observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
        "updatedNumberScheduled": 2, "numberAvailable": 2, "numberReady": 2}), CURRENT),
    ("daemonset unobserved", make("DaemonSet", {}, {"desiredNumberScheduled": 1}),
     IN_PROGRESS),
    ("daemonset short", make("DaemonSet", {}, {
        "observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
        "updatedNumberScheduled": 2, "numberAvailable": 1, "numberReady": 2}), IN_PROGRESS),
    ("replicaset failure", make("ReplicaSet", {"replicas": 1}, {
        "conditions": [cond("ReplicaFailure", "True")]}), IN_PROGRESS),
    ("replicaset ready", make("ReplicaSet", {"replicas": 1}, {
        "replicas": 1, "fullyLabeledReplicas": 1, "availableReplicas": 1,
        "readyReplicas": 1}), CURRENT),
    ("job complete", make("Job", {}, {"conditions": [cond("Complete", "True")]}), CURRENT),
    ("job failed", make("Job", {}, {"conditions": [cond("Failed", "True")]}), FAILED),
    ("job not started", make("Job", {}, {}), IN_PROGRESS),
    ("job running", make("Job", {}, {"startTime": "2026-01-01T00:00:00Z"}), CURRENT),
    ("pod succeeded", make("Pod", {}, {"phase": "Succeeded"}), CURRENT),
    ("pod ready", make("Pod", {}, {"phase": "Running",
                                   "conditions": [cond("Ready", "True")]}), CURRENT),
    ("pod crashloop", make("Pod", {}, {"phase": "Running", "containerStatuses": [
        {"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}), FAILED),
    ("pod pending", make("Pod", {}, {"phase": "Pending"}), IN_PROGRESS),
    ("pvc bound", make("PersistentVolumeClaim", {}, {"phase": "Bound"}), CURRENT),
    ("pvc pending", make("PersistentVolumeClaim", {}, {"phase": "Pending"}), IN_PROGRESS),
    ("service lb without ip", make("Service", {"type": "LoadBalancer"}), IN_PROGRESS),
    ("service cluster ip", make("Service", {"type": "ClusterIP", "clusterIP": "10.0.0.1"}),
     CURRENT),
    ("crd established", make("CustomResourceDefinition", {}, {
        "conditions": [cond("Established", "True")]}), CURRENT),
    ("crd installing", make("CustomResourceDefinition", {}, {
        "conditions": [cond("Established", "False", "Installing")]}), IN_PROGRESS),
    ("crd names rejected", make("CustomResourceDefinition", {}, {
        "conditions": [cond("NamesAccepted", "False")]}), FAILED),
    ("crd not established", make("CustomResourceDefinition", {}, {
        "conditions": [cond("Established", "False", "Broken")]}), FAILED),
    ("crd no status", make("CustomResourceDefinition"), IN_PROGRESS),
    ("secret", make("Secret"), CURRENT),
    ("configmap with a not-ready condition is still current", make(
        "ConfigMap", status={"conditions": [cond("Ready", "False")]}), CURRENT),
]


@pytest.mark.parametrize(("case", "obj", "want"), CASES, ids=[c[0] for c in CASES])
def test_kstatus_rule(case: str, obj: dict[str, Any] | None, want: str) -> None:
    assert status_of(obj).status == want
