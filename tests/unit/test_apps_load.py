"""kiln.apps: Applications read from files and directories, mapped field by field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kiln.apps import AppSpec, load_applications, specs_for_paths
from kiln.core.errors import ConfigError, InputError, KilnError

REPO = "https://github.com/example/gitops.git"


def application(name: str, source: dict[str, Any] | None = None, **spec: Any
                ) -> dict[str, Any]:
    body: dict[str, Any] = {"project": "default",
                            "destination": {"server": "https://kubernetes.default.svc",
                                            "namespace": "shop"}}
    if source is not None:
        body["source"] = source
    body.update(spec)
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": "argocd"}, "spec": body}


def write(path: Path, *docs: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs))
    return path


def load(tmp_path: Path, *docs: dict[str, Any], repo_urls: tuple[str, ...] = ()
         ) -> list[AppSpec]:
    file = write(tmp_path / "apps" / "apps.yaml", *docs)
    return load_applications(file, repo_root=tmp_path, repo_urls=repo_urls)


def one(tmp_path: Path, source: dict[str, Any], **spec: Any) -> AppSpec:
    specs = load(tmp_path, application("web", source, **spec))
    assert len(specs) == 1
    return specs[0]


def refused(tmp_path: Path, *docs: dict[str, Any], repo_urls: tuple[str, ...] = ()
            ) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, *docs, repo_urls=repo_urls)
    assert info.value.source == str(tmp_path / "apps" / "apps.yaml")
    return info.value


# -- basics ------------------------------------------------------------------------------------

def test_single_source_directory_app(tmp_path: Path) -> None:
    spec = one(tmp_path, {"repoURL": REPO, "path": "apps/web/", "targetRevision": "main"})
    assert spec.name == "web"
    assert spec.path == "apps/web"
    assert spec.app_settings == {"name": "web", "namespace": "shop"}
    assert spec.env == {
        "ARGOCD_APP_NAME": "web",
        "ARGOCD_APP_NAMESPACE": "shop",
        "ARGOCD_APP_PROJECT_NAME": "default",
        "ARGOCD_APP_SOURCE_PATH": "apps/web/",
        "ARGOCD_APP_SOURCE_REPO_URL": REPO,
        "ARGOCD_APP_SOURCE_TARGET_REVISION": "main",
    }
    assert spec.origin == f"{tmp_path / 'apps' / 'apps.yaml'}: Application web"


def test_root_path_and_default_project(tmp_path: Path) -> None:
    doc = application("root", {"repoURL": REPO})
    del doc["spec"]["project"]
    (spec,) = load(tmp_path, doc)
    assert spec.path == "."
    assert spec.env["ARGOCD_APP_PROJECT_NAME"] == "default"


def test_helm_fields_map_onto_kiln_helm_options(tmp_path: Path) -> None:
    helm = {
        "releaseName": "shop-web", "namespace": "web-ns", "values": "a: 1\n",
        "valuesObject": {"b": {"c": 2}}, "valueFiles": ["values-prod.yaml", "/shared/x.yaml"],
        "parameters": [{"name": "image.tag", "value": "1.2"},
                       {"name": "code", "value": "0042", "forceString": True}],
        "fileParameters": [{"name": "motd", "path": "files/motd.txt"}],
        "skipCrds": True, "skipTests": True, "skipSchemaValidation": True,
        "ignoreMissingValueFiles": True, "version": "v3",
        "kubeVersion": "1.30.0", "apiVersions": ["monitoring.coreos.com/v1/ServiceMonitor"],
    }
    spec = one(tmp_path, {"repoURL": REPO, "path": "charts/web", "helm": helm})
    assert spec.app_settings == {
        "name": "web", "namespace": "shop", "type": "helm",
        "kubeVersion": "1.30.0", "apiVersions": ["monitoring.coreos.com/v1/ServiceMonitor"],
        "helm": {
            "releaseName": "shop-web", "namespace": "web-ns", "values": "a: 1\n",
            "valuesObject": {"b": {"c": 2}}, "valueFiles": ["values-prod.yaml", "/shared/x.yaml"],
            "parameters": [{"name": "image.tag", "value": "1.2"},
                           {"name": "code", "value": "0042", "forceString": True}],
            "fileParameters": [{"name": "motd", "path": "files/motd.txt"}],
            "skipCrds": True, "skipTests": True, "skipSchemaValidation": True,
            "ignoreMissingValueFiles": True,
        },
    }
    assert spec.env["KUBE_VERSION"] == "1.30.0"
    assert spec.env["KUBE_API_VERSIONS"] == "monitoring.coreos.com/v1/ServiceMonitor"


def test_kustomize_fields_map_onto_kiln_kustomize_options(tmp_path: Path) -> None:
    kustomize = {
        "namePrefix": "p-", "nameSuffix": "-s", "namespace": "k-ns",
        "images": ["nginx:1.27"], "components": ["../components/x"],
        "commonLabels": {"team": "a"}, "commonAnnotations": {"note": "b"},
        "forceCommonLabels": True, "forceCommonAnnotations": True,
        "commonAnnotationsEnvsubst": True, "labelWithoutSelector": True,
        "labelIncludeTemplates": True, "ignoreMissingComponents": True,
        "replicas": [{"name": "web", "count": 3}, {"name": "api", "count": "2"}],
        "patches": [{"patch": "- op: add", "target": {"kind": "Deployment", "name": "web"},
                     "options": {"allowNameChange": True}}, {"path": "p.yaml"}],
        "kubeVersion": "1.29", "apiVersions": ["v1"],
    }
    spec = one(tmp_path, {"repoURL": REPO, "path": "k", "kustomize": kustomize})
    expected = {k: v for k, v in kustomize.items() if k not in ("kubeVersion", "apiVersions")}
    assert spec.app_settings == {"name": "web", "namespace": "shop", "type": "kustomize",
                                 "kubeVersion": "1.29", "apiVersions": ["v1"],
                                 "kustomize": expected}


def test_directory_fields_map_onto_kiln_directory_options(tmp_path: Path) -> None:
    spec = one(tmp_path, {"repoURL": REPO, "path": "d", "directory": {
        "recurse": True, "include": "{a,b}/*.yaml", "exclude": "b/skip.yaml"}})
    assert spec.app_settings == {"name": "web", "namespace": "shop", "type": "directory",
                                 "directory": {"recurse": True, "include": "{a,b}/*.yaml",
                                               "exclude": "b/skip.yaml"}}


def test_jsonnet_directory_maps_onto_kiln_jsonnet_options(tmp_path: Path) -> None:
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "main.jsonnet").write_text("{}")
    spec = one(tmp_path, {"repoURL": REPO, "path": "j", "directory": {"jsonnet": {
        "extVars": [{"name": "env", "value": "prod"}, {"name": "num", "value": "1+1",
                                                       "code": True}],
        "tlas": [{"name": "replicas", "value": "3", "code": True}],
        "libs": ["vendor"]}}})
    assert spec.app_settings["type"] == "jsonnet"
    assert spec.app_settings["jsonnet"] == {
        "extVars": [{"name": "env", "value": "prod"}, {"name": "num", "value": "1+1",
                                                       "code": True}],
        "tlas": [{"name": "replicas", "value": "3", "code": True}],
        "libs": ["vendor"]}


# -- reading -----------------------------------------------------------------------------------

def test_directory_walk_is_recursive_sorted_and_ignores_other_kinds(tmp_path: Path) -> None:
    write(tmp_path / "apps" / "b.yaml", application("b", {"repoURL": REPO, "path": "z"}),
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    write(tmp_path / "apps" / "sub" / "a.yml", application("a", {"repoURL": REPO, "path": "z"}))
    (tmp_path / "apps" / "c.json").write_text(
        json.dumps(application("c", {"repoURL": REPO, "path": "a"})))
    write(tmp_path / "apps" / ".hidden" / "h.yaml", application("h", {"repoURL": REPO}))
    (tmp_path / "apps" / "notes.txt").write_text("not yaml: [")
    specs = load_applications(tmp_path / "apps", repo_root=tmp_path)
    assert [(s.path, s.name) for s in specs] == [("a", "c"), ("z", "a"), ("z", "b")]


def test_malformed_yaml_is_an_input_error_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "apps" / "bad.yaml"
    bad.parent.mkdir()
    bad.write_text("apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: [x\n")
    with pytest.raises(InputError) as info:
        load_applications(tmp_path / "apps", repo_root=tmp_path)
    assert info.value.source == str(bad)
    assert "\n" not in info.value.one_line()


def test_files_that_cannot_hold_applications_are_not_parsed(tmp_path: Path) -> None:
    # a chart's templates are Go templates (app-of-apps charts hold Applications there)
    chart = tmp_path / "apps" / "app-of-apps"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: a\nversion: 1.0.0\n")
    (chart / "templates" / "app.yaml").write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\n{{- if .Values.x }}\n")
    (tmp_path / "apps" / "broken.yaml").write_text("not: [valid\n")  # no argoproj.io in it
    write(tmp_path / "apps" / "web.yaml", application("web", {"repoURL": REPO, "path": "w"}))
    specs = load_applications(tmp_path / "apps", repo_root=tmp_path)
    assert [s.name for s in specs] == ["web"]


def test_no_application_at_all_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "apps" / "cm.yaml", {"apiVersion": "v1", "kind": "ConfigMap"})
    with pytest.raises(InputError, match="holds no Argo CD Application"):
        load_applications(tmp_path / "apps", repo_root=tmp_path)


def test_missing_target_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_applications(tmp_path / "nope", repo_root=tmp_path)


def test_same_name_twice_is_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, application("web", {"repoURL": REPO, "path": "a"}),
                    application("web", {"repoURL": REPO, "path": "b"}))
    assert "'web' is declared twice" in error.message


# -- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "field"), [
    ({"repoURL": REPO, "path": "a", "helm": {"valueFiles": ["https://x/v.yaml"]}},
     "spec.source.helm.valueFiles[0]: not supported by kiln"),
    ({"repoURL": REPO, "path": "a", "helm": {"version": "2"}}, "spec.source.helm.version"),
    ({"repoURL": REPO, "path": "a", "kustomize": {"version": "v4.5"}},
     "spec.source.kustomize.version: not supported by kiln"),
    ({"repoURL": REPO, "path": "a", "directory": {"disableExtensionFilter": True}},
     "spec.source.directory.disableExtensionFilter: not supported by kiln"),
    ({"repoURL": REPO, "path": "a", "helm": {"bogus": 1}},
     "spec.source.helm.bogus: unknown field"),
    ({"repoURL": REPO, "path": "a", "extra": 1}, "spec.source.extra: unknown field"),
    ({"repoURL": REPO, "path": "../outside"}, "spec.source.path: '../outside' leaves"),
    ({"repoURL": REPO, "path": "a", "helm": {}, "kustomize": {}},
     "multiple application sources defined"),
    ({"path": "a"}, "spec.source.repoURL: is required"),
    ({"repoURL": REPO, "path": 3}, "spec.source.path: must be a string"),
    ({"repoURL": "oci://reg/x", "path": "a"}, "spec.source.repoURL: not supported by kiln"),
    ({"repoURL": REPO, "path": "a", "plugin": {"name": "avp"}},
     "spec.source.plugin.name: 'avp' is not kiln's plugin"),
])
def test_unsupported_fields_are_errors_naming_them(tmp_path: Path, source: dict[str, Any],
                                                   field: str) -> None:
    error = refused(tmp_path, application("web", source))
    assert field in error.message
    assert "(Application web)" in error.message


def test_unknown_spec_and_metadata_fields_are_errors(tmp_path: Path) -> None:
    doc = application("web", {"repoURL": REPO, "path": "a"}, syncPolicy={"automated": {}},
                      surprise=True)
    assert "spec.surprise: unknown field" in refused(tmp_path, doc).message
    doc = application("web", {"repoURL": REPO, "path": "a"})
    doc["metadata"]["nickname"] = "w"
    assert "metadata.nickname: unknown field" in refused(tmp_path, doc).message


def test_fields_that_do_not_change_the_render_are_accepted(tmp_path: Path) -> None:
    doc = application("web", {"repoURL": REPO, "path": "a", "targetRevision": "v1",
                              "name": "main", "tagPrefix": "web/"},
                      syncPolicy={"automated": {"prune": True}},
                      ignoreDifferences=[{"kind": "Secret", "jsonPointers": ["/data"]}],
                      info=[{"name": "docs", "value": "x"}], revisionHistoryLimit=3)
    doc["metadata"].update(labels={"a": "b"}, annotations={"c": "d"},
                           finalizers=["resources-finalizer.argocd.argoproj.io"])
    doc["status"] = {"sync": {"status": "Synced"}}
    doc["spec"]["destination"]["name"] = "in-cluster"
    (spec,) = load(tmp_path, doc)
    assert spec.path == "a"


# -- repository URLs ---------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "https://github.com/example/gitops", "https://github.com/Example/GitOps.git/",
    "git@github.com:example/gitops.git", "ssh://git@github.com/example/gitops",
    "ssh://git@github.com:22/example/gitops.git", "https://user@github.com/example/gitops",
])
def test_repo_url_spellings_of_the_checkout(tmp_path: Path, url: str) -> None:
    specs = load(tmp_path, application("web", {"repoURL": url, "path": "a"}),
                 repo_urls=(REPO,))
    assert [s.path for s in specs] == ["a"]


def test_other_repository_is_an_error(tmp_path: Path) -> None:
    error = refused(tmp_path, application("web", {"repoURL": "https://github.com/o/other",
                                                  "path": "a"}), repo_urls=(REPO,))
    assert "spec.source.repoURL" in error.message
    assert "is not the checkout" in error.message


# -- PATH arguments ----------------------------------------------------------------------------

def test_specs_for_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "apps" / "web").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "apps")
    specs = specs_for_paths(["web", "./web/", str(tmp_path)], repo_root=tmp_path)
    assert [(s.name, s.path) for s in specs] == [("web", "apps/web"), ("./web/", "apps/web"),
                                                 (str(tmp_path), ".")]
    assert all(s.app_settings == {} and s.env == {} for s in specs)
    with pytest.raises(KilnError, match="outside the repository"):
        specs_for_paths([str(tmp_path.parent)], repo_root=tmp_path)
