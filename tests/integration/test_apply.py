# ruff: noqa: F811  (pytest fixtures imported by name)
"""``kiln apply`` end to end against the loopback fake API server (tests/fakekube).

The oracles are the fake's own store and request log (what reached the "cluster"), values the
tests chose, and the KEP-3659 formula computed here independently.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kiln import __version__
from tests.fakekube import FakeKube
from tests.fakekube.fixtures import fake_kube, fake_kube_factory  # noqa: F401
from tests.helpers import assert_clean_failure, run_kiln
from tests.secrets_scan import forms

pytestmark = pytest.mark.integration

SECRET_VALUE = "pa55-w0rd-kiln-apply-test"
SECRET_TOKEN = "t0ken-7f3a9c-kiln-apply"
NS = "shop"


def kep_id(name: str, namespace: str, kind: str = "Secret", group: str = "") -> str:
    digest = hashlib.sha256(f"{name}.{namespace}.{kind}.{group}".encode()).digest()
    return "applyset-" + base64.urlsafe_b64encode(digest).decode().rstrip("=") + "-v1"


def deployment(name: str, image: str = "nginx:1", app: str = "web") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": app}},
                     "template": {"metadata": {"labels": {"app": app}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def base_objects() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": NS},
         "data": {"color": "blue"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "extra", "namespace": NS},
         "data": {"k": "v"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": NS},
         "stringData": {"password": SECRET_VALUE, "token": SECRET_TOKEN}},
        deployment("web"),
    ]


def write_app(path: Path, objects: list[dict[str, Any]], name: str = "shop") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.yaml"):
        old.unlink()
    (path / "kiln.yaml").write_text(f"name: {name}\nnamespace: {NS}\n")
    (path / "manifests.yaml").write_text(yaml.safe_dump_all(objects))
    return path


def kiln_apply(fake: FakeKube, app: Path, cache: Path, *args: str) -> Any:
    return run_kiln("apply", str(app), "--kubeconfig", str(fake.kubeconfig), "--cache-dir",
                    str(cache), *args)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for value in (SECRET_VALUE, SECRET_TOKEN):
            for form in forms(value):
                assert form.decode() not in text


def writes(fake: FakeKube) -> list[Any]:
    """Requests that changed something: non-dry-run PATCH/POST/PUT/DELETE."""
    return [r for r in fake.log if r.method in ("PATCH", "POST", "PUT", "DELETE")
            and r.param("dryRun") != "All"]


def parent(fake: FakeKube, name: str = "kiln-shop") -> dict[str, Any]:
    found = fake.get("Secret", name, NS)
    assert found is not None
    return found


def inventory(fake: FakeKube, name: str = "kiln-shop") -> list[dict[str, str]]:
    data = parent(fake, name)["data"]["kiln-inventory.json"]
    members: list[dict[str, str]] = json.loads(base64.b64decode(data))["members"]
    return members


@pytest.fixture
def app(tmp_path: Path) -> Path:
    return write_app(tmp_path / "shop", base_objects())


def test_first_apply_creates_everything_by_server_side_apply(
        fake_kube: FakeKube, app: Path, cache_dir: Path) -> None:
    proc = kiln_apply(fake_kube, app, cache_dir, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert sorted(a["ref"] for a in summary["applied"]) == sorted(
        ["Namespace//shop", "ConfigMap/shop/conf", "ConfigMap/shop/extra",
         "Secret/shop/creds", "Deployment/shop/web"])
    assert {a["action"] for a in summary["applied"]} == {"created"}
    assert summary["unchanged"] == summary["pruned"] == summary["failed"] == []
    set_id = kep_id("kiln-shop", NS)
    assert summary["applyset"] == set_id
    # every write is a server-side apply with kiln's manager and strict validation
    for req in writes(fake_kube):
        assert req.method == "PATCH"
        assert req.content_type.startswith("application/apply-patch+yaml")
        assert req.param("fieldManager") == "kiln"
        assert req.param("fieldValidation") == "Strict"
    # the objects, labelled as members of the ApplySet
    stored = {(o["kind"], o["metadata"]["name"]): o for o in fake_kube.objects()}
    for kind, name in (("ConfigMap", "conf"), ("Secret", "creds"), ("Deployment", "web"),
                       ("Namespace", NS)):
        assert stored[(kind, name)]["metadata"]["labels"][
            "applyset.kubernetes.io/part-of"] == set_id
    secret = stored[("Secret", "creds")]
    assert base64.b64decode(secret["data"]["password"]).decode() == SECRET_VALUE
    # the parent: KEP labels and annotations, and an inventory with every uid
    meta = parent(fake_kube)["metadata"]
    assert meta["labels"]["applyset.kubernetes.io/id"] == set_id
    assert meta["annotations"]["applyset.kubernetes.io/tooling"] == f"kiln/{__version__}"
    assert meta["annotations"]["applyset.kubernetes.io/contains-group-kinds"] == \
        "ConfigMap,Deployment.apps,Namespace,Secret"
    uids = {(m["kind"], m["name"]): m["uid"] for m in inventory(fake_kube)}
    assert uids == {(k, n): o["metadata"]["uid"] for (k, n), o in stored.items()
                    if (k, n) in uids and o["metadata"].get("labels", {}).get(
                        "applyset.kubernetes.io/part-of") == set_id}
    assert len(uids) == 5
    assert proc.stderr == ""  # no progress in a pipe
    assert_no_secret(proc.stdout, proc.stderr)


def test_staged_order_namespace_first_webhooks_last(fake_kube: FakeKube, tmp_path: Path,
                                                    cache_dir: Path) -> None:
    objects = [deployment("web"),
               {"apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "hook"},
                "webhooks": []},
               {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                   "name": "early", "namespace": NS,
                   "annotations": {"argocd.argoproj.io/sync-wave": "-1"}}},
               {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
               {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web",
                                                                   "namespace": NS},
                "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}}]
    app = write_app(tmp_path / "a", objects)
    (app / "kiln.yaml").write_text("name: shop\n")  # parent in the context's namespace
    proc = kiln_apply(fake_kube, app, cache_dir)
    # wave -1 holds only the ConfigMap of a namespace that does not exist yet: refused
    assert_clean_failure(proc, "ConfigMap/shop/early", "namespace shop does not exist")
    objects[2]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] = "1"
    write_app(app, objects)
    (app / "kiln.yaml").write_text("name: shop\n")
    fake_kube.clear_log()
    proc = kiln_apply(fake_kube, app, cache_dir)
    assert proc.returncode == 0, proc.stderr
    order = [r.path.rsplit("/", 1)[-1] for r in writes(fake_kube)
             if "kiln-shop" not in r.path]
    assert order == [NS, "web", "web", "hook", "early"]  # Namespace, Service, Deployment
    assert "Service/shop/web created" in proc.stdout
    assert proc.stdout.strip().endswith("5 applied, 0 unchanged, 0 pruned")


def test_reapply_with_one_change_touches_one_object(fake_kube: FakeKube, app: Path,
                                                    cache_dir: Path) -> None:
    assert kiln_apply(fake_kube, app, cache_dir).returncode == 0
    before = {(o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
              for o in fake_kube.objects()}
    objects = base_objects()
    objects[1]["data"]["color"] = "green"
    write_app(app, objects)
    fake_kube.clear_log()
    proc = kiln_apply(fake_kube, app, cache_dir, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["applied"] == [{"ref": "ConfigMap/shop/conf", "action": "configured"}]
    assert len(summary["unchanged"]) == 4
    assert [r.path for r in writes(fake_kube)] == ["/api/v1/namespaces/shop/configmaps/conf"]
    after = {(o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
             for o in fake_kube.objects()}
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed == {("ConfigMap", "conf")}
    assert fake_kube.get("ConfigMap", "conf", NS)["data"] == {"color": "green"}  # type: ignore


def test_server_dry_run_changes_nothing(fake_kube: FakeKube, app: Path,
                                        cache_dir: Path) -> None:
    assert kiln_apply(fake_kube, app, cache_dir).returncode == 0
    objects = base_objects()[:3]  # drops the Secret and the Deployment ...
    objects[1]["data"]["color"] = "red"  # ... and changes one
    objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "new", "namespace": NS}})
    write_app(app, objects)
    store = fake_kube.objects()
    fake_kube.clear_log()
    proc = kiln_apply(fake_kube, app, cache_dir, "--dry-run=server", "--prune", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert fake_kube.objects() == store
    assert writes(fake_kube) == []
    assert any(r.param("dryRun") == "All" for r in fake_kube.log)
    summary = json.loads(proc.stdout)
    assert summary["dryRun"] is True
    assert sorted((a["ref"], a["action"]) for a in summary["applied"]) == [
        ("ConfigMap/shop/conf", "configured"), ("ConfigMap/shop/new", "created")]
    assert sorted(summary["pruned"]) == ["Deployment/shop/web", "Secret/shop/creds"]


def test_prune_deletes_what_left_the_render(fake_kube: FakeKube, app: Path,
                                            cache_dir: Path) -> None:
    assert kiln_apply(fake_kube, app, cache_dir).returncode == 0
    extra_uid = fake_kube.get("ConfigMap", "extra", NS)["metadata"]["uid"]  # type: ignore
    objects = [o for o in base_objects() if o["metadata"]["name"] not in ("extra", "web")]
    write_app(app, objects)
    # without --prune nothing is deleted, and the inventory still lists them
    proc = kiln_apply(fake_kube, app, cache_dir)
    assert proc.returncode == 0, proc.stderr
    assert fake_kube.get("ConfigMap", "extra", NS) is not None
    assert {m["name"] for m in inventory(fake_kube)} >= {"extra", "web"}
    fake_kube.clear_log()
    proc = kiln_apply(fake_kube, app, cache_dir, "--prune", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(json.loads(proc.stdout)["pruned"]) == ["ConfigMap/shop/extra",
                                                         "Deployment/shop/web"]
    assert fake_kube.get("ConfigMap", "extra", NS) is None
    assert fake_kube.get("Deployment", "web", NS) is None
    deletes = [r for r in fake_kube.log if r.method == "DELETE"]
    assert [r.path.rsplit("/", 1)[-1] for r in deletes] == ["web", "extra"]  # reverse order
    for req in deletes:
        assert req.param("propagationPolicy") == "Background"
        assert req.body["propagationPolicy"] == "Background"
    extra_delete = next(r for r in deletes if r.path.endswith("/extra"))
    assert extra_delete.body["preconditions"] == {"uid": extra_uid}
    # prune reads the inventory, not the cluster: no LIST of the kind that left the render
    assert not [r for r in fake_kube.log if r.method == "GET" and r.path.endswith(
        "/deployments")]
    assert {m["name"] for m in inventory(fake_kube)} == {NS, "conf", "creds"}


def test_prune_keeps_annotated_and_foreign_objects(fake_kube: FakeKube, tmp_path: Path,
                                                   cache_dir: Path) -> None:
    keep = {"kiln.dev/prune": "disabled",
            "kustomize.toolkit.fluxcd.io/prune": "Disabled",
            "argocd.argoproj.io/sync-options": "ServerSideApply=true,Prune=false"}
    objects = base_objects()[:2] + [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": f"keep{i}", "namespace": NS, "annotations": {k: v}}}
        for i, (k, v) in enumerate(keep.items())] + [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "adopted",
                                                               "namespace": NS}}]
    app = write_app(tmp_path / "shop", objects)
    assert kiln_apply(fake_kube, app, cache_dir).returncode == 0
    # someone else takes "adopted" out of the set (the part-of label removed)
    fake_kube.seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "adopted", "namespace": NS,
        "labels": {"applyset.kubernetes.io/part-of": None}}}, manager="someone")
    adopted = fake_kube.get("ConfigMap", "adopted", NS)
    assert adopted is not None and "applyset.kubernetes.io/part-of" not in adopted[
        "metadata"].get("labels", {})
    write_app(app, objects[:2])
    proc = kiln_apply(fake_kube, app, cache_dir, "--prune", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["pruned"] == []
    assert sorted(summary["kept"]) == ["ConfigMap/shop/adopted", "ConfigMap/shop/keep0",
                                       "ConfigMap/shop/keep1", "ConfigMap/shop/keep2"]
    for name in ("keep0", "keep1", "keep2", "adopted"):
        assert fake_kube.get("ConfigMap", name, NS) is not None
    assert not [r for r in fake_kube.log if r.method == "DELETE"]


def test_a_failed_delete_stays_in_the_inventory(fake_kube: FakeKube, app: Path,
                                                cache_dir: Path) -> None:
    assert kiln_apply(fake_kube, app, cache_dir).returncode == 0
    write_app(app, [o for o in base_objects() if o["metadata"]["name"] not in ("extra", "web")])
    fake_kube.set_fail("DELETE", r"/configmaps/extra$", 500, "etcd is sad")
    proc = kiln_apply(fake_kube, app, cache_dir, "--prune")
    assert_clean_failure(proc, "could not be pruned", "ConfigMap/shop/extra")
    assert "  - ConfigMap/shop/extra: delete configmaps failed (500): etcd is sad" in proc.stderr
    listed = {m["name"] for m in inventory(fake_kube)}
    assert "extra" in listed and "web" not in listed  # the delete that worked is recorded
    assert fake_kube.get("Deployment", "web", NS) is None
    fake_kube.clear_fails()
    proc = kiln_apply(fake_kube, app, cache_dir, "--prune")
    assert proc.returncode == 0, proc.stderr
    assert "ConfigMap/shop/extra pruned" in proc.stdout
    assert "extra" not in {m["name"] for m in inventory(fake_kube)}


def crd(group: str = "example.com", kind: str = "Widget") -> dict[str, Any]:
    plural = kind.lower() + "s"
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                               "listKind": kind + "List"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {
                                       "type": "object",
                                       "x-kubernetes-preserve-unknown-fields": True}}}]}}


def test_crd_and_its_objects_in_one_batch(fake_kube_factory: Any, tmp_path: Path,
                                          cache_dir: Path) -> None:
    """The CRD stage is applied and waited on until Established (here after 1 s), discovery
    is refreshed, then the custom resource applies."""
    fake = fake_kube_factory(crd_delay=1.0)
    widget = {"apiVersion": "example.com/v1", "kind": "Widget",
              "metadata": {"name": "w1"}, "spec": {"size": 3}}
    app = write_app(tmp_path / "shop", [widget, crd(), base_objects()[0]])
    proc = kiln_apply(fake, app, cache_dir)
    assert proc.returncode == 0, proc.stderr
    stored = fake.get("Widget", "w1", NS)
    assert stored is not None and stored["spec"] == {"size": 3}
    paths = [r.path for r in writes(fake)]
    assert paths.index("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                       "widgets.example.com") < paths.index(
        "/apis/example.com/v1/namespaces/shop/widgets/w1")
    assert "Widget/shop/w1 created" in proc.stdout


def test_unknown_kind_fails_before_any_write(fake_kube: FakeKube, tmp_path: Path,
                                             cache_dir: Path) -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget",
              "metadata": {"name": "w1", "namespace": NS}}
    app = write_app(tmp_path / "shop", [*base_objects(), widget])
    proc = kiln_apply(fake_kube, app, cache_dir)
    assert_clean_failure(proc, "Widget/shop/w1", "no kind Widget in example.com/v1")
    assert writes(fake_kube) == []


def test_missing_namespace_is_named(fake_kube: FakeKube, tmp_path: Path,
                                    cache_dir: Path) -> None:
    objects = [{"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "nowhere"}}]
    app = write_app(tmp_path / "shop", objects)
    (app / "kiln.yaml").write_text("name: shop\n")
    proc = kiln_apply(fake_kube, app, cache_dir)
    assert_clean_failure(proc, "ConfigMap/nowhere/c", "namespace nowhere does not exist")
    assert writes(fake_kube) == []


def test_conflicts_name_fields_and_manager(fake_kube: FakeKube, app: Path,
                                           cache_dir: Path) -> None:
    fake_kube.seed(base_objects()[0])
    fake_kube.seed({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "conf", "namespace": NS},
                    "data": {"color": "yellow"}}, manager="helm", operation="Apply")
    proc = kiln_apply(fake_kube, app, cache_dir)
    assert_clean_failure(proc, "ConfigMap/shop/conf", "conflict (409)", ".data.color",
                         "'helm'", "--force-conflicts")
    assert fake_kube.get("ConfigMap", "conf", NS)["data"] == {"color": "yellow"}  # type: ignore
    proc = kiln_apply(fake_kube, app, cache_dir, "--force-conflicts")
    assert proc.returncode == 0, proc.stderr
    taken = fake_kube.get("ConfigMap", "conf", NS)
    assert taken is not None and taken["data"] == {"color": "blue"}
    owners = {m["manager"] for m in taken["metadata"]["managedFields"]
              if "f:color" in json.dumps(m.get("fieldsV1"))}
    assert owners == {"kiln"}


def test_immutable_field_recreated_only_with_force(fake_kube: FakeKube, app: Path,
                                                   cache_dir: Path) -> None:
    assert kiln_apply(fake_kube, app, cache_dir).returncode == 0
    old_uid = fake_kube.get("Deployment", "web", NS)["metadata"]["uid"]  # type: ignore
    objects = base_objects()
    objects[4] = deployment("web", app="web2")  # selector is immutable
    write_app(app, objects)
    proc = kiln_apply(fake_kube, app, cache_dir)
    assert_clean_failure(proc, "Deployment/shop/web", "immutable", "spec.selector",
                         "--force")
    proc = kiln_apply(fake_kube, app, cache_dir, "--force", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["applied"] == [{"ref": "Deployment/shop/web",
                                                   "action": "recreated"}]
    new = fake_kube.get("Deployment", "web", NS)
    assert new is not None and new["metadata"]["uid"] != old_uid
    assert new["spec"]["selector"] == {"matchLabels": {"app": "web2"}}
    assert {m["uid"] for m in inventory(fake_kube) if m["name"] == "web"} == \
        {new["metadata"]["uid"]}


def test_forbidden_names_verb_and_resource(fake_kube: FakeKube, app: Path,
                                           cache_dir: Path) -> None:
    fake_kube.forbid("patch", "configmaps")
    proc = kiln_apply(fake_kube, app, cache_dir)
    assert_clean_failure(proc, "ConfigMap/shop/", "forbidden (403)", "patch configmaps",
                         "namespace shop")


def test_unauthorized_is_one_line(fake_kube_factory: Any, app: Path, cache_dir: Path) -> None:
    fake = fake_kube_factory(require_token=True)
    config = yaml.safe_load(fake.kubeconfig.read_text())
    for user in config["users"]:
        user["user"]["token"] = "wrong-token-value-123"
    fake.kubeconfig.write_text(yaml.safe_dump(config))
    proc = kiln_apply(fake, app, cache_dir)
    assert_clean_failure(proc, "unauthorized (401)")
    assert "wrong-token-value-123" not in proc.stderr


def test_unreachable_context(fake_kube: FakeKube, app: Path, cache_dir: Path) -> None:
    proc = kiln_apply(fake_kube, app, cache_dir, "--context", "unreachable")
    assert_clean_failure(proc, "context unreachable", "cannot reach the cluster")


def test_invalid_secret_never_echoes_its_values(fake_kube: FakeKube, app: Path,
                                                cache_dir: Path) -> None:
    """A 422 whose message quotes the Secret's data (as the API does) is reduced to fields."""
    fake_kube.set_fail("PATCH", r"/secrets/creds$", 422,
                       f'Secret "creds" is invalid: data[password]: Invalid value: '
                       f'"{SECRET_VALUE}": bad; stringData: {SECRET_TOKEN}')
    proc = kiln_apply(fake_kube, app, cache_dir, "--debug")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "Secret/shop/creds" in proc.stderr and "(422)" in proc.stderr
    assert_no_secret(proc.stdout, proc.stderr)


