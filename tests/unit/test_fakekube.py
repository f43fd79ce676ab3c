"""The fake Kubernetes API server, driven by the real ``kubernetes`` client, kubectl, and raw HTTP.

The oracles are the API's documented wire behaviour (status codes, reasons, message shapes the
tests spell out) and two independent real clients: the ``kubernetes`` Python client (its
discovery, exceptions and models) and kubectl (its aggregated discovery, get, diff and
server-side apply).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes import config as kube_config
from kubernetes import dynamic
from kubernetes.dynamic.exceptions import (
    ConflictError,
    NotFoundError,
    ResourceNotFoundError,
)

from tests.fakekube import ssa
from tests.fakekube.fixtures import fake_kube, fake_kube_factory  # noqa: F401
from tests.fakekube.selectors import label_matcher
from tests.fakekube.server import DEFAULT_TOKEN, FakeKube
from tests.fakekube.status import ApiError
from tests.helpers import tool

APPLY = "application/apply-patch+yaml"


# ----- helpers ---------------------------------------------------------------------------------

def call(fake: FakeKube, method: str, path: str, body: Any = None, *,
         ctype: str = "application/json", query: str = "", accept: str = "application/json",
         token: str | None = DEFAULT_TOKEN) -> tuple[int, Any, dict[str, str]]:
    """One raw HTTP request to the fake: (status, parsed JSON body, response headers)."""
    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    url = fake.url + path + (f"?{query}" if query else "")
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", accept)
    if data is not None:
        req.add_header("Content-Type", ctype)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw, code, headers = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        raw, code, headers = exc.read(), exc.code, dict(exc.headers)
    try:
        return code, json.loads(raw), headers
    except ValueError:
        return code, raw.decode(), headers


def apply(fake: FakeKube, obj: dict[str, Any], manager: str = "kiln", query: str = "",
          ) -> tuple[int, Any]:
    """Server-side apply ``obj`` over raw HTTP (YAML-typed JSON body)."""
    path = object_path(obj)
    q = f"fieldManager={manager}" + (f"&{query}" if query else "")
    code, body, _ = call(fake, "PATCH", path, obj, ctype=APPLY, query=q)
    return code, body


def object_path(obj: dict[str, Any]) -> str:
    """The API path of ``obj`` for the few kinds these tests use."""
    plural = {"ConfigMap": "configmaps", "Secret": "secrets", "Deployment": "deployments",
              "Service": "services", "Namespace": "namespaces", "Job": "jobs",
              "CustomResourceDefinition": "customresourcedefinitions", "Widget": "widgets",
              "StatefulSet": "statefulsets", "ClusterRole": "clusterroles"}[obj["kind"]]
    api = obj["apiVersion"]
    prefix = "/api/v1" if api == "v1" else f"/apis/{api}"
    ns = obj["metadata"].get("namespace")
    return f"{prefix}/namespaces/{ns}/{plural}/{obj['metadata']['name']}" if ns else \
        f"{prefix}/{plural}/{obj['metadata']['name']}"


def configmap(name: str, data: dict[str, str], namespace: str = "default",
              labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A ConfigMap manifest."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def deployment(name: str = "web", replicas: int | None = 2, image: str = "nginx:1.25",
               app: str = "web") -> dict[str, Any]:
    """A Deployment manifest with one container."""
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": app}},
        "template": {"metadata": {"labels": {"app": app}},
                     "spec": {"containers": [{"name": "app", "image": image}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                       "shortNames": ["wd"]},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {
                                   "size": {"type": "integer"}}},
                               "status": {"type": "object",
                                          "x-kubernetes-preserve-unknown-fields": True}}}}}]}}


def widget(name: str = "w1", size: int = 3) -> dict[str, Any]:
    """A custom resource of the Widget CRD."""
    return {"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"size": size}}


def client_for(fake: FakeKube, context: str | None = None) -> dynamic.DynamicClient:
    """A real ``kubernetes`` DynamicClient built from the fake's kubeconfig file."""
    assert fake.kubeconfig is not None
    api = kube_config.new_client_from_config(str(fake.kubeconfig), context=context)
    return dynamic.DynamicClient(api)


