"""The deploy/argocd kustomization: it builds with kubectl kustomize, and kiln's own kustomize
renderer gives the same objects."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import kiln
from tests.helpers import REPO, tool

pytestmark = pytest.mark.integration

DEPLOY = REPO / "deploy" / "argocd"


def _kubectl_kustomize() -> list[dict[str, Any]]:
    proc = subprocess.run([tool("kubectl"), "kustomize", str(DEPLOY)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def test_kubectl_kustomize_builds_the_sidecar() -> None:
    objects = {_key(o): o for o in _kubectl_kustomize()}
    configmap = objects["ConfigMap", "kiln-cmp-plugin"]
    plugin = yaml.safe_load(configmap["data"]["plugin.yaml"])
    assert plugin["kind"] == "ConfigManagementPlugin"
    deployment = objects["Deployment", "argocd-repo-server"]
    assert deployment["metadata"]["namespace"] == "argocd"
    pod = deployment["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"argocd-repo-server", "kiln"}
    sidecar = containers["kiln"]
    assert sidecar["image"] == "ghcr.io/kiln-project/kiln-cmp:0.1.0"
    volumes = {v["name"] for v in pod["volumes"]}
    for mount in sidecar["volumeMounts"]:
        assert mount["name"] in volumes, mount
    # The repo-server's own /tmp is not shared with the sidecar (Argo CD's advice).
    tmp_of = {c: {m["mountPath"]: m["name"] for m in containers[c]["volumeMounts"]}["/tmp"]
              for c in containers}
    assert tmp_of["kiln"] != tmp_of["argocd-repo-server"]


def test_kiln_renders_the_deploy_kustomization(tmp_path: Path) -> None:
    engine = kiln.Engine(cache_dir=tmp_path / "cache", entry_points=False)
    result = engine.render(kiln.App(path=DEPLOY))
    assert result.renderer == "kustomize"
    assert sorted(result.objects, key=_key) == sorted(_kubectl_kustomize(), key=_key)
