"""Applications rendered through the engine, compared with the real tools run with the flags
Argo CD would give them for the same Application.

Each test writes a small repository, declares Applications for it, loads them with
``kiln.apps.load_applications`` and renders each AppSpec the way the multi-app runner does
(``Engine.load_app(path, app_settings=..., build_env=..., app_source=spec.origin)``); the
oracle is ``helm template`` / ``kubectl kustomize`` run directly, or values the test chose.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kiln.apps import AppSpec, load_applications
from kiln.core.engine import Engine
from kiln.core.trust import TrustError
from tests.fixtures.helm.servers import WEBAPP, ChartRepo, copy_chart, helm_env, package
from tests.helpers import tool
from tests.integration.argo_yaml import argo_objects
from tests.integration.kustomize_support import raw_kustomize

pytestmark = pytest.mark.integration

REPO = "https://github.com/example/gitops.git"
HOST = "web.example.com"


def application(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": "argocd"},
            "spec": {"project": "default", **spec}}


def declare(repo: Path, *docs: dict[str, Any]) -> list[AppSpec]:
    apps = repo / "argocd"
    apps.mkdir(exist_ok=True)
    (apps / "apps.yaml").write_text(yaml.safe_dump_all(docs))
    return load_applications(apps, repo_root=repo, repo_urls=[REPO])


def render(engine: Engine, repo: Path, spec: AppSpec) -> list[dict[str, Any]]:
    app = engine.load_app(repo / spec.path, app_settings=spec.app_settings,
                          build_env=spec.env, app_source=spec.origin, source_root=repo)
    return engine.render(app, secrets=False).objects


def raw_helm(repo: Path, home: Path, *argv: str) -> list[dict[str, Any]]:
    out = subprocess.run([tool("helm"), "template", *argv], check=True, capture_output=True,
                         text=True, env=helm_env(home), cwd=repo).stdout
    return argo_objects(out)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A checkout: the test chart at charts/web, value files, a file for --set-file."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    copy_chart(root / "charts" / "web")
    (root / "envs").mkdir()
    (root / "envs" / "prod.yaml").write_text("replicaCount: 4\nservice:\n  port: 8080\n")
    (root / "charts" / "web" / "values-extra.yaml").write_text("podAnnotations: {a: b}\n")
    (root / "files").mkdir()
    (root / "files" / "motd.txt").write_text("welcome aboard\n")
    return root


@pytest.fixture
def engine(cache_dir: Path) -> Engine:
    return Engine(cache_dir, use_cache=False, entry_points=False)


def test_helm_application_matches_helm_template(repo: Path, engine: Engine,
                                                tmp_path: Path) -> None:
    (spec,) = declare(repo, application("shop", {
        "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
        "source": {"repoURL": REPO, "targetRevision": "main", "path": "charts/web", "helm": {
            "releaseName": "shop-web",
            "valueFiles": ["values-extra.yaml", "/envs/prod.yaml"],
            "valuesObject": {"image": {"tag": "9.9.9"}},
            "parameters": [{"name": "hostname", "value": HOST},
                           {"name": "extraEnv.BUILD", "value": "0042", "forceString": True}],
            "fileParameters": [{"name": "extraEnv.MOTD", "path": "../../files/motd.txt"}],
            "skipCrds": True, "skipTests": True,
            "kubeVersion": "1.30.0", "apiVersions": ["autoscaling/v2"],
        }}}))
    values = tmp_path / "values-object.yaml"
    values.write_text(yaml.safe_dump({"image": {"tag": "9.9.9"}}))
    expected = raw_helm(
        repo, tmp_path / "h", "shop-web", "charts/web", "--namespace", "shop",
        "--kube-version", "1.30.0", "--api-versions", "autoscaling/v2",
        "--set", f"hostname={HOST}", "--set-string", "extraEnv.BUILD=0042",
        "--set-file", "extraEnv.MOTD=files/motd.txt",
        "--values", "charts/web/values-extra.yaml", "--values", "envs/prod.yaml",
        "--values", str(values), "--skip-tests")
    assert render(engine, repo, spec) == expected


def test_helm_namespace_and_values_string(repo: Path, engine: Engine, tmp_path: Path) -> None:
    (spec,) = declare(repo, application("web", {
        "destination": {"namespace": "ignored-for-helm"},
        "source": {"repoURL": "git@github.com:example/gitops.git", "path": "charts/web",
                   "helm": {"namespace": "web-ns", "values": f"hostname: {HOST}\n",
                            "skipSchemaValidation": True}}}))
    values = tmp_path / "values.yaml"
    values.write_text(f"hostname: {HOST}\n")
    expected = raw_helm(repo, tmp_path / "h", "web", "charts/web", "--namespace", "web-ns",
                        "--include-crds", "--values", str(values), "--skip-schema-validation")
    assert render(engine, repo, spec) == expected


def test_multi_source_values_from_a_ref_source(repo: Path, engine: Engine,
                                               tmp_path: Path) -> None:
    (spec,) = declare(repo, application("prod", {
        "destination": {"namespace": "prod"},
        "sources": [
            {"repoURL": REPO, "path": "charts/web", "targetRevision": "v1",
             "helm": {"valueFiles": ["$values/envs/prod.yaml"],
                      "parameters": [{"name": "hostname", "value": HOST}]}},
            {"repoURL": REPO + "/", "targetRevision": "main", "ref": "values"},
        ]}))
    assert spec.name == "prod"
    expected = raw_helm(repo, tmp_path / "h", "prod", "charts/web", "--namespace", "prod",
                        "--include-crds", "--set", f"hostname={HOST}",
                        "--values", "envs/prod.yaml")
    objects = render(engine, repo, spec)
    assert objects == expected
    service = next(o for o in objects if o["kind"] == "Service")
    assert service["spec"]["ports"][0]["port"] == 8080  # envs/prod.yaml, the test's own value


@pytest.mark.parametrize("value", ["--post-renderer=/bin/sh", "a;$(touch PWNED)`id`",
                                   "-n kube-system"])
def test_parameter_values_reach_helm_as_values(repo: Path, engine: Engine,
                                               value: str) -> None:
    (spec,) = declare(repo, application("web", {
        "destination": {"namespace": "shop"},
        "source": {"repoURL": REPO, "path": "charts/web", "helm": {"parameters": [
            {"name": "hostname", "value": HOST},
            {"name": "extraEnv.PAYLOAD", "value": value, "forceString": True}]}}}))
    objects = render(engine, repo, spec)
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["data"]["PAYLOAD"] == value
    assert not (repo / "charts" / "web" / "PWNED").exists()
    assert not Path("PWNED").exists()


def test_kustomize_application_matches_kubectl_kustomize(tmp_path: Path,
                                                         engine: Engine) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    app = repo / "apps" / "web"
    app.mkdir(parents=True)
    (app / "kustomization.yaml").write_text("resources: [deploy.yaml]\n")
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "web", "labels": {"app": "web"}},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "web",
                                                             "image": "nginx:1.25"}]}}}}
    (app / "deploy.yaml").write_text(yaml.safe_dump(deploy))
    (spec,) = declare(repo, application("web", {
        "destination": {"namespace": "shop"},
        "source": {"repoURL": REPO, "path": "apps/web", "kustomize": {
            "namePrefix": "prod-", "namespace": "web-prod", "images": ["nginx:1.27"],
            "commonLabels": {"team": "shop"}, "commonAnnotations": {"owner": "ops"},
            "replicas": [{"name": "web", "count": 3}]}}}))
    # the overlay `kustomize edit` would have produced, written by hand
    oracle = tmp_path / "oracle"
    oracle.mkdir()
    (oracle / "deploy.yaml").write_text(yaml.safe_dump(deploy))
    (oracle / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": ["deploy.yaml"], "namePrefix": "prod-", "namespace": "web-prod",
        "images": [{"name": "nginx", "newTag": "1.27"}],
        "replicas": [{"name": "web", "count": 3}],
        "commonLabels": {"team": "shop"}, "commonAnnotations": {"owner": "ops"}}))
    assert render(engine, repo, spec) == raw_kustomize(oracle)


def test_application_set_directories_render_their_manifests(tmp_path: Path,
                                                            engine: Engine) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    chosen = {}
    for name in ("alpha", "beta", "gamma"):
        (repo / "services" / name).mkdir(parents=True)
        obj = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": f"{name}-config"}, "data": {"service": name}}
        (repo / "services" / name / "cm.yaml").write_text(yaml.safe_dump(obj))
        chosen[name] = obj
    specs = declare(repo, {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "services"},
        "spec": {"generators": [{"git": {"repoURL": REPO, "revision": "HEAD", "directories": [
            {"path": "services/*"}, {"path": "services/beta", "exclude": True}]}}],
                 "template": {"metadata": {"name": "svc-{{path.basename}}"},
                              "spec": {"project": "default",
                                       "destination": {"namespace": "{{path.basename}}"},
                                       "source": {"repoURL": REPO, "path": "{{path}}",
                                                  "directory": {"include": "*.yaml"}}}}}})
    assert [s.name for s in specs] == ["svc-alpha", "svc-gamma"]
    for spec in specs:
        name = spec.path.rpartition("/")[2]
        assert spec.app_settings["namespace"] == name
        assert render(engine, repo, spec) == [chosen[name]]


def test_jsonnet_directory_variables(tmp_path: Path, engine: Engine) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "lib").mkdir()
    (repo / "lib" / "names.libsonnet").write_text("{ prefix: 'lib-' }\n")
    (repo / "jobs").mkdir()
    (repo / "jobs" / "main.jsonnet").write_text(
        "local names = import 'names.libsonnet';\n"
        "function(replicas, label) {\n"
        "  apiVersion: 'v1', kind: 'ConfigMap',\n"
        "  metadata: { name: names.prefix + std.extVar('env') },\n"
        "  data: { replicas: std.toString(replicas * 2), label: label,\n"
        "          sum: std.toString(std.extVar('sum')) },\n"
        "}\n")
    (spec,) = declare(repo, application("jobs", {
        "destination": {"namespace": "jobs"},
        "source": {"repoURL": REPO, "path": "jobs", "directory": {"jsonnet": {
            "extVars": [{"name": "env", "value": "prod"},
                        {"name": "sum", "value": "1+2", "code": True}],
            "tlas": [{"name": "replicas", "value": "3", "code": True},
                     {"name": "label", "value": "$ARGOCD_APP_NAME"}],
            "libs": ["lib"]}}}}))
    assert render(engine, repo, spec) == [{
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "lib-prod"},
        "data": {"replicas": "6", "label": "jobs", "sum": "3"}}]


# -- trust -------------------------------------------------------------------------------------

def test_credentials_from_an_application_are_refused(repo: Path, cache_dir: Path) -> None:
    (spec,) = declare(repo, application("web", {
        "destination": {"namespace": "shop"},
        "source": {"repoURL": REPO, "path": "charts/web",
                   "helm": {"passCredentials": True}}}))
    engine = Engine(cache_dir, use_cache=False, entry_points=False, env=dict(os.environ))
    with pytest.raises(TrustError) as info:
        engine.load_app(repo / spec.path, app_settings=spec.app_settings,
                        build_env=spec.env, app_source=spec.origin, source_root=repo)
    assert info.value.source == spec.origin
    assert "helm.passCredentials" in info.value.message
    assert "application level" in info.value.message
    # the operator's switch lets it through
    allowed = Engine(cache_dir, use_cache=False, entry_points=False,
                     env={**os.environ, "KILN_ALLOW_APP_SETTINGS": "helm.passCredentials"})
    app = allowed.load_app(repo / spec.path, app_settings=spec.app_settings,
                           build_env=spec.env, app_source=spec.origin, source_root=repo)
    assert app.options["helm"].pass_credentials is True


def test_vault_address_from_plugin_env_is_refused(tmp_path: Path, cache_dir: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "app").mkdir()
    (repo / "app" / "secret.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
        "stringData": {"password": "<path:secret/data/db#password>"}}))
    (spec,) = declare(repo, application("web", {
        "destination": {"namespace": "shop"},
        "source": {"repoURL": REPO, "path": "app", "plugin": {"name": "kiln", "env": [
            {"name": "AVP_TYPE", "value": "vault"},
            {"name": "VAULT_ADDR", "value": "https://vault.attacker.example"}]}}}))
    assert spec.env["ARGOCD_ENV_VAULT_ADDR"] == "https://vault.attacker.example"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "AVP_"))}
    engine = Engine(cache_dir, use_cache=False, entry_points=False,
                    env={**base, "VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "t0k3n"})
    view = engine.for_request({**engine.env, **spec.env})
    app = view.load_app(repo / spec.path, app_settings=spec.app_settings, build_env=spec.env,
                        app_source=spec.origin, source_root=repo)
    with pytest.raises(TrustError) as info:
        view.render(app)
    assert "VAULT_ADDR" in info.value.one_line()
    assert "attacker" not in info.value.one_line()


def test_remote_chart_source_with_values_from_the_checkout(repo: Path, tmp_path: Path,
                                                           cache_dir: Path) -> None:
    helm = tool("helm")
    home = helm_env(tmp_path / "pkg-home")
    packages = tmp_path / "packages"
    package(helm, WEBAPP, packages, home)
    with ChartRepo(packages) as charts:
        charts.index(helm, home)
        (spec,) = declare(repo, application("remote", {
            "destination": {"namespace": "edge"},
            "sources": [
                {"repoURL": charts.url, "chart": "webapp", "targetRevision": "1.4.0",
                 "helm": {"valueFiles": ["$values/envs/prod.yaml"],
                          "parameters": [{"name": "hostname", "value": HOST}],
                          "fileParameters": [{"name": "extraEnv.MOTD",
                                              "path": "$values/files/motd.txt"}]}},
                {"repoURL": REPO, "targetRevision": "main", "ref": "values"},
            ]}))
        assert (spec.name, spec.path) == ("remote", ".")
        engine = Engine(cache_dir, entry_points=False)
        objects = render(engine, repo, spec)
        expected = raw_helm(repo, tmp_path / "h", "remote", "webapp", "--repo", charts.url,
                            "--version", "1.4.0", "--namespace", "edge", "--include-crds",
                            "--set", f"hostname={HOST}",
                            "--set-file", "extraEnv.MOTD=files/motd.txt",
                            "--values", "envs/prod.yaml")
    assert objects == expected


def test_more_kustomize_fields_match_kubectl_kustomize(tmp_path: Path,
                                                       engine: Engine) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf"},
          "data": {"a": "1"}}
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "web",
                                                             "image": "nginx"}]}}}}
    extra = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "extra"}}
    for root in (repo / "apps" / "web", tmp_path / "oracle" / "apps" / "web"):
        root.mkdir(parents=True)
        (root / "res.yaml").write_text(yaml.safe_dump_all([cm, deploy]))
        component = root.parent.parent / "components" / "extra"
        component.mkdir(parents=True)
        (component / "extra.yaml").write_text(yaml.safe_dump(extra))
        (component / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component",
            "resources": ["extra.yaml"]}))
    (repo / "apps" / "web" / "kustomization.yaml").write_text("resources: [res.yaml]\n")
    patch = "- op: replace\n  path: /data/a\n  value: patched\n"
    (spec,) = declare(repo, application("web", {
        "destination": {"namespace": "shop"},
        "source": {"repoURL": REPO, "path": "apps/web", "kustomize": {
            "nameSuffix": "-v2", "commonLabels": {"tier": "front"},
            "labelWithoutSelector": True, "components": ["../../components/extra"],
            "patches": [{"patch": patch, "target": {"kind": "ConfigMap", "name": "conf"}}]}}}))
    (tmp_path / "oracle" / "apps" / "web" / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": ["res.yaml"], "nameSuffix": "-v2",
        "labels": [{"pairs": {"tier": "front"}}],
        "patches": [{"patch": patch, "target": {"kind": "ConfigMap", "name": "conf"}}],
        "components": ["../../components/extra"]}))
    assert render(engine, repo, spec) == raw_kustomize(tmp_path / "oracle" / "apps" / "web")