def kubectl(fake: FakeKube, *args: str, stdin: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real kubectl against the fake's kubeconfig (``env`` adds variables)."""
    assert fake.kubeconfig is not None
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(fake.kubeconfig.parent),
           "KUBECONFIG": str(fake.kubeconfig), **(env or {})}
    return subprocess.run([tool("kubectl"), *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=60, check=False)


def managers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """managedFields entries by manager name."""
    return {e["manager"]: e for e in obj["metadata"].get("managedFields", [])}


# ----- discovery -------------------------------------------------------------------------------

def test_legacy_discovery_lists_builtin_kinds_with_their_attributes(fake_kube: FakeKube) -> None:  # noqa: F811
    code, core, _ = call(fake_kube, "GET", "/api/v1")
    assert code == 200 and core["kind"] == "APIResourceList" and core["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["configmaps"]["kind"] == "ConfigMap"
    assert by_name["configmaps"]["shortNames"] == ["cm"]
    assert by_name["namespaces"]["namespaced"] is False
    assert by_name["services"]["namespaced"] is True
    assert "services/status" in by_name
    _, groups, _ = call(fake_kube, "GET", "/apis")
    names = {g["name"]: g for g in groups["groups"]}
    for group in ("apps", "batch", "rbac.authorization.k8s.io", "apiextensions.k8s.io",
                  "storage.k8s.io", "networking.k8s.io"):
        assert group in names
    assert names["apps"]["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    _, apps, _ = call(fake_kube, "GET", "/apis/apps/v1")
    deploy = next(r for r in apps["resources"] if r["name"] == "deployments")
    assert deploy["singularName"] == "deployment" and deploy["shortNames"] == ["deploy"]
    assert {"get", "list", "create", "patch", "update", "delete"} <= set(deploy["verbs"])
    code, version, _ = call(fake_kube, "GET", "/version")
    assert code == 200 and version["major"] == "1"


def test_aggregated_discovery_is_served_and_kubectl_reads_it(fake_kube: FakeKube) -> None:  # noqa: F811
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    code, body, headers = call(fake_kube, "GET", "/apis", accept=accept)
    assert code == 200 and body["kind"] == "APIGroupDiscoveryList"
    assert "as=APIGroupDiscoveryList" in headers["Content-Type"]
    apps = next(i for i in body["items"] if i["metadata"].get("name") == "apps")
    res = {r["resource"]: r for r in apps["versions"][0]["resources"]}
    assert res["deployments"]["responseKind"] == {"group": "apps", "version": "v1",
                                                  "kind": "Deployment"}
    assert res["deployments"]["scope"] == "Namespaced"
    out = kubectl(fake_kube, "api-resources", "--api-group=apps", "-o", "wide")
    assert out.returncode == 0, out.stderr
    assert "/openapi" not in " ".join(r.path for r in fake_kube.log)
    row = next(line.split() for line in out.stdout.splitlines()
               if line.startswith("deployments "))
    assert row[:5] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert any(r.path == "/apis" for r in fake_kube.log)


def test_python_client_discovers_kinds_and_reports_missing_ones(fake_kube: FakeKube) -> None:  # noqa: F811
    client = client_for(fake_kube)
    assert client.resources.get(api_version="apps/v1", kind="Deployment").namespaced
    assert not client.resources.get(api_version="v1", kind="Namespace").namespaced
    with pytest.raises(ResourceNotFoundError):
        client.resources.get(api_version="example.com/v1", kind="Widget")
    code, body, _ = call(fake_kube, "GET", "/apis/example.com/v1/namespaces/default/widgets")
    assert code == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"


# ----- apply ----------------------------------------------------------------------------------

def test_apply_creates_keeps_resource_version_on_same_body_and_bumps_on_change(
        fake_kube: FakeKube) -> None:  # noqa: F811
    client = client_for(fake_kube)
    res = client.resources.get(api_version="apps/v1", kind="Deployment")
    first = client.server_side_apply(res, body=deployment(), field_manager="kiln").to_dict()
    assert first["metadata"]["generation"] == 1
    assert first["metadata"]["uid"] and first["metadata"]["creationTimestamp"]
    again = client.server_side_apply(res, body=deployment(), field_manager="kiln").to_dict()
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    changed = client.server_side_apply(res, body=deployment(replicas=5),
                                       field_manager="kiln").to_dict()
    assert int(changed["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert changed["metadata"]["generation"] == 2 and changed["spec"]["replicas"] == 5
    live = client.get(res, name="web", namespace="default").to_dict()
    assert live["metadata"]["resourceVersion"] == changed["metadata"]["resourceVersion"]
    entry = managers(live)["kiln"]
    assert entry["operation"] == "Apply" and entry["fieldsType"] == "FieldsV1"
    assert entry["fieldsV1"]["f:spec"]["f:replicas"] == {}
    assert "f:revisionHistoryLimit" not in entry["fieldsV1"]["f:spec"]


def test_apply_accepts_a_yaml_body(fake_kube: FakeKube) -> None:  # noqa: F811
    body = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\n  namespace: default\n"
            "data:\n  a: '1'\n")
    code, obj, _ = call(fake_kube, "PATCH", "/api/v1/namespaces/default/configmaps/y", body,
                        ctype=APPLY, query="fieldManager=kiln")
    assert code == 201 and obj["data"] == {"a": "1"}


def test_conflict_between_managers_is_409_naming_manager_and_field(fake_kube: FakeKube) -> None:  # noqa: F811
    apply(fake_kube, deployment(replicas=2), manager="kubectl")
    code, body = apply(fake_kube, deployment(replicas=3), manager="kiln")
    assert code == 409
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["reason"] == "Conflict" and body["code"] == 409
    assert body["message"] == ('Apply failed with 1 conflict: conflict with "kubectl": '
                               ".spec.replicas")
    assert body["details"]["causes"] == [{"reason": "FieldManagerConflict",
                                          "message": 'conflict with "kubectl"',
                                          "field": ".spec.replicas"}]
    live = fake_kube.get("Deployment", "web", "default")
    assert live is not None and live["spec"]["replicas"] == 2
    client = client_for(fake_kube)
    res = client.resources.get(api_version="apps/v1", kind="Deployment")
    with pytest.raises(ConflictError) as err:
        client.server_side_apply(res, body=deployment(replicas=3), field_manager="kiln")
    assert err.value.status == 409


def test_conflicts_with_an_update_manager_name_its_api_version_and_list_every_field(
        fake_kube: FakeKube) -> None:  # noqa: F811
    fake_kube.seed(deployment(replicas=2, image="nginx:1.25"), manager="kubectl-edit")
    code, body = apply(fake_kube, deployment(replicas=3, image="nginx:1.27"), manager="kiln")
    assert code == 409
    assert body["message"] == (
        'Apply failed with 2 conflicts: conflicts with "kubectl-edit" using apps/v1:\n'
        '- .spec.replicas\n'
        '- .spec.template.spec.containers[name="app"].image')
    assert [c["field"] for c in body["details"]["causes"]] == [
        ".spec.replicas", '.spec.template.spec.containers[name="app"].image']


def test_force_takes_the_fields_over(fake_kube: FakeKube) -> None:  # noqa: F811
    apply(fake_kube, deployment(replicas=2), manager="kubectl")
    code, body = apply(fake_kube, deployment(replicas=3), manager="kiln", query="force=true")
    assert code == 200 and body["spec"]["replicas"] == 3
    owners = managers(body)
    assert "f:replicas" in owners["kiln"]["fieldsV1"]["f:spec"]
    assert "f:replicas" not in owners["kubectl"]["fieldsV1"]["f:spec"]
    # the same value is shared, not a conflict
    code, _ = apply(fake_kube, deployment(replicas=3), manager="kubectl")
    assert code == 200


def test_fields_a_manager_stops_applying_are_removed_unless_another_owns_them(
        fake_kube: FakeKube) -> None:  # noqa: F811
    apply(fake_kube, configmap("c", {"a": "1", "b": "2", "c": "3"}))
    apply(fake_kube, {"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "c", "namespace": "default"}, "data": {"c": "3"}},
          manager="other")
    code, body = apply(fake_kube, configmap("c", {"a": "1"}))
    assert code == 200 and body["data"] == {"a": "1", "c": "3"}
    code, body = apply(fake_kube, {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "c", "namespace": "default"}})
    assert code == 200 and body["data"] == {"c": "3"}


def test_a_dropped_optional_field_falls_back_to_its_server_default(fake_kube: FakeKube) -> None:  # noqa: F811
    apply(fake_kube, deployment(replicas=4))
    code, body = apply(fake_kube, deployment(replicas=None))
    assert code == 200 and body["spec"]["replicas"] == 1


def test_dry_run_stores_nothing_but_answers_as_if_applied(fake_kube: FakeKube) -> None:  # noqa: F811
    code, body = apply(fake_kube, configmap("d", {"a": "1"}), query="dryRun=All")
    assert code == 201 and body["data"] == {"a": "1"}
    assert "resourceVersion" not in body["metadata"]
    assert call(fake_kube, "GET", "/api/v1/namespaces/default/configmaps/d")[0] == 404
    _, live = apply(fake_kube, configmap("d", {"a": "1"}))
    code, dry = apply(fake_kube, configmap("d", {"a": "2"}), query="dryRun=All")
    assert code == 200 and dry["data"] == {"a": "2"}
    stored = fake_kube.get("ConfigMap", "d", "default")
    assert stored is not None and stored["data"] == {"a": "1"}
    assert stored["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
    code, _, _ = call(fake_kube, "DELETE", "/api/v1/namespaces/default/configmaps/d",
                      query="dryRun=All")
    assert code == 200 and fake_kube.get("ConfigMap", "d", "default") is not None


@pytest.mark.parametrize("validation", ["Strict", "Warn", "Ignore"])
def test_an_apply_with_unknown_fields_fails_type_conversion_whatever_the_validation(
        fake_kube: FakeKube, validation: str) -> None:  # noqa: F811
    """kube-apiserver's SSA converts the config to its typed form first; an undeclared field
    fails that with a plain error, served as a 500 Status with no reason."""
    bad = deployment()
    bad["spec"]["replicaz"] = 3
    code, body = apply(fake_kube, bad, query=f"fieldValidation={validation}")
    assert code == 500 and "reason" not in body and body["status"] == "Failure"
    assert body["message"] == ("failed to create typed patch object (default/web; apps/v1, "
                               "Kind=Deployment): .spec.replicaz: field not declared in schema")
    meta_bad = configmap("m", {"a": "1"})
    meta_bad["metadata"]["labelz"] = {"x": "y"}
    code, body = apply(fake_kube, meta_bad, query=f"fieldValidation={validation}")
    assert code == 500 and ".metadata.labelz: field not declared in schema" in body["message"]
    assert fake_kube.get("Deployment", "web", "default") is None


def test_strict_field_validation_rejects_unknown_fields_on_other_writes(
        fake_kube: FakeKube) -> None:  # noqa: F811
    top_bad = configmap("t", {"a": "1"})
    top_bad["spec"] = {}
    code, body, _ = call(fake_kube, "POST", "/api/v1/namespaces/default/configmaps", top_bad,
                         query="fieldValidation=Strict")
    assert code == 400
    assert body["message"] == ('ConfigMap in version "v1" cannot be handled as a ConfigMap: '
                               'strict decoding error: unknown field "spec"')
    code, body, headers = call(fake_kube, "POST", "/api/v1/namespaces/default/configmaps",
                               top_bad, query="fieldValidation=Warn")
    assert code == 201 and "spec" not in body
    assert headers["Warning"] == '299 - "unknown field \\"spec\\""'


def test_strict_validation_follows_a_crd_schema(fake_kube: FakeKube) -> None:  # noqa: F811
    apply(fake_kube, WIDGET_CRD)
    bad = widget()
    bad["spec"]["colour"] = "red"
    code, body = apply(fake_kube, bad, query="fieldValidation=Strict")
    assert code == 500 and body["message"] == (
        "failed to create typed patch object (default/w1; example.com/v1, Kind=Widget): "
        ".spec.colour: field not declared in schema")
    code, body, _ = call(fake_kube, "POST", "/apis/example.com/v1/namespaces/default/widgets",
                         bad, query="fieldValidation=Strict")
    assert code == 400 and body["message"].endswith('unknown field "spec.colour"')
    assert apply(fake_kube, widget(), query="fieldValidation=Strict")[0] == 201


def test_apply_without_field_manager_is_422(fake_kube: FakeKube) -> None:  # noqa: F811
    code, body, _ = call(fake_kube, "PATCH", "/api/v1/namespaces/default/configmaps/x",
                         configmap("x", {}), ctype=APPLY)
    assert code == 422 and body["reason"] == "Invalid"
    assert body["message"] == ('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required '
                               "value: is required for apply patch")


def test_apply_with_mismatched_body_is_400(fake_kube: FakeKube) -> None:  # noqa: F811
    code, body, _ = call(fake_kube, "PATCH", "/api/v1/namespaces/default/configmaps/x",
                         configmap("y", {}), ctype=APPLY, query="fieldManager=kiln")
    assert code == 400
    assert body["message"] == "the name of the object (y) does not match the name on the URL (x)"
    wrong = configmap("x", {})
    wrong["apiVersion"] = "apps/v1"
    code, body, _ = call(fake_kube, "PATCH", "/api/v1/namespaces/default/configmaps/x", wrong,
                         ctype=APPLY, query="fieldManager=kiln")
    assert code == 400 and "does not match the expected API version (v1)" in body["message"]


def test_apply_with_a_stale_resource_version_is_a_conflict(fake_kube: FakeKube) -> None:  # noqa: F811
    _, live = apply(fake_kube, configmap("r", {"a": "1"}))
    apply(fake_kube, configmap("r", {"a": "2"}))
    stale = configmap("r", {"a": "3"})
    stale["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
    code, body = apply(fake_kube, stale)
    assert code == 409 and body["reason"] == "Conflict" and "causes" not in body.get("details", {})
    assert "the object has been modified" in body["message"]


# ----- defaults, validation, immutability ------------------------------------------------------

def test_server_defaults_are_filled(fake_kube: FakeKube) -> None:  # noqa: F811
    _, dep = apply(fake_kube, deployment(replicas=None))
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["revisionHistoryLimit"] == 10
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert dep["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    _, svc = apply(fake_kube, {"apiVersion": "v1", "kind": "Service",
                               "metadata": {"name": "s", "namespace": "default"},
                               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    assert svc["spec"]["clusterIP"].startswith("10.96.")
    assert svc["spec"]["clusterIPs"] == [svc["spec"]["clusterIP"]]
    assert svc["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    _, sec = apply(fake_kube, {"apiVersion": "v1", "kind": "Secret",
                               "metadata": {"name": "k", "namespace": "default"},
                               "stringData": {"password": "hunter2"}, "data": {"u": "YQ=="}})
    assert sec["type"] == "Opaque" and "stringData" not in sec
    assert sec["data"] == {"u": "YQ==", "password": base64.b64encode(b"hunter2").decode()}
    _, ns = apply(fake_kube, {"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": "team"}})
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}
    assert ns["status"]["phase"] == "Active"


def test_reapplying_over_defaults_changes_nothing(fake_kube: FakeKube) -> None:  # noqa: F811
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "s", "namespace": "default"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    _, first = apply(fake_kube, svc)
    _, second = apply(fake_kube, svc)
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert second["spec"]["clusterIP"] == first["spec"]["clusterIP"]


@pytest.mark.parametrize(("first", "second", "field"), [
    (deployment(app="web"), deployment(app="api"), "spec.selector"),
    ({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "default"},
      "spec": {"template": {"spec": {"restartPolicy": "Never",
                                     "containers": [{"name": "c", "image": "busybox:1"}]}}}},
     {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "default"},
      "spec": {"template": {"spec": {"restartPolicy": "Never",
                                     "containers": [{"name": "c", "image": "busybox:2"}]}}}},
     "spec.template"),
    ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"},
      "spec": {"clusterIP": "10.96.7.7", "ports": [{"port": 80}]}},
     {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"},
      "spec": {"clusterIP": "10.96.7.8", "ports": [{"port": 80}]}},
     "spec.clusterIPs[0]"),
])
def test_immutable_field_changes_are_422_invalid(fake_kube: FakeKube, first: dict[str, Any],  # noqa: F811
                                                 second: dict[str, Any], field: str) -> None:
    assert apply(fake_kube, first)[0] == 201
    code, body = apply(fake_kube, second)
    assert code == 422 and body["reason"] == "Invalid"
    kind = first["kind"]
    group = first["apiVersion"].rpartition("/")[0]
    qualified = f"{kind}.{group}" if group else kind
    name = first["metadata"]["name"]
    assert body["message"].startswith(f'{qualified} "{name}" is invalid: {field}: Invalid value: ')
    assert ("field is immutable" in body["message"]) or ("may not change once set"
                                                         in body["message"])
    assert body["details"]["causes"][0]["field"] == field