def test_an_invalid_configmap_shows_the_api_message(fake_kube: FakeKube, tmp_path: Path,
                                                    cache_dir: Path) -> None:
    objects = base_objects()
    # An unknown field: kube-apiserver refuses the apply patch itself with a 500 ("failed to
    # create typed patch object ... field not declared in schema"), whatever fieldValidation.
    objects[1]["spec"] = {"oops": 1}
    fake_kube.seed(objects.pop(0))
    app = write_app(tmp_path / "shop", objects)
    proc = kiln_apply(fake_kube, app, cache_dir)
    assert_clean_failure(proc, "ConfigMap/shop/conf", "(500)")
    assert "field not declared in schema" in proc.stderr.splitlines()[0]
    assert "spec" in proc.stderr.splitlines()[0]
    assert writes(fake_kube) == []  # dry-runs come first: nothing was written


def test_failure_mid_batch_reports_what_was_applied(fake_kube: FakeKube, app: Path,
                                                    cache_dir: Path) -> None:
    # the dry-run of the Deployment passes, its apply fails
    fake_kube.set_fail("PATCH", r"/deployments/web$", 500, "boom", after=1)
    proc = kiln_apply(fake_kube, app, cache_dir)
    assert_clean_failure(proc, "Deployment/shop/web", "after applying 4 object(s)",
                         "the inventory lists them")
    listed = {m["name"] for m in inventory(fake_kube)}
    assert listed == {NS, "conf", "extra", "creds", "web"}  # the superset: nothing leaks
    fake_kube.clear_fails()
    proc = kiln_apply(fake_kube, app, cache_dir, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["applied"] == [{"ref": "Deployment/shop/web",
                                                   "action": "created"}]
    web = fake_kube.get("Deployment", "web", NS)
    assert web is not None
    assert {m["uid"] for m in inventory(fake_kube) if m["name"] == "web"} == \
        {web["metadata"]["uid"]}


def test_wait_until_current_and_timeout(fake_kube: FakeKube, app: Path,
                                        cache_dir: Path) -> None:
    fake_kube.hold("Deployment", "web", NS)
    proc = kiln_apply(fake_kube, app, cache_dir, "--wait", "--timeout", "2s")
    assert_clean_failure(proc, "Deployment/shop/web", "timed out after 2s")
    fake_kube.hold("Deployment", "web", NS, mode="failed")
    proc = kiln_apply(fake_kube, app, cache_dir, "--wait", "--timeout", "20s")
    assert_clean_failure(proc, "Deployment/shop/web", "failed")
    fake_kube.release("Deployment", "web", NS)
    proc = kiln_apply(fake_kube, app, cache_dir, "--wait", "--timeout", "20s")
    assert proc.returncode == 0, proc.stderr
    polls = [r for r in fake_kube.log if r.method == "GET" and r.path.endswith(
        "/deployments/web")]
    assert polls


def test_context_namespace_and_a_configmap_parent(fake_kube: FakeKube, tmp_path: Path,
                                                  cache_dir: Path) -> None:
    """``--context fake-alt`` (namespace ``alt``) places unnamespaced objects and the parent
    there; the parent's namespace is created first when the render holds it."""
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "alt"}},
               {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}]
    app = tmp_path / "alt-app"
    app.mkdir()
    (app / "m.yaml").write_text(yaml.safe_dump_all(objects))
    proc = run_kiln("apply", str(app), "--kubeconfig", str(fake_kube.kubeconfig),
                    "--context", "fake-alt", "--applyset", "configmap/alt-set",
                    "--cache-dir", str(cache_dir))
    assert proc.returncode == 0, proc.stderr
    assert fake_kube.get("ConfigMap", "c", "alt") is not None
    set_cm = fake_kube.get("ConfigMap", "alt-set", "alt")
    assert set_cm is not None
    assert set_cm["metadata"]["labels"]["applyset.kubernetes.io/id"] == kep_id(
        "alt-set", "alt", "ConfigMap")
    listed = json.loads(set_cm["data"]["kiln-inventory.json"])["members"]
    assert {(m["kind"], m["namespace"], m["name"]) for m in listed} == {
        ("Namespace", "", "alt"), ("ConfigMap", "alt", "c")}


