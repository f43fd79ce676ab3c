"""Normalisation (kiln.diff.normalise): server bookkeeping dropped, stringData folded as the API
server folds it, server-set defaults identified by comparing the dry-run with the render."""

from __future__ import annotations

import base64
from typing import Any

from kiln.diff.normalise import drop_server_defaults, fold_string_data, normalise


def live_deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps", "uid": "1-2-3",
                     "resourceVersion": "42", "generation": 3, "selfLink": "/x",
                     "creationTimestamp": "2026-01-01T00:00:00Z", "annotations": {},
                     "managedFields": [{"manager": "kiln", "operation": "Apply"}]},
        "spec": {"replicas": 2, "revisionHistoryLimit": 10,
                 "template": {"spec": {"containers": [
                     {"name": "app", "image": "nginx:1", "imagePullPolicy": "IfNotPresent",
                      "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}},
        "status": {"readyReplicas": 2},
    }


def test_server_bookkeeping_is_dropped_and_the_input_kept() -> None:
    obj = live_deployment()
    out = normalise(obj)
    assert out["metadata"] == {"name": "web", "namespace": "apps"}
    assert "status" not in out
    assert obj["metadata"]["uid"] == "1-2-3" and "status" in obj


def test_string_data_folds_into_data_as_base64() -> None:
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
           "data": {"a": base64.b64encode(b"old").decode(), "b": "Yg=="},
           "stringData": {"a": "new", "port": 5432, "flag": True}}
    fold_string_data(obj)
    assert "stringData" not in obj
    assert {k: base64.b64decode(v) for k, v in obj["data"].items()} == {
        "a": b"new", "b": b"b", "port": b"5432", "flag": b"true"}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "stringData": {"a": "x"}}
    fold_string_data(config)
    assert config["stringData"] == {"a": "x"}  # only a Secret's stringData becomes data


def test_defaults_equal_on_both_sides_are_dropped_real_changes_kept() -> None:
    rendered = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {"replicas": 3, "template": {"spec": {"containers": [
                    {"name": "app", "image": "nginx:2"}]}}}}
    live = normalise(live_deployment())
    desired = normalise(live_deployment())
    desired["spec"]["replicas"] = 3
    desired["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    desired["spec"]["revisionHistoryLimit"] = 5  # a default that differs from live: shown
    new_live, new_desired = drop_server_defaults(live, desired, rendered)
    assert new_live is not None
    assert new_desired["spec"] == {"replicas": 3, "revisionHistoryLimit": 5,
                                   "template": {"spec": {"containers": [
                                       {"name": "app", "image": "nginx:2"}]}}}
    assert new_live["spec"]["revisionHistoryLimit"] == 10
    assert new_live["spec"]["replicas"] == 2
    assert "imagePullPolicy" not in new_live["spec"]["template"]["spec"]["containers"][0]
    # The identity always stays, even where it matched.
    assert new_desired["metadata"] == new_live["metadata"] == {"name": "web",
                                                               "namespace": "apps"}


def test_a_create_shows_what_was_rendered() -> None:
    rendered = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                "data": {"a": "1"}}
    desired = {**rendered, "metadata": {"name": "c", "namespace": "default"}}
    live, out = drop_server_defaults(None, desired, rendered)
    assert live is None and out == desired  # rendered, and where it is created
    desired["data"] = {"a": "1", "default": "x"}
    assert drop_server_defaults(None, desired, rendered)[1]["data"] == {"a": "1"}


def test_without_a_rendered_object_nothing_is_dropped() -> None:
    desired = normalise(live_deployment())
    assert drop_server_defaults(None, desired, None) == (None, desired)