def test_invalid_objects_are_422_with_the_api_wording(fake_kube: FakeKube) -> None:  # noqa: F811
    code, body = apply(fake_kube, deployment(name="Bad_Name"))
    assert code == 422
    assert body["message"].startswith('Deployment.apps "Bad_Name" is invalid: metadata.name: '
                                      'Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain')
    mismatched = deployment()
    mismatched["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    code, body = apply(fake_kube, mismatched)
    assert code == 422 and "`selector` does not match template `labels`" in body["message"]


# ----- namespaces ------------------------------------------------------------------------------

def test_a_missing_namespace_is_404_naming_it(fake_kube: FakeKube) -> None:  # noqa: F811
    code, body = apply(fake_kube, configmap("x", {}, namespace="nope"))
    assert code == 404 and body["reason"] == "NotFound"
    assert body["message"] == 'namespaces "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "namespaces"}
    code, _, _ = call(fake_kube, "POST", "/api/v1/namespaces/nope/configmaps",
                      configmap("x", {}, namespace="nope"))
    assert code == 404
    assert apply(fake_kube, {"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": "nope"}})[0] == 201
    assert apply(fake_kube, configmap("x", {}, namespace="nope"))[0] == 201


def test_deleting_a_namespace_deletes_its_contents(fake_kube: FakeKube) -> None:  # noqa: F811
    apply(fake_kube, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}})
    apply(fake_kube, configmap("x", {}, namespace="gone"))
    code, body, _ = call(fake_kube, "DELETE", "/api/v1/namespaces/gone")
    assert code == 200 and body["kind"] == "Namespace"
    assert body["status"]["phase"] == "Terminating" and body["metadata"]["deletionTimestamp"]
    assert call(fake_kube, "GET", "/api/v1/namespaces/gone")[0] == 404
    assert fake_kube.get("ConfigMap", "x", "gone") is None