def test_another_tools_applyset_is_refused(fake_kube: FakeKube, app: Path,
                                           cache_dir: Path) -> None:
    fake_kube.seed(base_objects()[0])
    fake_kube.seed({"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "kiln-shop", "namespace": NS,
        "labels": {"applyset.kubernetes.io/id": kep_id("kiln-shop", NS)},
        "annotations": {"applyset.kubernetes.io/tooling": "kubectl/v1.33.0",
                        "applyset.kubernetes.io/contains-group-kinds": ""}}})
    proc = kiln_apply(fake_kube, app, cache_dir)
    assert_clean_failure(proc, "Secret/shop/kiln-shop", "managed by 'kubectl'")
    assert writes(fake_kube) == []


def test_library_engine_apply_calls_before_apply(fake_kube: FakeKube, app: Path,
                                                 cache_dir: Path) -> None:
    """``Engine.apply`` renders, hands the resolved objects to ``kiln_before_apply`` (which
    may change them) and applies what the hook left."""
    from kiln.apply.applier import ApplyOptions
    from kiln.apply.cluster import ClusterOptions
    from kiln.core.engine import Engine
    from kiln.core.hookspecs import hookimpl

    seen: list[str] = []

    class Stamp:
        @hookimpl
        def kiln_before_apply(self, app: Any, objects: list[dict[str, Any]]) -> None:
            for obj in objects:
                seen.append(obj["kind"])
                if obj["kind"] == "Secret":
                    seen.append(obj["stringData"]["password"])
                obj["metadata"].setdefault("labels", {})["stamped"] = "yes"

    engine = Engine(cache_dir, plugins=[Stamp()], entry_points=False)
    loaded = engine.load_app(app)
    report = engine.apply(loaded, cluster=ClusterOptions(str(fake_kube.kubeconfig)),
                          options=ApplyOptions(field_manager="my-controller"))
    assert len(report.applied) == 5
    assert SECRET_VALUE in seen and "Deployment" in seen
    stored = fake_kube.get("ConfigMap", "conf", NS)
    assert stored is not None and stored["metadata"]["labels"]["stamped"] == "yes"
    assert {r.param("fieldManager") for r in writes(fake_kube)} == {"my-controller"}


