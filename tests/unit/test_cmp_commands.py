"""The ``kiln cmp`` commands: plugin.yaml shape, discovery on every app shape, announcements,
and the committed deploy files agreeing with what kiln generates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from kiln.cmp.commands import cmp
from kiln.cmp.parameters import table
from tests.helpers import REPO

TABLE = table({})

DEPLOY = REPO / "deploy" / "argocd"


def _invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cmp, list(args), env=env, catch_exceptions=False)


def _plugin() -> dict[str, Any]:
    result = _invoke("plugin-yaml")
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.output)
    assert isinstance(data, dict)
    return data


def test_plugin_yaml_shape() -> None:
    plugin = _plugin()
    assert plugin["apiVersion"] == "argoproj.io/v1alpha1"
    assert plugin["kind"] == "ConfigManagementPlugin"
    assert plugin["metadata"]["name"] == "kiln"
    spec = plugin["spec"]
    assert spec["generate"]["command"] == ["kiln", "generate", "."]
    assert spec["discover"]["find"]["command"] == ["kiln", "cmp", "discover"]
    assert spec["parameters"]["dynamic"]["command"] == ["kiln", "cmp", "parameters"]
    assert "version" not in spec  # the Application refers to the plugin as plain `kiln`
    static = spec["parameters"]["static"]
    assert [item["name"] for item in static] == [row.name for row in TABLE]
    for item in static:
        assert item["title"] and item["tooltip"]
        assert item["collectionType"] in ("string", "array", "map")
        assert item["itemType"] in ("string", "boolean")
    kinds = {item["name"]: item["collectionType"] for item in static}
    assert kinds["helm-values-files"] == "array"
    assert kinds["helm-parameters"] == "map"
    assert kinds["helm-values"] == "string"


def test_plugin_yaml_has_no_v1_only_fields() -> None:
    spec = _plugin()["spec"]
    assert not {"lockRepo", "allowConcurrency"} & set(spec)


def test_committed_configmap_matches_generated() -> None:
    result = _invoke("plugin-yaml", "--configmap")
    assert result.exit_code == 0
    committed = (DEPLOY / "plugin-configmap.yaml").read_text()
    assert committed == result.output, (
        "deploy/argocd/plugin-configmap.yaml is stale: regenerate it with "
        "`python -m kiln.cmp plugin-yaml --configmap > deploy/argocd/plugin-configmap.yaml`")
    data = yaml.safe_load(committed)
    assert data["kind"] == "ConfigMap"
    assert yaml.safe_load(data["data"]["plugin.yaml"]) == _plugin()


def test_sidecar_patch_follows_argocd_docs() -> None:
    patch = yaml.safe_load((DEPLOY / "repo-server-patch.yaml").read_text())
    pod = patch["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"kiln", "argocd-repo-server"}
    sidecar = containers["kiln"]
    assert sidecar["command"] == ["kiln", "cmp", "serve"]
    exec_patch = yaml.safe_load((DEPLOY / "exec-mode-patch.yaml").read_text())
    (exec_sidecar,) = exec_patch["spec"]["template"]["spec"]["containers"]
    assert exec_sidecar["command"] == ["/var/run/argocd/argocd-cmp-server"]
    assert sidecar["securityContext"]["runAsUser"] == 999
    assert sidecar["securityContext"]["runAsNonRoot"] is True
    mounts = {m["mountPath"]: m for m in sidecar["volumeMounts"]}
    assert mounts["/var/run/argocd"]["name"] == "var-files"
    assert mounts["/home/argocd/cmp-server/plugins"]["name"] == "plugins"
    config = mounts["/home/argocd/cmp-server/config/plugin.yaml"]
    assert config["subPath"] == "plugin.yaml"
    volumes = {v["name"]: v for v in pod["volumes"]}
    configmap = yaml.safe_load((DEPLOY / "plugin-configmap.yaml").read_text())
    assert volumes[config["name"]]["configMap"]["name"] == configmap["metadata"]["name"]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    cache = env["KILN_CACHE_DIR"]
    assert "emptyDir" in volumes[mounts[cache]["name"]]
    # The Dockerfile's entrypoint and user agree with the patch.
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["kiln", "cmp", "serve"]' in dockerfile
    assert "USER 999" in dockerfile
    assert "'/src[tools,cmp-server]'" in dockerfile


# -- discover ------------------------------------------------------------------------------------

DEPLOYMENT = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"

POSITIVE: dict[str, tuple[dict[str, str], str]] = {
    "helm": ({"Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n"}, "helm"),
    "kustomization.yaml": ({"kustomization.yaml": "resources: []\n"}, "kustomize"),
    "kustomization.yml": ({"kustomization.yml": "resources: []\n"}, "kustomize"),
    "Kustomization": ({"Kustomization": "resources: []\n"}, "kustomize"),
    "kustomize-beats-helm": ({"Chart.yaml": "name: x\n", "kustomization.yaml": "{}\n"},
                             "kustomize"),
    "jsonnet": ({"main.jsonnet": "{}\n"}, "jsonnet"),
    "yaml": ({"deploy.yaml": DEPLOYMENT}, "directory"),
    "yml-list": ({"all.yml": "- apiVersion: v1\n  kind: ConfigMap\n"}, "directory"),
    "json": ({"cm.json": '{"apiVersion":"v1","kind":"ConfigMap"}'}, "directory"),
    "kiln.yaml": ({"kiln.yaml": "type: helm\n"}, "helm"),
}

NEGATIVE: dict[str, dict[str, str]] = {
    "empty": {},
    "readme": {"README.md": "# nothing\n"},
    "yaml-not-a-manifest": {"config.yaml": "key: value\n", "data.json": '{"a": 1}'},
    "chart-only-below": {"sub/Chart.yaml": "name: x\n"},
}


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize("case", sorted(POSITIVE))
def test_discover_positive(tmp_path: Path, case: str) -> None:
    files, kind = POSITIVE[case]
    _write(tmp_path, files)
    result = _invoke("discover", str(tmp_path))
    assert result.exit_code == 0
    assert result.output == f"{kind}\n"


@pytest.mark.parametrize("case", sorted(NEGATIVE))
def test_discover_negative(tmp_path: Path, case: str) -> None:
    _write(tmp_path, NEGATIVE[case])
    result = _invoke("discover", str(tmp_path))
    assert result.exit_code == 1
    assert result.output == ""


def test_discover_defaults_to_the_current_directory(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, {"deploy.yaml": DEPLOYMENT})
    monkeypatch.chdir(tmp_path)
    assert _invoke("discover").output == "directory\n"


# -- parameters ----------------------------------------------------------------------------------

def _announced(path: Path, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    result = _invoke("parameters", str(path), env=env)
    assert result.exit_code == 0, result.output
    items = json.loads(result.output)
    assert isinstance(items, list)
    return {item["name"]: item for item in items}


def test_parameters_for_a_helm_chart(tmp_path: Path) -> None:
    _write(tmp_path, {
        "Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
        "values.yaml": "replicaCount: 1\nimage:\n  repository: nginx\n  tag: ''\n"
                       "ingress:\n  enabled: false\n  hosts: [a.example.com]\n"
                       "labels:\n  app.kubernetes.io/part-of: shop\nnothing: null\n",
        "values-prod.yaml": "replicaCount: 3\n",
        "templates/deployment.yaml": DEPLOYMENT,
        "notes.txt": "",
    })
    found = _announced(tmp_path, env={"ARGOCD_APP_NAME": "ns_shop"})
    assert found["helm-values-files"]["array"] == ["values-prod.yaml", "values.yaml"]
    assert found["helm-values-files"]["collectionType"] == "array"
    assert found["helm-parameters"]["collectionType"] == "map"
    assert found["helm-parameters"]["map"] == {
        "replicaCount": "1", "image.repository": "nginx", "image.tag": "",
        "ingress.enabled": "false", "ingress.hosts[0]": "a.example.com",
        "labels.app\\.kubernetes\\.io/part-of": "shop"}
    assert found["helm-release-name"]["string"] == "shop"
    for item in found.values():
        assert item["title"]


def test_parameters_for_a_kustomization(tmp_path: Path) -> None:
    _write(tmp_path, {"kustomization.yaml": (
        "namespace: shop\nnamePrefix: dev-\nresources: [deploy.yaml]\n"
        "components: [../c]\ncommonLabels: {team: a}\n"
        "images:\n- name: nginx\n  newTag: '1.27'\n- name: app\n  newName: reg/app\n"
        "  newTag: v2\n- name: db\n  digest: sha256:abc\n- name: untouched\n")})
    found = _announced(tmp_path)
    assert found["kustomize-images"]["array"] == ["nginx:1.27", "app=reg/app:v2", "db@sha256:abc"]
    assert found["kustomize-namespace"]["string"] == "shop"
    assert found["kustomize-name-prefix"]["string"] == "dev-"
    assert found["kustomize-components"]["array"] == ["../c"]
    assert found["kustomize-common-labels"]["map"] == {"team": "a"}


def test_parameters_for_jsonnet_and_directory(tmp_path: Path) -> None:
    jsonnet = tmp_path / "j"
    _write(jsonnet, {"a.jsonnet": "{}", "main.jsonnet": "{}"})
    assert _announced(jsonnet)["jsonnet-main"]["string"] == "main.jsonnet"
    plain = tmp_path / "d"
    _write(plain, {"deploy.yaml": DEPLOYMENT})
    assert _announced(plain) == {}


def test_parameters_follow_kiln_yaml_type(tmp_path: Path) -> None:
    _write(tmp_path, {"kiln.yaml": "type: helm\n", "Chart.yaml": "name: x\n",
                      "kustomization.yaml": "resources: []\n"})
    assert "helm-release-name" in _announced(tmp_path)



def test_docs_parameter_table_matches_the_code() -> None:
    """docs/argocd-cmp.md lists every parameter with its collection and kiln option."""
    text = (REPO / "docs" / "argocd-cmp.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in {row.name for row in TABLE}:
            rows[cells[0]] = (cells[1], cells[2])
    assert rows == {row.name: (row.collection, row.option) for row in TABLE}