# ----- list and selectors ----------------------------------------------------------------------

@pytest.mark.parametrize(("selector", "expected"), [
    ("app=web", ["a", "b"]),
    ("app==web,tier=front", ["a"]),
    ("app!=web", ["c", "d"]),
    ("tier in (front,back)", ["a", "b", "c"]),
    ("tier notin (front)", ["b", "c", "d"]),
    ("tier", ["a", "b", "c"]),
    ("!tier", ["d"]),
    ("app=web,!tier", []),
])
def test_label_selectors_filter_lists(fake_kube: FakeKube, selector: str,  # noqa: F811
                                      expected: list[str]) -> None:
    for name, labels in (("a", {"app": "web", "tier": "front"}),
                         ("b", {"app": "web", "tier": "back"}),
                         ("c", {"app": "db", "tier": "back"}), ("d", {"app": "db"})):
        apply(fake_kube, configmap(name, {}, labels=labels))
    client = client_for(fake_kube)
    res = client.resources.get(api_version="v1", kind="ConfigMap")
    listed = client.get(res, namespace="default", label_selector=selector).to_dict()
    assert [i["metadata"]["name"] for i in listed["items"]] == expected


def test_lists_have_the_api_shape(fake_kube: FakeKube) -> None:  # noqa: F811
    apply(fake_kube, configmap("a", {}))
    apply(fake_kube, configmap("b", {}))
    code, body, _ = call(fake_kube, "GET", "/api/v1/namespaces/default/configmaps")
    assert code == 200 and body["kind"] == "ConfigMapList" and body["apiVersion"] == "v1"
    assert body["metadata"]["resourceVersion"]
    assert [i["metadata"]["name"] for i in body["items"]] == ["a", "b"]
    assert "kind" not in body["items"][0]  # built-in list items carry no kind, as on a cluster
    code, body, _ = call(fake_kube, "GET", "/api/v1/configmaps",
                         query="fieldSelector=metadata.name%3Db")
    assert [i["metadata"]["name"] for i in body["items"]] == ["b"]
    code, page, _ = call(fake_kube, "GET", "/api/v1/namespaces/default/configmaps", query="limit=1")
    assert len(page["items"]) == 1 and page["metadata"]["continue"]
    code, rest, _ = call(fake_kube, "GET", "/api/v1/namespaces/default/configmaps",
                         query=f"limit=1&continue={page['metadata']['continue']}")
    assert [i["metadata"]["name"] for i in rest["items"]] == ["b"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_label_selector_parser_accepts_or_refuses_cleanly(text: str) -> None:
    try:
        matches = label_matcher(text)
    except ApiError as exc:
        assert exc.code == 400
        return
    assert matches({"metadata": {"labels": {"a": "b"}}}) in (True, False)


# ----- delete ----------------------------------------------------------------------------------

def test_delete_with_a_wrong_uid_precondition_is_409(fake_kube: FakeKube) -> None:  # noqa: F811
    _, live = apply(fake_kube, configmap("p", {}))
    code, body, _ = call(fake_kube, "DELETE", "/api/v1/namespaces/default/configmaps/p",
                         {"kind": "DeleteOptions", "apiVersion": "v1",
                          "propagationPolicy": "Background",
                          "preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})
    assert code == 409 and body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on configmaps "p": Precondition failed: UID in '
        f'precondition: 00000000-0000-0000-0000-000000000000, UID in object meta: '
        f'{live["metadata"]["uid"]}')
    assert fake_kube.get("ConfigMap", "p", "default") is not None
    client = client_for(fake_kube)
    res = client.resources.get(api_version="v1", kind="ConfigMap")
    client.delete(res, name="p", namespace="default",
                  body={"propagationPolicy": "Background",
                        "preconditions": {"uid": live["metadata"]["uid"]}})
    assert fake_kube.get("ConfigMap", "p", "default") is None
    with pytest.raises(NotFoundError):
        client.delete(res, name="p", namespace="default")


def test_delete_propagation_follows_owner_references(fake_kube: FakeKube) -> None:  # noqa: F811
    _, owner = apply(fake_kube, configmap("owner", {}))
    for name in ("dep1", "dep2"):
        dep = configmap(name, {})
        dep["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap",
                                               "name": "owner",
                                               "uid": owner["metadata"]["uid"]}]
        apply(fake_kube, dep)
    code, _, _ = call(fake_kube, "DELETE", "/api/v1/namespaces/default/configmaps/owner",
                      query="propagationPolicy=Orphan")
    assert code == 200
    orphan = fake_kube.get("ConfigMap", "dep1", "default")
    assert orphan is not None and "ownerReferences" not in orphan["metadata"]
    _, owner = apply(fake_kube, configmap("owner2", {}))
    dep = configmap("dep3", {})
    dep["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap",
                                           "name": "owner2", "uid": owner["metadata"]["uid"]}]
    apply(fake_kube, dep)
    call(fake_kube, "DELETE", "/api/v1/namespaces/default/configmaps/owner2",
         query="propagationPolicy=Background")
    assert fake_kube.get("ConfigMap", "dep3", "default") is None


def test_finalizers_hold_a_delete_until_removed(fake_kube: FakeKube) -> None:  # noqa: F811
    cm = configmap("f", {})
    cm["metadata"]["finalizers"] = ["example.com/keep"]
    apply(fake_kube, cm)
    code, body, _ = call(fake_kube, "DELETE", "/api/v1/namespaces/default/configmaps/f")
    assert code == 200 and body["metadata"]["deletionTimestamp"]
    assert fake_kube.get("ConfigMap", "f", "default") is not None
    code, _, _ = call(fake_kube, "PATCH", "/api/v1/namespaces/default/configmaps/f",
                      {"metadata": {"finalizers": None}},
                      ctype="application/merge-patch+json")
    assert code == 200 and fake_kube.get("ConfigMap", "f", "default") is None


