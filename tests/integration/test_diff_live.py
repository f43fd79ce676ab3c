"""``kiln diff PATH`` against a (fake) cluster: live state vs the server-side dry-run.

The cluster is the loopback fake API of ``tests/fakekube`` (a fake: see its docstring for what
it does not emulate), seeded with live objects the test wrote — among them a Secret carrying a
client-side ``last-applied-configuration`` copy of its old values. Every run's output is
scanned for every value, its base64 and its length; the cluster must be unchanged afterwards
(a diff only dry-runs).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fakekube.fixtures import fake_kube, fake_kube_factory  # noqa: F401
from tests.fakekube.server import FakeKube
from tests.helpers import assert_clean_failure, run_kiln, write_tree

pytestmark = pytest.mark.integration

OLD_PW, NEW_PW, TOKEN, ADDED = "Live-Old-Pw-01", "Live-New-Pw-02", "Live-Token-AA", "Live-Add-BB"
VALUES = [OLD_PW, NEW_PW, TOKEN, ADDED]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def leaks(text: str) -> list[str]:
    found = []
    for value in VALUES:
        raw = value.encode()
        forms = {value, b64(value), b64(value).rstrip("=")}
        found += [f"{value!r} as {f!r}" for f in forms if f in text]
        if re.search(rf"(?<![0-9]){len(raw)}(?![0-9])\s*(?:bytes?|chars?|B\b)", text):
            found.append(f"the length of {value!r}")
    return found + (["a *** run"] if "***" in text else [])


def live_secret() -> dict[str, Any]:
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "apps"},
           "type": "Opaque", "data": {"password": b64(OLD_PW), "token": b64(TOKEN)}}
    copy = json.dumps(obj)
    obj["metadata"]["annotations"] = {  # type: ignore[index]
        "kubectl.kubernetes.io/last-applied-configuration": copy}
    return obj


def config(data: dict[str, str], name: str = "cfg") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "apps"}, "data": data}


def deployment(replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web",
                                                           "image": "nginx:1.27"}]}}}}


def write_app(root: Path) -> Path:
    write_tree(root, {
        "app/secret.yaml": f"""
            apiVersion: v1
            kind: Secret
            metadata: {{name: db, namespace: apps}}
            type: Opaque
            stringData:
              password: {NEW_PW}
              token: {TOKEN}
              added: {ADDED}
            """,
        "app/objects.json": json.dumps([config({"a": "1"}), config({"n": "x"}, "new"),
                                        deployment(3)]),
    })
    return root / "app"


@pytest.fixture
def seeded(fake_kube: FakeKube) -> FakeKube:  # noqa: F811
    fake_kube.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}})
    fake_kube.seed(live_secret(), manager="kubectl-client-side-apply")
    fake_kube.seed(config({"a": "1"}), manager="kiln", operation="Apply")
    fake_kube.seed(deployment(1), manager="kiln", operation="Apply")
    return fake_kube


def kiln_diff(app: Path, fake: FakeKube, *args: str) -> subprocess.CompletedProcess[str]:
    return run_kiln("diff", str(app), "--kubeconfig", str(fake.kubeconfig), *args)


def test_live_diff_masks_secrets_and_changes_nothing(tmp_path: Path, seeded: FakeKube) -> None:
    app = write_app(tmp_path)
    before = {(o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
              for o in seeded.objects()}
    proc = kiln_diff(app, seeded)
    assert proc.returncode == 1, proc.stderr
    assert not leaks(proc.stdout + proc.stderr)
    lines = proc.stdout.splitlines()
    assert "--- live/Secret/apps/db" in lines and "+++ desired/Secret/apps/db" in lines
    assert "-  password: <masked, changed (before)>" in lines
    assert "+  password: <masked, changed (after)>" in lines
    assert "   token: <masked, unchanged>" in lines
    assert "+  added: <masked, added>" in lines
    assert "-  replicas: 1" in lines and "+  replicas: 3" in lines
    for bookkeeping in ("managedFields", "resourceVersion", "uid:", "creationTimestamp",
                        "generation"):
        assert bookkeeping not in proc.stdout, bookkeeping
    out = json.loads(kiln_diff(app, seeded, "-o", "json").stdout)
    states = {o["ref"]: o["state"] for o in out["objects"]}
    assert states == {"ConfigMap/apps/cfg": "changed", "ConfigMap/apps/new": "added",
                      "Deployment/apps/web": "changed", "Secret/apps/db": "changed"}
    # The seeded ConfigMap equals the render: only the ApplySet label kiln apply adds differs.
    cfg = next(o for o in out["objects"] if o["ref"] == "ConfigMap/apps/cfg")["diff"]
    changed = [line for line in cfg.splitlines()[2:] if line[:1] in "+-"]
    assert changed[0] == "+  labels:" and len(changed) == 2
    assert changed[1].startswith("+    applyset.kubernetes.io/part-of: applyset-")
    secret = next(o for o in out["objects"] if o["ref"] == "Secret/apps/db")
    assert secret["keys"] == {"added": "added", "password": "changed", "token": "unchanged"}
    markdown = kiln_diff(app, seeded, "-o", "markdown")
    assert markdown.returncode == 1 and not leaks(markdown.stdout + markdown.stderr)
    # Only reads and dry-runs reached the cluster.
    writes = [r for r in seeded.log if r.method in ("POST", "PUT", "PATCH", "DELETE")]
    assert writes and all(r.param("dryRun") == "All" for r in writes), writes
    after = {(o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
             for o in seeded.objects()}
    assert after == before


def test_in_sync_after_apply_exits_zero(tmp_path: Path, seeded: FakeKube) -> None:
    app = write_app(tmp_path)
    applied = run_kiln("apply", str(app), "--kubeconfig", str(seeded.kubeconfig))
    assert applied.returncode == 0, applied.stderr
    proc = kiln_diff(app, seeded, "-o", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["changed"] is False
    assert not leaks(proc.stdout + proc.stderr)


def test_api_errors_echoing_values_are_masked(tmp_path: Path, seeded: FakeKube) -> None:
    app = write_app(tmp_path)
    seeded.set_fail("PATCH", r"/secrets/db", 422,
                    f'Secret "db" is invalid: data[password]: Invalid value: "{NEW_PW}": '
                    f'bad; copy {b64(NEW_PW)} and {TOKEN}')
    proc = kiln_diff(app, seeded)
    assert_clean_failure(proc, code=2)
    assert not leaks(proc.stdout + proc.stderr), proc.stderr


def test_unreachable_cluster_is_one_line_exit_two(tmp_path: Path,
                                                  fake_kube: FakeKube) -> None:  # noqa: F811
    app = write_app(tmp_path)
    proc = kiln_diff(app, fake_kube, "--context", "unreachable")
    assert_clean_failure(proc, code=2)
    assert not leaks(proc.stderr)


def test_debug_output_and_logs_hold_no_value(tmp_path: Path, seeded: FakeKube,
                                             caplog: pytest.LogCaptureFixture) -> None:
    import logging

    app = write_app(tmp_path)
    proc = kiln_diff(app, seeded, "--debug", "-o", "json")
    assert proc.returncode == 1, proc.stderr
    assert not leaks(proc.stdout + proc.stderr)
    # In process, every logger at DEBUG (the kubernetes client's and urllib3's included).
    from kiln.apply.cluster import ClusterOptions
    from kiln.core.engine import Engine
    from kiln.diff.live import diff_live
    from kiln.diff.mask import MaskPolicy
    from kiln.diff.report import render

    caplog.set_level(logging.DEBUG)
    engine = Engine(tmp_path / "cache", entry_points=False)
    objects = engine.render(engine.load_app(app), secrets=True).objects
    result = diff_live(objects, cluster=ClusterOptions(kubeconfig=str(seeded.kubeconfig)),
                       policy=MaskPolicy(redactor=engine.redactor))
    assert result.changed
    text = "".join(render(result, fmt) for fmt in ("text", "json", "markdown"))  # type: ignore[arg-type]
    assert not leaks(text + caplog.text)


def test_objects_without_namespace_go_to_the_apps_namespace(tmp_path: Path,
                                                            seeded: FakeKube) -> None:
    write_tree(tmp_path, {"app/cm.json": json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
         "data": {"a": "2"}})})
    proc = kiln_diff(tmp_path / "app", seeded, "-n", "apps", "-o", "json")
    assert proc.returncode == 1, proc.stderr
    [item] = json.loads(proc.stdout)["objects"]
    assert (item["ref"], item["state"]) == ("ConfigMap/apps/cfg", "changed")
    assert "-  a: '1'" in item["diff"] and "+  a: '2'" in item["diff"]
    default = kiln_diff(tmp_path / "app", seeded, "-o", "json")  # the context's: default
    assert [(o["ref"], o["state"]) for o in json.loads(default.stdout)["objects"]] == [
        ("ConfigMap/default/cfg", "added")]
