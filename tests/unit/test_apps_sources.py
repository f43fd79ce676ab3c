"""kiln.apps: multi-source Applications ($ref value files, chart sources, naming) and plugin
sources (ARGOCD_ENV_*, ARGOCD_APP_PARAMETERS as Argo CD marshals them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kiln.apps import AppSpec, load_applications
from kiln.core.errors import ConfigError

REPO = "https://github.com/example/gitops.git"
CHARTS = "https://charts.example.com"


def load(tmp_path: Path, spec: dict[str, Any], name: str = "web",
         repo_urls: tuple[str, ...] = ()) -> list[AppSpec]:
    doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
           "metadata": {"name": name},
           "spec": {"project": "shop", "destination": {"namespace": "shop"}, **spec}}
    file = tmp_path / "apps.yaml"
    file.write_text(yaml.safe_dump(doc))
    return load_applications(file, repo_root=tmp_path, repo_urls=repo_urls)


def error_of(tmp_path: Path, spec: dict[str, Any], repo_urls: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, spec, repo_urls=repo_urls)
    assert info.value.source == str(tmp_path / "apps.yaml")
    return info.value.message


VALUES_REF = {"repoURL": REPO, "targetRevision": "main", "ref": "values"}


def test_remote_chart_with_values_from_the_checkout(tmp_path: Path) -> None:
    (spec,) = load(tmp_path, {"sources": [
        {"repoURL": CHARTS, "chart": "webapp", "targetRevision": "1.4.0",
         "helm": {"valueFiles": ["$values/envs/prod/values.yaml"],
                  "fileParameters": [{"name": "motd", "path": "$values/files/motd.txt"}]}},
        VALUES_REF,
    ]})
    assert spec.name == "web"
    assert spec.path == "."
    assert spec.app_settings == {
        "name": "web", "namespace": "shop", "type": "helm",
        "helm": {"repoURL": CHARTS, "chart": "webapp", "version": "1.4.0",
                 "valueFiles": ["envs/prod/values.yaml"],
                 "fileParameters": [{"name": "motd", "path": "files/motd.txt"}]}}
    assert spec.env["ARGOCD_APP_SOURCE_REPO_URL"] == CHARTS
    assert spec.env["ARGOCD_APP_SOURCE_TARGET_REVISION"] == "1.4.0"
    assert spec.env["ARGOCD_APP_PROJECT_NAME"] == "shop"


def test_ref_value_files_are_relative_to_the_app_directory(tmp_path: Path) -> None:
    (spec,) = load(tmp_path, {"sources": [
        {"repoURL": REPO, "path": "charts/web", "helm": {"valueFiles": [
            "values.yaml", "$values/envs/prod.yaml", "$values/envs/*.yaml"]}},
        VALUES_REF,
    ]})
    assert spec.path == "charts/web"
    assert spec.app_settings["helm"]["valueFiles"] == [
        "values.yaml", "../../envs/prod.yaml", "../../envs/*.yaml"]


@pytest.mark.parametrize(("value_file", "problem"), [
    ("$values/../outside.yaml", "valueFiles[0]: '../outside.yaml' leaves the repository"),
    ("$other/x.yaml", "valueFiles[0]: '$other' names no ref source of spec.sources "
                      "(refs: $values)"),
])
def test_bad_ref_value_files(tmp_path: Path, value_file: str, problem: str) -> None:
    message = error_of(tmp_path, {"sources": [
        {"repoURL": REPO, "path": "a", "helm": {"valueFiles": [value_file]}}, VALUES_REF]})
    assert f"spec.sources[0].helm.{problem}" in message


def test_ref_source_of_another_repository_is_refused(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"sources": [
        {"repoURL": REPO, "path": "a", "helm": {"valueFiles": ["$values/x.yaml"]}},
        {"repoURL": "https://github.com/o/values", "ref": "values"}]}, repo_urls=(REPO,))
    assert message.startswith("spec.sources[1].repoURL: 'https://github.com/o/values' is not "
                              "the checkout")


def test_chart_source_value_files_inside_the_chart_are_refused(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"sources": [
        {"repoURL": CHARTS, "chart": "webapp", "targetRevision": "1.4.0",
         "helm": {"valueFiles": ["values-prod.yaml"]}}]})
    assert message.startswith("spec.sources[0].helm.valueFiles[0]: not supported by kiln "
                              "(a file inside a remote chart")


def test_several_rendered_sources_are_named_by_source_name_or_index(tmp_path: Path) -> None:
    specs = load(tmp_path, {"sources": [
        {"repoURL": REPO, "path": "web", "name": "frontend"},
        {"repoURL": REPO, "path": "db"},
        {"repoURL": REPO, "path": "shared", "ref": "shared"},  # a ref with a path renders
    ]})
    assert [(s.name, s.path) for s in specs] == [("web/1", "db"), ("web/2", "shared"),
                                                 ("web/frontend", "web")]
    # every source renders with the Application's name (Helm's release name)
    assert {s.app_settings["name"] for s in specs} == {"web"}
    assert {s.env["ARGOCD_APP_NAME"] for s in specs} == {"web"}
    assert specs[0].origin.endswith("Application web source 1")


@pytest.mark.parametrize(("spec", "problem"), [
    ({"source": {"repoURL": REPO}, "sources": [{"repoURL": REPO}]},
     "set one of spec.source, spec.sources and spec.sourceHydrator"),
    ({}, "spec.source: is required"),
    ({"sources": []}, "spec.sources: is empty"),
    ({"sources": [VALUES_REF]}, "spec.sources: no source has a path or chart"),
    ({"sources": [VALUES_REF, {**VALUES_REF, "path": "x"}]},
     "spec.sources[1].ref: 'values' is also the ref of spec.sources[0]"),
    ({"sources": [{"repoURL": CHARTS, "chart": "c", "path": "x"}]}, "spec.sources[0].path"),
    ({"sources": [{"repoURL": CHARTS, "chart": "c", "kustomize": {}}]},
     "spec.sources[0].kustomize: a chart source is rendered by Helm"),
])
def test_bad_source_combinations(tmp_path: Path, spec: dict[str, Any], problem: str) -> None:
    assert problem in error_of(tmp_path, spec)


def test_source_hydrator_renders_the_dry_source(tmp_path: Path) -> None:
    (spec,) = load(tmp_path, {"sourceHydrator": {
        "drySource": {"repoURL": REPO, "targetRevision": "main", "path": "apps/web",
                      "helm": {"releaseName": "w"}},
        "syncSource": {"targetBranch": "env/prod", "path": "hydrated/web"}}})
    assert spec.path == "apps/web"
    assert spec.app_settings["helm"] == {"releaseName": "w"}


# -- plugin sources ----------------------------------------------------------------------------

def test_plugin_env_and_parameters(tmp_path: Path) -> None:
    (spec,) = load(tmp_path, {"source": {"repoURL": REPO, "path": "a", "plugin": {
        "name": "kiln",
        "env": [{"name": "AVP_TYPE", "value": "vault"},
                {"name": "WHO", "value": "$ARGOCD_APP_NAME-in-${ARGOCD_APP_NAMESPACE}$$"}],
        "parameters": [
            {"name": "helm-values-files", "array": ["a.yaml", "b.yaml"]},
            {"name": "helm-parameters", "map": {"image.tag": "v1<&>"}},
            {"name": "helm-release-name", "string": "rel"},
        ]}}})
    assert spec.env["ARGOCD_ENV_AVP_TYPE"] == "vault"
    assert spec.env["ARGOCD_ENV_WHO"] == "web-in-shop$"
    # Go's json.Marshal: keys sorted, compact, <, > and & escaped
    assert spec.env["ARGOCD_APP_PARAMETERS"] == (
        '[{"array":["a.yaml","b.yaml"],"name":"helm-values-files"},'
        '{"map":{"image.tag":"v1\\u003c\\u0026\\u003e"},"name":"helm-parameters"},'
        '{"name":"helm-release-name","string":"rel"}]')
    assert json.loads(spec.env["ARGOCD_APP_PARAMETERS"])[1]["map"] == {"image.tag": "v1<&>"}
    assert {k: v for k, v in spec.env.items() if k.startswith("PARAM_")} == {
        "PARAM_HELM_VALUES_FILES_0": "a.yaml", "PARAM_HELM_VALUES_FILES_1": "b.yaml",
        "PARAM_HELM_PARAMETERS_IMAGE_TAG": "v1<&>", "PARAM_HELM_RELEASE_NAME": "rel"}
    # what kiln's parameter table makes of them, as settings (application level)
    assert spec.app_settings["helm"] == {
        "valueFiles": ["a.yaml", "b.yaml"], "releaseName": "rel",
        "parameters": [{"name": "image.tag", "value": "v1<&>"}]}
    assert "type" not in spec.app_settings


def test_plugin_empty_collections_are_sent_as_argo_cd_sends_them(tmp_path: Path) -> None:
    (spec,) = load(tmp_path, {"source": {"repoURL": REPO, "path": "a", "plugin": {
        "parameters": [{"name": "helm-values-files", "array": []},
                       {"name": "kustomize-common-labels", "map": {}}]}}})
    assert spec.env["ARGOCD_APP_PARAMETERS"] == (
        '[{"array":[],"name":"helm-values-files"},{"map":{},"name":"kustomize-common-labels"}]')


@pytest.mark.parametrize(("plugin", "problem"), [
    ({"name": "argocd-vault-plugin"}, "spec.source.plugin.name: 'argocd-vault-plugin' is not "
                                      "kiln's plugin"),
    ({"parameters": [{"name": "no-such-parameter", "string": "x"}]},
     "spec.source.plugin.parameters: unknown parameter 'no-such-parameter'"),
    ({"parameters": [{"name": "helm-values-files", "string": "x"}]},
     "spec.source.plugin.parameters: parameter 'helm-values-files' takes an array"),
    ({"env": [{"value": "x"}]}, "spec.source.plugin.env[0].name: is required"),
    ({"env": [{"name": "A=B", "value": "x"}]},
     "spec.source.plugin.env[0].name: 'A=B' cannot be an environment variable name"),
    ({"env": [{"name": "A", "value": "x\x00y"}]},
     "spec.source.plugin.env[0].value: must not hold a NUL character"),
    ({"env": [{"name": "A", "value": "x", "other": 1}]},
     "spec.source.plugin.env[0].other: unknown field"),
])
def test_bad_plugin_sources(tmp_path: Path, plugin: dict[str, Any], problem: str) -> None:
    assert problem in error_of(tmp_path, {"source": {"repoURL": REPO, "path": "a",
                                                     "plugin": plugin}})


def test_versioned_kiln_plugin_name_is_kiln(tmp_path: Path) -> None:
    (spec,) = load(tmp_path, {"source": {"repoURL": REPO, "path": "a",
                                         "plugin": {"name": "kiln-v1.0"}}})
    assert spec.path == "a"