# ----- other verbs -----------------------------------------------------------------------------

def test_post_put_and_patches(fake_kube: FakeKube) -> None:  # noqa: F811
    code, created, _ = call(fake_kube, "POST", "/api/v1/namespaces/default/configmaps",
                            configmap("v", {"a": "1"}), query="fieldManager=tester")
    assert code == 201 and managers(created)["tester"]["operation"] == "Update"
    code, body, _ = call(fake_kube, "POST", "/api/v1/namespaces/default/configmaps",
                         configmap("v", {"a": "1"}))
    assert code == 409 and body["reason"] == "AlreadyExists"
    created["data"]["a"] = "2"
    code, put, _ = call(fake_kube, "PUT", "/api/v1/namespaces/default/configmaps/v", created)
    assert code == 200 and put["data"] == {"a": "2"}
    code, body, _ = call(fake_kube, "PUT", "/api/v1/namespaces/default/configmaps/v", created)
    assert code == 409 and "the object has been modified" in body["message"]
    code, merged, _ = call(fake_kube, "PATCH", "/api/v1/namespaces/default/configmaps/v",
                           {"data": {"b": "3"}}, ctype="application/merge-patch+json")
    assert code == 200 and merged["data"] == {"a": "2", "b": "3"}
    code, patched, _ = call(fake_kube, "PATCH", "/api/v1/namespaces/default/configmaps/v",
                            [{"op": "remove", "path": "/data/a"}],
                            ctype="application/json-patch+json")
    assert code == 200 and patched["data"] == {"b": "3"}


def test_generation_tracks_spec_changes_only(fake_kube: FakeKube) -> None:  # noqa: F811
    _, first = apply(fake_kube, deployment())
    labelled = deployment()
    labelled["metadata"]["labels"] = {"team": "a"}
    _, second = apply(fake_kube, labelled)
    assert second["metadata"]["generation"] == 1
    assert second["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]


def test_status_is_a_subresource(fake_kube: FakeKube) -> None:  # noqa: F811
    apply(fake_kube, WIDGET_CRD)
    w = widget()
    w["status"] = {"phase": "Ignored"}
    _, body = apply(fake_kube, w)
    assert "status" not in body
    code, body, _ = call(fake_kube, "PATCH",
                         "/apis/example.com/v1/namespaces/default/widgets/w1/status",
                         {"status": {"phase": "Ready"}}, ctype="application/merge-patch+json")
    assert code == 200 and body["status"] == {"phase": "Ready"}
    assert body["metadata"]["generation"] == 1


# ----- CRDs ------------------------------------------------------------------------------------

def test_a_crd_makes_its_kind_discoverable_and_servable(fake_kube: FakeKube) -> None:  # noqa: F811
    client = client_for(fake_kube)
    with pytest.raises(ResourceNotFoundError):
        client.resources.get(api_version="example.com/v1", kind="Widget")
    crds = client.resources.get(api_version="apiextensions.k8s.io/v1",
                                kind="CustomResourceDefinition")
    crd = client.server_side_apply(crds, body=WIDGET_CRD, field_manager="kiln").to_dict()
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    res = client.resources.get(api_version="example.com/v1", kind="Widget")
    assert res.namespaced and res.short_names == ["wd"]
    made = client.server_side_apply(res, body=widget(size=3), field_manager="kiln").to_dict()
    assert made["spec"] == {"size": 3} and made["metadata"]["generation"] == 1
    listed = client.get(res, namespace="default").to_dict()
    assert [i["metadata"]["name"] for i in listed["items"]] == ["w1"]
    assert listed["items"][0]["kind"] == "Widget"
    _, groups, _ = call(fake_kube, "GET", "/apis")
    assert "example.com" in {g["name"] for g in groups["groups"]}
    client.delete(crds, name="widgets.example.com")
    assert call(fake_kube, "GET", "/apis/example.com/v1/namespaces/default/widgets/w1")[0] == 404
    assert fake_kube.get("Widget", "w1", "default") is None


def test_a_crd_can_take_time_to_be_established(fake_kube_factory: Callable[..., FakeKube]  # noqa: F811
                                               ) -> None:
    fake = fake_kube_factory(crd_delay=0.3)
    _, crd = apply(fake, WIDGET_CRD)
    established = next(c for c in crd["status"]["conditions"] if c["type"] == "Established")
    assert established["status"] == "False" and established["reason"] == "Installing"
    code, body = apply(fake, widget())
    assert body["message"] == (
        'the server could not find the requested resource')
    assert code == 404
    time.sleep(0.4)
    _, live, _ = call(fake, "GET",
                      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
    established = next(c for c in live["status"]["conditions"] if c["type"] == "Established")
    assert established["status"] == "True"
    assert apply(fake, widget())[0] == 201


# ----- status controllers ----------------------------------------------------------------------

def test_deployments_report_rolled_out_status(fake_kube: FakeKube) -> None:  # noqa: F811
    _, dep = apply(fake_kube, deployment(replicas=3))
    status = dep["status"]
    assert status["observedGeneration"] == dep["metadata"]["generation"]
    for key in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
        assert status[key] == 3
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions == {"Available": ("True", "MinimumReplicasAvailable"),
                          "Progressing": ("True", "NewReplicaSetAvailable")}


def test_a_held_deployment_stays_in_progress_until_released(fake_kube: FakeKube) -> None:  # noqa: F811
    fake_kube.hold("Deployment", "web", "default")
    _, dep = apply(fake_kube, deployment(replicas=2))
    status = dep["status"]
    assert "readyReplicas" not in status and status["unavailableReplicas"] == 2
    assert {c["type"]: c["status"] for c in status["conditions"]}["Available"] == "False"
    fake_kube.release("Deployment", "web", "default")
    released = fake_kube.get("Deployment", "web", "default")
    assert released is not None and released["status"]["readyReplicas"] == 2


def test_rollout_delay_defers_the_status(fake_kube_factory: Callable[..., FakeKube]) -> None:  # noqa: F811
    fake = fake_kube_factory(rollout_delay=0.3)
    _, dep = apply(fake, deployment())
    assert "status" not in dep
    time.sleep(0.4)
    _, live, _ = call(fake, "GET", "/apis/apps/v1/namespaces/default/deployments/web")
    assert live["status"]["readyReplicas"] == 2
    assert int(live["metadata"]["resourceVersion"]) > int(dep["metadata"]["resourceVersion"])


def test_jobs_complete_or_fail(fake_kube: FakeKube) -> None:  # noqa: F811
    job: dict[str, Any] = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "j", "namespace": "default"},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "c", "image": "busybox:1"}]}}}}
    _, done = apply(fake_kube, job)
    assert {c["type"]: c["status"] for c in done["status"]["conditions"]}["Complete"] == "True"
    fake_kube.hold("Job", "k", "default", mode="failed")
    job["metadata"]["name"] = "k"
    _, failed = apply(fake_kube, job)
    assert {c["type"]: c["status"] for c in failed["status"]["conditions"]}["Failed"] == "True"


# ----- hooks: log, faults, auth, kubeconfig ----------------------------------------------------

