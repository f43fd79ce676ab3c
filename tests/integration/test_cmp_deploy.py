"""The deploy/argocd kustomization: it builds with kubectl kustomize, and kiln's own kustomize
renderer gives the same objects."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import kiln
from tests.helpers import REPO, tool

pytestmark = pytest.mark.integration

DEPLOY = REPO / "deploy" / "argocd"


def _kubectl_kustomize(path: Path = DEPLOY) -> list[dict[str, Any]]:
    proc = subprocess.run([tool("kubectl"), "kustomize", str(path)], capture_output=True,
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


def _pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = {_key(o): o for o in objects}["Deployment", "argocd-repo-server"]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_sidecar_runs_kiln_cmp_serve_and_the_repo_server_streams_lean() -> None:
    """`kiln cmp serve` is the sidecar's command (no argocd-cmp-server); its socket directory
    is the one the repo-server dials; the repo-server leaves .git out and sends 64 KiB."""
    pod = _pod(_kubectl_kustomize())
    containers = {c["name"]: c for c in pod["containers"]}
    sidecar, repo_server = containers["kiln"], containers["argocd-repo-server"]
    assert sidecar["command"] == ["kiln", "cmp", "serve"]
    assert "argocd-cmp-server" not in " ".join(sidecar.get("args", []))
    sock_dir = _env(sidecar)["ARGOCD_PLUGINSOCKFILEPATH"]
    assert sock_dir == "/home/argocd/cmp-server/plugins"
    mounts = {c: {m["mountPath"]: m["name"] for m in containers[c]["volumeMounts"]}
              for c in containers}
    assert mounts["kiln"][sock_dir] == mounts["argocd-repo-server"][sock_dir]
    args = sidecar["args"]
    metrics = args[args.index("--metrics-addr") + 1]
    port = int(metrics.rsplit(":", 1)[1])
    assert port in {p["containerPort"] for p in sidecar["ports"]}
    env = _env(repo_server)
    assert env["ARGOCD_REPO_SERVER_PLUGIN_TAR_EXCLUSIONS"].split(";") == [".git/*"]
    assert int(env["ARGOCD_CMP_CHUNK_SIZE"]) == 65536


def test_exec_mode_variant_builds(tmp_path: Path) -> None:
    """Adding exec-mode-patch.yaml turns the sidecar back into argocd-cmp-server."""
    copy = tmp_path / "argocd"
    shutil.copytree(DEPLOY, copy)
    kustomization = yaml.safe_load((copy / "kustomization.yaml").read_text())
    kustomization["patches"].append({"path": "exec-mode-patch.yaml"})
    (copy / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    pod = _pod(_kubectl_kustomize(copy))
    sidecar = {c["name"]: c for c in pod["containers"]}["kiln"]
    assert sidecar["command"] == ["/var/run/argocd/argocd-cmp-server"]
    assert not sidecar.get("args")
    mounts = {m["mountPath"]: m for m in sidecar["volumeMounts"]}
    assert mounts["/var/run/argocd"]["name"] == "var-files"
    assert mounts["/home/argocd/cmp-server/config/plugin.yaml"]["subPath"] == "plugin.yaml"
    copyutil = {c["name"]: c for c in pod["initContainers"]}["copyutil"]
    assert copyutil["command"][-1] == "/var/run/argocd/argocd-cmp-server"


def test_example_applications_name_the_plugin_and_their_paths() -> None:
    apps = [d for d in yaml.safe_load_all((DEPLOY / "examples" / "application.yaml").read_text())
            if d]
    assert apps
    for app in apps:
        assert app["spec"]["source"]["plugin"]["name"] == "kiln"
        annotation = app["metadata"]["annotations"]["argocd.argoproj.io/manifest-generate-paths"]
        assert "." in annotation.split(";")
