"""Argo CD's CMP environment -> kiln settings: every row of the parameter table, both
parameter encodings (ARGOCD_APP_PARAMETERS JSON and PARAM_* variables), the build env and the
errors for malformed input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kiln.cmp.environment import (
    build_env,
    escape_name,
    load_app_from_environment,
    parameters_from_environment,
    settings_from_environment,
)
from kiln.cmp.parameters import table
from kiln.core.engine import Engine
from kiln.core.errors import ConfigError

TABLE = table({})


def _settings(*params: dict[str, Any], **env: str) -> dict[str, Any]:
    full = dict(env)
    full["ARGOCD_APP_PARAMETERS"] = json.dumps(list(params))
    return settings_from_environment(full).settings


# One case per table row: the parameter as Argo CD sends it and the settings it must give.
ROWS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"name": "type", "string": "helm"}, {"type": "helm"}),
    ({"name": "allow-empty", "string": "true"}, {"allowEmpty": True}),
    ({"name": "helm-release-name", "string": "web"}, {"helm": {"releaseName": "web"}}),
    ({"name": "helm-namespace", "string": "web-ns"}, {"helm": {"namespace": "web-ns"}}),
    ({"name": "helm-values-files", "array": ["values.yaml", "values-prod.yaml"]},
     {"helm": {"valueFiles": ["values.yaml", "values-prod.yaml"]}}),
    ({"name": "helm-ignore-missing-value-files", "string": "true"},
     {"helm": {"ignoreMissingValueFiles": True}}),
    ({"name": "helm-values", "string": "replicas: 2\n"}, {"helm": {"values": "replicas: 2\n"}}),
    ({"name": "helm-parameters", "map": {"image.tag": "v1", "replicas": "3"}},
     {"helm": {"parameters": [{"name": "image.tag", "value": "v1"},
                              {"name": "replicas", "value": "3"}]}}),
    ({"name": "helm-string-parameters", "map": {"port": "8080"}},
     {"helm": {"parameters": [{"name": "port", "value": "8080", "forceString": True}]}}),
    ({"name": "helm-file-parameters", "map": {"config": "files/app.conf"}},
     {"helm": {"fileParameters": [{"name": "config", "path": "files/app.conf"}]}}),
    ({"name": "helm-skip-crds", "string": "true"}, {"helm": {"skipCrds": True}}),
    ({"name": "helm-skip-tests", "string": "False"}, {"helm": {"skipTests": False}}),
    ({"name": "helm-skip-schema-validation", "string": "true"},
     {"helm": {"skipSchemaValidation": True}}),
    ({"name": "helm-pass-credentials", "string": "true"}, {"helm": {"passCredentials": True}}),
    ({"name": "kustomize-images", "array": ["nginx=nginx:1.27", "app:v2"]},
     {"kustomize": {"images": ["nginx=nginx:1.27", "app:v2"]}}),
    ({"name": "kustomize-name-prefix", "string": "dev-"}, {"kustomize": {"namePrefix": "dev-"}}),
    ({"name": "kustomize-name-suffix", "string": "-v2"}, {"kustomize": {"nameSuffix": "-v2"}}),
    ({"name": "kustomize-namespace", "string": "web"}, {"kustomize": {"namespace": "web"}}),
    ({"name": "kustomize-common-labels", "map": {"team": "a"}},
     {"kustomize": {"commonLabels": {"team": "a"}}}),
    ({"name": "kustomize-force-common-labels", "string": "true"},
     {"kustomize": {"forceCommonLabels": True}}),
    ({"name": "kustomize-common-annotations", "map": {"owner": "me"}},
     {"kustomize": {"commonAnnotations": {"owner": "me"}}}),
    ({"name": "kustomize-force-common-annotations", "string": "true"},
     {"kustomize": {"forceCommonAnnotations": True}}),
    ({"name": "kustomize-replicas", "map": {"web": "3"}},
     {"kustomize": {"replicas": [{"name": "web", "count": 3}]}}),
    ({"name": "kustomize-components", "array": ["../components/a"]},
     {"kustomize": {"components": ["../components/a"]}}),
    ({"name": "kustomize-ignore-missing-components", "string": "true"},
     {"kustomize": {"ignoreMissingComponents": True}}),
    ({"name": "kustomize-build-options", "string": "--enable-helm"},
     {"kustomize": {"buildOptions": "--enable-helm"}}),
    ({"name": "jsonnet-main", "string": "main.jsonnet"}, {"jsonnet": {"main": "main.jsonnet"}}),
    ({"name": "jsonnet-tlas", "map": {"env": "prod"}},
     {"jsonnet": {"tlas": [{"name": "env", "value": "prod"}]}}),
    ({"name": "jsonnet-tlas-code", "map": {"replicas": "3"}},
     {"jsonnet": {"tlas": [{"name": "replicas", "value": "3", "code": True}]}}),
    ({"name": "jsonnet-ext-vars", "map": {"region": "eu"}},
     {"jsonnet": {"extVars": [{"name": "region", "value": "eu"}]}}),
    ({"name": "jsonnet-ext-vars-code", "map": {"debug": "true"}},
     {"jsonnet": {"extVars": [{"name": "debug", "value": "true", "code": True}]}}),
    ({"name": "jsonnet-libs", "array": ["vendor", "lib"]},
     {"jsonnet": {"libs": ["vendor", "lib"]}}),
    ({"name": "directory-recurse", "string": "true"}, {"directory": {"recurse": True}}),
    ({"name": "directory-include", "string": "*.yaml"}, {"directory": {"include": "*.yaml"}}),
    ({"name": "directory-exclude", "string": "{a,b}.yaml"},
     {"directory": {"exclude": "{a,b}.yaml"}}),
]


def test_rows_cover_the_whole_table() -> None:
    assert sorted(item["name"] for item, _ in ROWS) == sorted(spec.name for spec in TABLE)


@pytest.mark.parametrize(("item", "expected"), ROWS, ids=[item["name"] for item, _ in ROWS])
def test_json_parameter_maps_to_option(item: dict[str, Any], expected: dict[str, Any]) -> None:
    assert _settings(item) == expected


def _param_vars(item: dict[str, Any]) -> dict[str, str]:
    """The PARAM_* variables Argo CD sets for one parameter (its documented convention)."""
    base = "PARAM_" + escape_name(item["name"])
    if "string" in item:
        return {base: item["string"]}
    if "array" in item:
        return {f"{base}_{i}": v for i, v in enumerate(item["array"])}
    return {f"{base}_{k}": v for k, v in item["map"].items()}


@pytest.mark.parametrize(("item", "expected"), ROWS, ids=[item["name"] for item, _ in ROWS])
def test_param_var_fallback_maps_to_option(item: dict[str, Any],
                                           expected: dict[str, Any]) -> None:
    env = _param_vars(item)
    assert settings_from_environment(env).settings == expected


def test_json_wins_over_param_vars() -> None:
    env = {"ARGOCD_APP_PARAMETERS": json.dumps([{"name": "helm-release-name", "string": "a"}]),
           "PARAM_HELM_RELEASE_NAME": "b"}
    assert settings_from_environment(env).settings == {"helm": {"releaseName": "a"}}


def test_param_var_array_order_is_numeric() -> None:
    env = {f"PARAM_HELM_VALUES_FILES_{i}": f"v{i}.yaml" for i in range(12)}
    assert settings_from_environment(env).settings["helm"]["valueFiles"] == [
        f"v{i}.yaml" for i in range(12)]


def test_param_var_longest_name_wins() -> None:
    # PARAM_JSONNET_TLAS_CODE_X belongs to jsonnet-tlas-code, not to jsonnet-tlas key CODE_X.
    env = {"PARAM_JSONNET_TLAS_CODE_x": "1", "PARAM_JSONNET_TLAS_y": "2",
           "PARAM_HELM_VALUES": "a: 1", "PARAM_HELM_VALUES_FILES_0": "f.yaml"}
    settings = settings_from_environment(env).settings
    assert settings["jsonnet"]["tlas"] == [{"name": "y", "value": "2"},
                                           {"name": "x", "value": "1", "code": True}]
    assert settings["helm"] == {"values": "a: 1", "valueFiles": ["f.yaml"]}


def test_string_and_plain_helm_parameters_combine() -> None:
    settings = _settings({"name": "helm-parameters", "map": {"a": "1"}},
                         {"name": "helm-string-parameters", "map": {"b": "2"}})
    assert settings["helm"]["parameters"] == [
        {"name": "a", "value": "1"}, {"name": "b", "value": "2", "forceString": True}]


def test_app_fields_from_environment() -> None:
    settings = _settings(ARGOCD_APP_NAME="guestbook", ARGOCD_APP_NAMESPACE="web",
                         KUBE_VERSION="1.31.2",
                         KUBE_API_VERSIONS="v1,apps/v1, batch/v1,,monitoring.coreos.com/v1")
    assert settings == {"name": "guestbook", "namespace": "web", "kubeVersion": "1.31.2",
                        "apiVersions": ["v1", "apps/v1", "batch/v1", "monitoring.coreos.com/v1"]}


def test_app_name_drops_the_namespace_prefix() -> None:
    assert _settings(ARGOCD_APP_NAME="team-a_guestbook")["name"] == "guestbook"


def test_empty_variables_set_nothing() -> None:
    assert settings_from_environment({"ARGOCD_APP_NAME": "", "KUBE_API_VERSIONS": "",
                                      "ARGOCD_APP_PARAMETERS": ""}).settings == {}
    assert _settings({"name": "helm-release-name", "string": ""}) == {}
    assert _settings({"name": "helm-values-files"}) == {"helm": {"valueFiles": []}}


def test_build_env_has_app_and_plugin_env_only() -> None:
    env = {"ARGOCD_APP_NAME": "a", "ARGOCD_APP_REVISION": "abc", "ARGOCD_ENV_FOO": "bar",
           "ARGOCD_ENV_AVP_TYPE": "vault", "KUBE_VERSION": "1.31.0",
           "KUBE_API_VERSIONS": "v1", "HOME": "/root", "PATH": "/bin", "PARAM_TYPE": "helm",
           "VAULT_TOKEN": "s.secret"}
    assert build_env(env) == {
        "ARGOCD_APP_NAME": "a", "ARGOCD_APP_REVISION": "abc", "ARGOCD_ENV_AVP_TYPE": "vault",
        "ARGOCD_ENV_FOO": "bar", "KUBE_API_VERSIONS": "v1", "KUBE_VERSION": "1.31.0"}
    assert settings_from_environment(env).build_env == build_env(env)


@pytest.mark.parametrize(("params", "needle"), [
    ([{"name": "helm-valuefiles", "array": ["a"]}], "unknown parameter 'helm-valuefiles'"),
    ([{"name": "helm-values-files", "string": "a.yaml"}], "takes an array, got a string"),
    ([{"name": "helm-parameters", "array": ["a=b"]}], "takes a map, got an array"),
    ([{"name": "helm-skip-crds", "string": "yes"}], "must be 'true' or 'false'"),
    ([{"name": "kustomize-replicas", "map": {"web": "three"}}], "non-negative integer"),
    ([{"name": "helm-values-files", "array": [1]}], "list of strings"),
    ([{"name": "type", "string": "helm"}, {"name": "type", "string": "kustomize"}],
     "given twice"),
    ([{"string": "x"}], "item 0 must be an object"),
    ({"name": "type"}, "must be a JSON list"),
])
def test_bad_parameters_are_config_errors(params: Any, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_environment({"ARGOCD_APP_PARAMETERS": json.dumps(params)})
    assert needle in info.value.one_line()
    assert info.value.one_line().startswith("ARGOCD_APP_PARAMETERS: ")


def test_malformed_json_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        parameters_from_environment({"ARGOCD_APP_PARAMETERS": "[{"}, TABLE)


def test_unknown_param_var_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_environment({"PARAM_HELM_VALUEFILES_0": "a.yaml"})
    assert "PARAM_HELM_VALUEFILES_0" in info.value.one_line()


def test_param_var_array_needs_an_index() -> None:
    with pytest.raises(ConfigError, match="expected PARAM_HELM_VALUES_FILES_<index>"):
        settings_from_environment({"PARAM_HELM_VALUES_FILES_X": "a.yaml"})


@pytest.mark.parametrize(("source_path", "app_rel", "root_rel"), [
    ("apps/guestbook", "apps/guestbook", "."),
    ("guestbook", "apps/guestbook", "apps"),
    (".", "apps/guestbook", "apps/guestbook"),
    ("other/place", "apps/guestbook", None),
    ("../escape", "apps/guestbook", None),
    ("/abs/apps/guestbook", "apps/guestbook", None),
])
def test_source_root_from_source_path(tmp_path: Path, source_path: str, app_rel: str,
                                      root_rel: str | None) -> None:
    app_dir = tmp_path / app_rel
    cmp = settings_from_environment({"ARGOCD_APP_SOURCE_PATH": source_path}, app_dir=app_dir)
    expected = None if root_rel is None else (tmp_path / root_rel).resolve()
    assert (cmp.source_root.resolve() if cmp.source_root else None) == expected


def test_load_app_overrides_kiln_yaml(tmp_path: Path, cache_dir: Path) -> None:
    repo = tmp_path / "repo"
    app_dir = repo / "apps" / "web"
    app_dir.mkdir(parents=True)
    (app_dir / "kiln.yaml").write_text(
        "namespace: from-file\ndirectory:\n  include: '*.yaml'\n  recurse: false\n")
    env = {
        "ARGOCD_APP_NAME": "web", "ARGOCD_APP_NAMESPACE": "prod",
        "ARGOCD_APP_SOURCE_PATH": "apps/web", "ARGOCD_ENV_FOO": "bar",
        "KUBE_VERSION": "1.30.0", "KUBE_API_VERSIONS": "v1,apps/v1",
        "ARGOCD_APP_PARAMETERS": json.dumps([{"name": "directory-recurse", "string": "true"}]),
    }
    engine = Engine(cache_dir=cache_dir, entry_points=False, env={})
    app = load_app_from_environment(engine, app_dir, env)
    assert app.name == "web"
    assert app.namespace == "prod"
    assert app.kube_version == "1.30.0"
    assert app.api_versions == ("v1", "apps/v1")
    opts = app.options["directory"]
    assert (opts.recurse, opts.include) == (True, "*.yaml")  # flag wins, file key kept
    assert app.env["ARGOCD_ENV_FOO"] == "bar"
    assert app.root.resolve() == repo.resolve()


def test_load_app_unknown_section_is_a_config_error(tmp_path: Path, cache_dir: Path) -> None:
    engine = Engine(cache_dir=cache_dir, entry_points=False, env={})
    env = {"ARGOCD_APP_PARAMETERS": json.dumps([{"name": "nope", "string": "x"}])}
    with pytest.raises(ConfigError, match="unknown parameter 'nope'"):
        load_app_from_environment(engine, tmp_path, env)


def test_cache_identity_carries_only_referenced_build_env(tmp_path: Path) -> None:
    """A $VAR in an option puts that variable's value in the cache identity (a new revision
    referenced by a Helm parameter is a miss); unreferenced variables stay out (a hit)."""
    from kiln.core.app import App

    def identity(revision: str, options: dict[str, Any]) -> dict[str, Any]:
        env = {"ARGOCD_APP_REVISION": revision, "ARGOCD_APP_REVISION_SHORT": revision[:7],
               "ARGOCD_ENV_FOO": "bar"}
        return App(path=tmp_path, options=options, env=env).identity()

    pinned = {"helm": {"parameters": [{"name": "image.tag", "value": "v1"}]}}
    assert identity("a" * 40, pinned) == identity("b" * 40, pinned)
    assert "env" not in identity("a" * 40, pinned)
    floating = {"helm": {"parameters": [
        {"name": "image.tag", "value": "${ARGOCD_APP_REVISION_SHORT}-$ARGOCD_ENV_FOO"},
        {"name": "price", "value": "$$5"}]}}
    assert identity("a" * 40, floating) != identity("b" * 40, floating)
    assert identity("a" * 40, floating)["env"] == {
        "ARGOCD_APP_REVISION_SHORT": "aaaaaaa", "ARGOCD_ENV_FOO": "bar"}