def test_the_log_records_each_request(fake_kube: FakeKube) -> None:  # noqa: F811
    apply(fake_kube, configmap("l", {"a": "1"}), query="dryRun=All")
    entry = fake_kube.log[-1]
    assert (entry.method, entry.path, entry.content_type, entry.status) == (
        "PATCH", "/api/v1/namespaces/default/configmaps/l", APPLY, 201)
    assert entry.param("dryRun") == "All" and entry.param("fieldManager") == "kiln"
    assert entry.body["data"] == {"a": "1"} and entry.user == "kiln-test"
    assert len(fake_kube.requests("PATCH", r"/configmaps/")) == 1
    fake_kube.clear_log()
    assert fake_kube.log == []


def test_set_fail_injects_a_failure_in_the_middle_of_a_batch(fake_kube: FakeKube) -> None:  # noqa: F811
    fault = fake_kube.set_fail("PATCH", r"/configmaps/", 500, "etcd is on fire", after=1,
                               times=1)
    codes = [apply(fake_kube, configmap(n, {}))[0] for n in ("a", "b", "c")]
    assert codes == [201, 500, 201] and fault.fired == 1
    _, body = apply(fake_kube, configmap("b", {}))
    assert body["metadata"]["name"] == "b"
    fake_kube.set_fail("GET", r"/secrets", 403, "nope")
    code, body, _ = call(fake_kube, "GET", "/api/v1/namespaces/default/secrets")
    assert code == 403 and body["reason"] == "Forbidden" and body["message"] == "nope"
    fake_kube.clear_fails()
    assert call(fake_kube, "GET", "/api/v1/namespaces/default/secrets")[0] == 200


def test_a_dropped_connection_can_be_injected(fake_kube: FakeKube) -> None:  # noqa: F811
    fake_kube.set_fail("GET", r"/configmaps$", 0)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        call(fake_kube, "GET", "/api/v1/namespaces/default/configmaps")


def test_forbid_answers_403_with_rbac_wording(fake_kube: FakeKube) -> None:  # noqa: F811
    fake_kube.forbid("patch", "configmaps", namespace="default")
    code, body = apply(fake_kube, configmap("x", {}))
    assert code == 403 and body["reason"] == "Forbidden"
    assert body["message"] == ('configmaps "x" is forbidden: User "kiln-test" cannot patch '
                               'resource "configmaps" in API group "" in the namespace "default"')


def test_a_required_token_gives_401_without_it(fake_kube_factory: Callable[..., FakeKube]  # noqa: F811
                                               ) -> None:
    fake = fake_kube_factory(require_token=True)
    code, body, _ = call(fake, "GET", "/api/v1/namespaces", token=None)
    assert code == 401 and body["reason"] == "Unauthorized" and body["message"] == "Unauthorized"
    assert call(fake, "GET", "/api/v1/namespaces")[0] == 200
    client = client_for(fake)
    res = client.resources.get(api_version="v1", kind="Namespace")
    assert "default" in [n["metadata"]["name"] for n in client.get(res).to_dict()["items"]]


def test_kubeconfig_contexts_select_user_and_server(fake_kube: FakeKube) -> None:  # noqa: F811
    client = client_for(fake_kube, context="fake-alt")
    res = client.resources.get(api_version="v1", kind="ConfigMap")
    client.get(res, namespace="default")
    assert fake_kube.log[-1].user == "kiln-alt"
    with pytest.raises(Exception, match=r"(?i)connection|refused|max retries"):
        client_for(fake_kube, context="unreachable")


def test_tls_with_the_kubeconfig_ca(fake_kube_factory: Callable[..., FakeKube]) -> None:  # noqa: F811
    fake = fake_kube_factory(tls=True)
    assert fake.url.startswith("https://127.0.0.1:")
    client = client_for(fake)
    res = client.resources.get(api_version="v1", kind="ConfigMap")
    made = client.server_side_apply(res, body=configmap("tls", {"a": "1"}),
                                    field_manager="kiln").to_dict()
    assert made["data"] == {"a": "1"}


def test_kubectl_applies_gets_and_diffs_against_the_fake(fake_kube: FakeKube,  # noqa: F811
                                                         tmp_path: Path) -> None:
    manifest = tmp_path / "d.json"
    manifest.write_text(json.dumps(deployment(replicas=2)))
    out = kubectl(fake_kube, "apply", "--server-side", "--validate=false", "-f", str(manifest))
    assert out.returncode == 0, out.stderr
    assert "deployment.apps/web serverside-applied" in out.stdout
    out = kubectl(fake_kube, "diff", "--server-side", "-f", str(manifest))
    assert out.returncode == 0, out.stdout + out.stderr
    manifest.write_text(json.dumps(deployment(replicas=4)))
    out = kubectl(fake_kube, "diff", "--server-side", "-f", str(manifest))
    assert out.returncode == 1 and "-  replicas: 2" in out.stdout and "+  replicas: 4" in out.stdout
    out = kubectl(fake_kube, "get", "deployment", "web", "-o", "json", "--show-managed-fields")
    assert out.returncode == 0, out.stderr
    live = json.loads(out.stdout)
    assert live["spec"]["replicas"] == 2
    assert managers(live)["kubectl"]["operation"] == "Apply"


# ----- the field-ownership model ---------------------------------------------------------------

_keys = st.text(alphabet="abcxyz-.", min_size=1, max_size=4)


def _item_name(item: dict[str, Any]) -> Any:
    return item["name"]


def _nest(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Maps, and lists of objects keyed by ``name`` (the fake's associative lists)."""
    return st.one_of(st.dictionaries(_keys, inner, max_size=3),
                     st.lists(st.fixed_dictionaries({"name": _keys, "v": inner}), max_size=3,
                              unique_by=_item_name))


_values = st.recursive(st.one_of(st.integers(), st.text(max_size=3), st.booleans(), st.none()),
                       _nest, max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=4))
def test_fields_v1_round_trips_every_leaf_path(obj: dict[str, Any]) -> None:
    paths = set(ssa.leaves(obj))
    assert ssa.decode_fields(ssa.encode_fields(paths)) == paths
    for path, value in ssa.leaves(obj).items():
        assert ssa.get_at(obj, path) == (True, value)


def test_path_strings_match_the_api_notation() -> None:
    obj = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x"}]}}}}
    (path,) = [p for p in ssa.leaves(obj) if p[-1] == ("f", "image")]
    assert ssa.path_string(path) == '.spec.template.spec.containers[name="app"].image'
    tree = ssa.encode_fields([path])
    container = tree["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"app"}']
    assert container == {".": {}, "f:image": {}}


def test_an_apply_with_a_non_string_secret_value_echoes_it_as_the_api_does(
        fake_kube: FakeKube) -> None:  # noqa: F811
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "s", "namespace": "default"},
              "stringData": {"password": 12345}}
    code, body = apply(fake_kube, secret)
    assert code == 500 and "reason" not in body
    assert body["message"] == (
        "failed to create typed patch object (default/s; /v1, Kind=Secret): "
        ".stringData.password: expected string, got &value.valueUnstructured{Value:12345}")
    code, body, _ = call(fake_kube, "POST", "/api/v1/namespaces/default/secrets", secret)
    assert code == 400 and "12345" not in body["message"]
    assert body["message"] == ('Secret in version "v1" cannot be handled as a Secret: json: '
                               "cannot unmarshal number into Go struct field Secret.stringData "
                               "of type string")
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "s", "namespace": "default"}, "data": {"k": "no!"}}
    code, body = apply(fake_kube, secret)
    assert code == 400 and body["message"].endswith("illegal base64 data at input byte 2")


