# ruff: noqa: F811  (pytest fixtures imported by name)
"""ApplySet interoperability with the real ``kubectl apply --applyset`` (KUBECTL_APPLYSET=true),
both talking to the fake API server: kubectl computes the same parent id as kiln, and each tool
recognises and refuses the other's set, as KEP-3659 prescribes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kiln.apply.applyset import ApplySet
from tests.fakekube import FakeKube
from tests.fakekube.fixtures import fake_kube, fake_kube_factory  # noqa: F401
from tests.helpers import assert_clean_failure, run_kiln, tool

pytestmark = pytest.mark.integration


def kubectl(fake: FakeKube, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECTL_APPLYSET": "true", "KUBECONFIG": str(fake.kubeconfig)}
    return subprocess.run([tool("kubectl"), *args], env=env, capture_output=True, text=True,
                          timeout=120)


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"a": name}}


def test_kubectl_parent_id_is_kilns(fake_kube: FakeKube, tmp_path: Path,
                                    cache_dir: Path) -> None:
    manifest = tmp_path / "k.yaml"
    manifest.write_text(yaml.safe_dump(configmap("by-kubectl")))
    proc = kubectl(fake_kube, "apply", "--server-side", "--validate=false", "-n", "default",
                   "-f", str(manifest), "--prune", "--applyset=kset")
    assert proc.returncode == 0, proc.stderr
    parent = fake_kube.get("Secret", "kset", "default")
    assert parent is not None
    assert parent["metadata"]["labels"]["applyset.kubernetes.io/id"] == \
        ApplySet("kset", "default").id
    member = fake_kube.get("ConfigMap", "by-kubectl", "default")
    assert member is not None
    assert member["metadata"]["labels"]["applyset.kubernetes.io/part-of"] == \
        ApplySet("kset", "default").id
    # kiln refuses to write into kubectl's set
    app = tmp_path / "app"
    app.mkdir()
    (app / "m.yaml").write_text(yaml.safe_dump(configmap("by-kiln")))
    proc = run_kiln("apply", str(app), "--kubeconfig", str(fake_kube.kubeconfig),
                    "--applyset", "kset", "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "Secret/default/kset", "managed by 'kubectl'")
    assert fake_kube.get("ConfigMap", "by-kiln", "default") is None


def test_kubectl_recognises_kilns_set(fake_kube: FakeKube, tmp_path: Path,
                                      cache_dir: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "m.yaml").write_text(yaml.safe_dump(configmap("by-kiln")))
    proc = run_kiln("apply", str(app), "--kubeconfig", str(fake_kube.kubeconfig),
                    "--applyset", "shared", "--cache-dir", str(cache_dir))
    assert proc.returncode == 0, proc.stderr
    manifest = tmp_path / "k.yaml"
    manifest.write_text(yaml.safe_dump(configmap("other")))
    proc = kubectl(fake_kube, "apply", "--server-side", "--validate=false", "-n", "default",
                   "-f", str(manifest), "--prune", "--applyset=shared")
    assert proc.returncode != 0
    assert 'managed by tooling "kiln"' in proc.stderr
    assert fake_kube.get("ConfigMap", "by-kiln", "default") is not None  # nothing pruned