def test_applier_with_objects_from_elsewhere(fake_kube: FakeKube) -> None:
    """Another controller hands ``Applier`` objects it rendered itself (no ApplySet)."""
    from kiln.apply.applier import Applier
    from kiln.apply.cluster import ClusterOptions, connect

    with connect(ClusterOptions(str(fake_kube.kubeconfig))) as conn:
        applier = Applier(conn)
        first = applier.apply([{"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "lib"}, "data": {"a": "1"}}])
        again = applier.apply([{"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "lib"}, "data": {"a": "1"}}])
    assert first.applied == ["ConfigMap/default/lib"] and again.unchanged == first.applied
    stored = fake_kube.get("ConfigMap", "lib", "default")
    assert stored is not None and "labels" not in stored["metadata"]


def test_previous_members_are_read_by_one_list(fake_kube: FakeKube, tmp_path: Path,
                                               cache_dir: Path) -> None:
    """A re-apply reads the live state of many members of one kind with one LIST (label
    part-of) instead of a GET each; an object that lost the label is still read by GET."""
    maps = [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": f"m{i}", "namespace": NS}, "data": {"i": str(i)}}
            for i in range(6)]
    app = write_app(tmp_path / "shop", [base_objects()[0], *maps])
    assert kiln_apply(fake_kube, app, cache_dir).returncode == 0
    fake_kube.seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "m5", "namespace": NS, "labels": {"applyset.kubernetes.io/part-of": None}}},
        manager="someone")
    maps[2]["data"]["i"] = "changed"
    write_app(app, [base_objects()[0], *maps])
    fake_kube.clear_log()
    proc = kiln_apply(fake_kube, app, cache_dir, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert sorted(a["ref"] for a in summary["applied"]) == ["ConfigMap/shop/m2",
                                                            "ConfigMap/shop/m5"]
    lists = [r for r in fake_kube.log if r.method == "GET" and r.path.endswith("/configmaps")]
    assert len(lists) == 1
    assert lists[0].param("labelSelector") == "applyset.kubernetes.io/part-of=" + kep_id(
        "kiln-shop", NS)
    gets = [r.path.rsplit("/", 1)[-1] for r in fake_kube.log
            if r.method == "GET" and "/configmaps/" in r.path]
    assert gets == ["m5"]
    relabelled = fake_kube.get("ConfigMap", "m5", NS)
    assert relabelled is not None and relabelled["metadata"]["labels"][
        "applyset.kubernetes.io/part-of"] == kep_id("kiln-shop", NS)


def test_in_cluster_service_account(fake_kube_factory: Any, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """No kubeconfig anywhere and KUBERNETES_SERVICE_HOST/PORT set: the service account's
    token, CA and namespace are used, as kubectl does in a pod."""
    from urllib.parse import urlsplit

    from kiln.apply import cluster as cluster_mod
    from kiln.apply.applier import Applier
    from tests.fakekube.server import DEFAULT_TOKEN

    fake = fake_kube_factory(tls=True, require_token=True)
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(DEFAULT_TOKEN)
    (account / "ca.crt").write_bytes(fake.ca_pem)
    (account / "namespace").write_text("kube-public")
    monkeypatch.setattr(cluster_mod, "SERVICE_ACCOUNT_DIR", str(account))
    url = urlsplit(fake.url)
    env = {"KUBERNETES_SERVICE_HOST": str(url.hostname),
           "KUBERNETES_SERVICE_PORT": str(url.port), "HOME": str(tmp_path / "home")}
    with cluster_mod.connect(cluster_mod.ClusterOptions(), env) as conn:
        assert conn.namespace == "kube-public"
        assert conn.where == "in-cluster service account"
        report = Applier(conn).apply([{"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": "from-a-pod"}}])
    assert report.applied == ["ConfigMap/kube-public/from-a-pod"]
    assert fake.get("ConfigMap", "from-a-pod", "kube-public") is not None
    assert {r.user for r in fake.log} == {"kiln-test"}


def test_no_secret_in_any_output_even_with_debug(fake_kube: FakeKube, app: Path,
                                                 cache_dir: Path) -> None:
    """Apply, change the Secret's value, re-apply, dry-run and prune with --debug: the Secret is
    detected as changed, and neither value appears in stdout or stderr (raw or base64)."""
    outputs = []
    proc = kiln_apply(fake_kube, app, cache_dir, "--debug")
    assert proc.returncode == 0, proc.stderr
    outputs += [proc.stdout, proc.stderr]
    new_value = "n3w-s3cret-after-rotation"
    objects = base_objects()
    objects[3]["stringData"]["password"] = new_value
    write_app(app, objects)
    for args in (("--dry-run=server", "-o", "json"), ("-o", "json"), ("--prune",)):
        proc = kiln_apply(fake_kube, app, cache_dir, "--debug", *args)
        assert proc.returncode == 0, proc.stderr
        outputs += [proc.stdout, proc.stderr]
    assert json.loads(outputs[4])["applied"] == [{"ref": "Secret/shop/creds",
                                                  "action": "configured"}]
    stored = fake_kube.get("Secret", "creds", NS)
    assert stored is not None
    assert base64.b64decode(stored["data"]["password"]).decode() == new_value
    assert_no_secret(*outputs)
    for text in outputs:
        for form in forms(new_value):
            assert form.decode() not in text


def test_connection_lost_mid_batch_names_the_object(fake_kube: FakeKube, app: Path,
                                                    cache_dir: Path) -> None:
    fake_kube.set_fail("PATCH", r"/deployments/web$", 0, after=1)  # the apply, not the dry-run
    proc = kiln_apply(fake_kube, app, cache_dir)
    assert_clean_failure(proc, "Deployment/shop/web", "cannot reach the cluster",
                         "context fake", "patch deployments.apps", "after applying 4")


def test_live_pairs_for_kiln_diff(fake_kube: FakeKube) -> None:
    """``live_pairs`` pairs each object with its live state and its server-side dry-run, and
    writes nothing."""
    from kiln.apply.cluster import ClusterOptions
    from kiln.apply.live import live_pairs

    fake_kube.seed(base_objects()[0])
    fake_kube.seed(base_objects()[1])
    changed = base_objects()[1]
    changed["data"]["color"] = "green"
    fresh = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fresh"}}
    store = fake_kube.objects()
    pairs = live_pairs([fresh, changed], cluster=ClusterOptions(str(fake_kube.kubeconfig)))
    assert fake_kube.objects() == store and writes(fake_kube) == []
    assert [p.ref for p in pairs] == ["ConfigMap/default/fresh", "ConfigMap/shop/conf"]
    assert pairs[0].live is None and pairs[0].desired["metadata"]["namespace"] == "default"
    assert pairs[1].live is not None and pairs[1].live["data"] == {"color": "blue"}
    assert pairs[1].desired["data"] == {"color": "green"}
    assert pairs[1].desired["metadata"]["uid"] == pairs[1].live["metadata"]["uid"]


def test_a_before_apply_hook_can_stop_the_apply(fake_kube: FakeKube, app: Path,
                                                cache_dir: Path) -> None:
    from kiln.apply.cluster import ClusterOptions
    from kiln.core.engine import Engine
    from kiln.core.errors import ConfigError
    from kiln.core.hookspecs import hookimpl

    class Policy:
        @hookimpl
        def kiln_before_apply(self, app: Any, objects: list[dict[str, Any]]) -> None:
            raise ConfigError("policy: no Deployments on Fridays", source="policy")

    engine = Engine(cache_dir, plugins=[Policy()], entry_points=False)
    with pytest.raises(ConfigError, match="Fridays"):
        engine.apply(engine.load_app(app), cluster=ClusterOptions(str(fake_kube.kubeconfig)))
    assert fake_kube.log == []  # not even connected