def test_in_cluster_service_account_config(fake_kube_factory: Callable[..., FakeKube],  # noqa: F811
                                           tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes import client as kube_client
    from kubernetes.config.incluster_config import InClusterConfigLoader

    fake = fake_kube_factory(tls=True, require_token=True)
    sa = tmp_path / "serviceaccount"
    for key, value in fake.write_service_account(sa).items():
        monkeypatch.setenv(key, value)
    configuration = kube_client.Configuration()
    InClusterConfigLoader(token_filename=str(sa / "token"),
                          cert_filename=str(sa / "ca.crt")).load_and_set(configuration)
    client = dynamic.DynamicClient(kube_client.ApiClient(configuration))
    res = client.resources.get(api_version="v1", kind="ConfigMap")
    client.server_side_apply(res, body=configmap("in-cluster", {"a": "1"}), field_manager="kiln")
    assert fake.log[-1].user == "kiln-test" and fake.log[-1].status == 201


def test_watch_streams_changes_to_the_python_client(
        fake_kube_factory: Callable[..., FakeKube]) -> None:  # noqa: F811
    import threading

    from kubernetes import watch

    fake = fake_kube_factory(rollout_delay=0.2)
    client = client_for(fake)
    res = client.resources.get(api_version="apps/v1", kind="Deployment")
    made = client.server_side_apply(res, body=deployment(), field_manager="kiln").to_dict()
    assert "status" not in made
    deleter = threading.Timer(0.6, lambda: call(
        fake, "DELETE", "/apis/apps/v1/namespaces/default/deployments/web"))
    deleter.start()
    seen: list[tuple[str, Any]] = []
    watcher = watch.Watch()
    try:
        for event in client.watch(res, namespace="default", watcher=watcher, timeout=5,
                                  resource_version=made["metadata"]["resourceVersion"]):
            raw = event["raw_object"]
            seen.append((event["type"], (raw.get("status") or {}).get("readyReplicas")))
            if event["type"] == "DELETED":
                watcher.stop()
    finally:
        deleter.join()
    assert seen == [("MODIFIED", 2), ("DELETED", 2)]
    code, body, _ = call(fake, "GET", "/apis/apps/v1/namespaces/default/deployments",
                         query="watch=true&resourceVersion=0&timeoutSeconds=0")
    assert code == 200 and body == ""  # nothing left to announce, and the stream ended


def test_watch_from_zero_announces_what_exists(fake_kube: FakeKube) -> None:  # noqa: F811
    apply(fake_kube, configmap("a", {}, labels={"w": "1"}))
    apply(fake_kube, configmap("b", {}))
    code, body, _ = call(fake_kube, "GET", "/api/v1/namespaces/default/configmaps",
                         query="watch=1&labelSelector=w%3D1&timeoutSeconds=0")
    assert code == 200
    events = [json.loads(line) for line in body.splitlines()] if isinstance(body, str) else [body]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a")]
    assert events[0]["object"]["kind"] == "ConfigMap"


def test_collection_delete_generate_name_and_strategic_merge(
        fake_kube: FakeKube) -> None:  # noqa: F811
    code, made, _ = call(fake_kube, "POST", "/api/v1/namespaces/default/configmaps",
                         {"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"generateName": "gen-", "labels": {"batch": "x"}}})
    assert code == 201 and made["metadata"]["name"].startswith("gen-")
    assert len(made["metadata"]["name"]) == len("gen-") + 5
    apply(fake_kube, configmap("keep", {}))
    code, listed, _ = call(fake_kube, "DELETE", "/api/v1/namespaces/default/configmaps",
                           query="labelSelector=batch%3Dx")
    assert code == 200 and [i["metadata"]["name"] for i in listed["items"]] == [
        made["metadata"]["name"]]
    assert fake_kube.get("ConfigMap", "keep", "default") is not None
    apply(fake_kube, deployment())
    code, patched, _ = call(
        fake_kube, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web",
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}},
        ctype="application/strategic-merge-patch+json", query="fieldManager=kubectl-set")
    assert code == 200
    (container,) = patched["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "nginx:2" and container["imagePullPolicy"] == "IfNotPresent"
    assert patched["metadata"]["generation"] == 2
    code, body = apply(fake_kube, deployment())
    assert code == 409 and body["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl-set" using apps/v1: '
        '.spec.template.spec.containers[name="app"].image')


def test_aggregated_discovery_v2beta1_and_the_core_group(fake_kube: FakeKube) -> None:  # noqa: F811
    accept = ("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
              "application/json")
    code, body, headers = call(fake_kube, "GET", "/api", accept=accept)
    assert code == 200 and body["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    assert "v=v2beta1" in headers["Content-Type"]
    (core,) = body["items"]
    assert "name" not in core["metadata"]
    resources = {r["resource"]: r for r in core["versions"][0]["resources"]}
    assert resources["namespaces"]["scope"] == "Cluster"
    assert resources["secrets"]["singularResource"] == "secret"
    code, plain, _ = call(fake_kube, "GET", "/api")
    assert plain["kind"] == "APIVersions" and plain["versions"] == ["v1"]


def test_an_invalid_crd_is_refused(fake_kube: FakeKube) -> None:  # noqa: F811
    bad = json.loads(json.dumps(WIDGET_CRD))
    bad["metadata"]["name"] = "widgets.wrong.com"
    code, body = apply(fake_kube, bad)
    assert code == 422
    assert body["message"] == (
        'CustomResourceDefinition.apiextensions.k8s.io "widgets.wrong.com" is invalid: '
        'metadata.name: Invalid value: "widgets.wrong.com": must be spec.names.plural+"."+'
        "spec.group")


def _cm(body: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Thing", "metadata": {"name": "x"}, **body}


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=4), st.dictionaries(_keys, _values, max_size=4))
def test_a_sole_manager_ends_with_exactly_its_latest_config(first: dict[str, Any],
                                                            second: dict[str, Any]) -> None:
    """The SSA rule with one manager: whatever it applied before, the object's owned part is
    what it applies now (fields it dropped are gone), and applying it again changes nothing."""
    one = ssa.apply(None, _cm({"spec": first}), manager="m", api_version="v1", force=False,
                    now="t1").obj
    two = ssa.apply(one, _cm({"spec": second}), manager="m", api_version="v1", force=False,
                    now="t2").obj
    assert ssa.owned_view(two, "", False) == ssa.owned_view(_cm({"spec": second}), "", False)
    again = ssa.apply(two, _cm({"spec": second}), manager="m", api_version="v1", force=False,
                      now="t3").obj
    assert again == two


def test_an_applied_empty_map_survives_the_removal_of_its_old_keys() -> None:
    first = ssa.apply(None, _cm({"data": {"a": "1"}}), manager="m", api_version="v1",
                      force=False, now="t").obj
    second = ssa.apply(first, _cm({"data": {}}), manager="m", api_version="v1", force=False,
                       now="t").obj
    assert second["data"] == {}
    third = ssa.apply(second, _cm({"data": {"b": "2"}}), manager="m", api_version="v1",
                      force=False, now="t").obj
    assert third["data"] == {"b": "2"}


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=4), st.dictionaries(_keys, _values, max_size=4))
def test_what_another_manager_owns_survives_a_managers_retreat(mine: dict[str, Any],
                                                               theirs: dict[str, Any]) -> None:
    """m applies, o force-applies over it, m then applies nothing: o's config is what is left."""
    one = ssa.apply(None, _cm({"spec": mine}), manager="m", api_version="v1", force=False,
                    now="t1").obj
    result = ssa.apply(one, _cm({"spec": theirs}), manager="o", api_version="v1", force=True,
                       now="t2")
    assert result.conflicts == []
    gone = ssa.apply(result.obj, _cm({}), manager="m", api_version="v1", force=False,
                     now="t3").obj
    assert ssa.owned_view(gone, "", False) == ssa.owned_view(_cm({"spec": theirs}), "", False)
    assert {e["manager"] for e in gone["metadata"].get("managedFields", [])} <= {"o"}


def test_immutable_secrets_and_configmaps(fake_kube: FakeKube) -> None:  # noqa: F811
    secret = {"apiVersion": "v1", "kind": "Secret", "immutable": True,
              "metadata": {"name": "s", "namespace": "default"}, "data": {"k": "YQ=="}}
    assert apply(fake_kube, secret)[0] == 201
    secret["data"] = {"k": "Yg=="}
    code, body = apply(fake_kube, secret)
    assert code == 422 and body["message"] == (
        'Secret "s" is invalid: data: Forbidden: field is immutable when `immutable` is set')
    assert "Yg==" not in json.dumps(body) and "YQ==" not in json.dumps(body)
    tls = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": "t", "namespace": "default"}}
    apply(fake_kube, tls)
    tls["type"] = "kubernetes.io/tls"
    code, body = apply(fake_kube, tls)
    assert code == 422 and body["message"] == (
        'Secret "t" is invalid: type: Invalid value: "kubernetes.io/tls": field is immutable')
    assert [o["metadata"]["name"] for o in fake_kube.objects("Secret", "default")] == ["s", "t"]


def test_kubectl_applyset_prune_works_against_the_fake(fake_kube: FakeKube,  # noqa: F811
                                                       tmp_path: Path) -> None:
    """kubectl's own ApplySet (KEP-3659) flow runs here, so kiln's sets can be checked against
    kubectl's; its parent id matches the KEP's published example."""
    apply(fake_kube, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "test"}})
    both = tmp_path / "both.json"
    both.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        configmap("a", {"x": "1"}, namespace="test"), configmap("b", {"x": "2"},
                                                                 namespace="test")]}))
    args = ["apply", "--server-side", "--validate=false", "--prune", "--applyset=my-set",
            "-n", "test", "-f"]
    applyset = {"KUBECTL_APPLYSET": "true"}
    out = kubectl(fake_kube, *args, str(both), env=applyset)
    assert out.returncode == 0, out.stderr
    parent = fake_kube.get("Secret", "my-set", "test")
    assert parent is not None
    set_id = parent["metadata"]["labels"]["applyset.kubernetes.io/id"]
    assert set_id == "applyset-0eFHV8ySqp7XoShsGvyWFQD3s96yqwHmzc4e0HR1dsY-v1"
    member = fake_kube.get("ConfigMap", "b", "test")
    assert member is not None
    assert member["metadata"]["labels"] == {"applyset.kubernetes.io/part-of": set_id}
    one = tmp_path / "one.json"
    one.write_text(json.dumps(configmap("a", {"x": "1"}, namespace="test")))
    out = kubectl(fake_kube, *args, str(one), env=applyset)
    assert out.returncode == 0, out.stderr
    assert "configmap/b pruned" in out.stdout
    assert fake_kube.get("ConfigMap", "b", "test") is None
    assert fake_kube.get("ConfigMap", "a", "test") is not None


def test_the_kubeconfig_is_a_path_that_writes_another_when_called(
        fake_kube: FakeKube, tmp_path: Path) -> None:  # noqa: F811
    assert fake_kube.kubeconfig is not None and fake_kube.kubeconfig.is_file()
    written = fake_kube.kubeconfig(tmp_path / "elsewhere")
    assert written == tmp_path / "elsewhere" / "kubeconfig" and written.is_file()
    assert oct(written.stat().st_mode & 0o777) == "0o600"
    loaded = yaml.safe_load(written.read_text())
    assert loaded["current-context"] == "fake"
    assert {c["name"] for c in loaded["contexts"]} == {"fake", "fake-alt", "unreachable"}
    assert loaded["clusters"][0]["cluster"]["server"] == fake_kube.url


def test_kubectl_client_side_apply_then_server_side_apply_conflicts_as_documented(
        fake_kube: FakeKube, tmp_path: Path) -> None:  # noqa: F811
    """kubectl's client-side apply leaves its last-applied annotation and an Update manager;
    an SSA that changes its field gets the reference's example 409 word for word."""
    manifest = tmp_path / "d.json"
    manifest.write_text(json.dumps(deployment(replicas=2)))
    out = kubectl(fake_kube, "apply", "--validate=false", "-f", str(manifest))
    assert out.returncode == 0, out.stderr
    live = fake_kube.get("Deployment", "web", "default")
    assert live is not None
    last = json.loads(live["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"])
    assert last["spec"]["replicas"] == 2
    assert managers(live)["kubectl-client-side-apply"]["operation"] == "Update"
    code, body = apply(fake_kube, deployment(replicas=3), manager="kiln")
    assert code == 409
    assert body == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                   "using apps/v1: .spec.replicas",
        "reason": "Conflict",
        "details": {"causes": [{"reason": "FieldManagerConflict",
                                "message": 'conflict with "kubectl-client-side-apply" using '
                                           "apps/v1",
                                "field": ".spec.replicas"}]},
        "code": 409}


def test_managed_fields_can_be_rewritten_or_cleared_by_a_patch(
        fake_kube: FakeKube) -> None:  # noqa: F811
    fake_kube.seed(deployment(replicas=2), manager="kubectl-client-side-apply")
    live = fake_kube.get("Deployment", "web", "default")
    assert live is not None
    index = [e["manager"] for e in live["metadata"]["managedFields"]].index(
        "kubectl-client-side-apply")
    code, _, _ = call(fake_kube, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web",
                      [{"op": "replace", "path": f"/metadata/managedFields/{index}/manager",
                        "value": "kiln"},
                       {"op": "replace", "path": f"/metadata/managedFields/{index}/operation",
                        "value": "Apply"}], ctype="application/json-patch+json")
    assert code == 200
    code, body = apply(fake_kube, deployment(replicas=3), manager="kiln")
    assert code == 200 and body["spec"]["replicas"] == 3
    code, body, _ = call(fake_kube, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web",
                         {"metadata": {"managedFields": [{}]}},
                         ctype="application/merge-patch+json")
    assert code == 200 and "managedFields" not in body["metadata"]
