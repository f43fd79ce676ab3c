"""kiln.apps: ApplicationSets with list and git-directory generators, and template substitution.

Expected values are the ones Argo CD's generators produce for these inputs (parameter names
and Go-template fields from applicationset/generators/{list,git}.go), written out by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kiln.apps import load_applications
from kiln.apps.appset import checkout_directories, go_path_match
from kiln.apps.templating import TemplateError, render_fast, render_go, sanitize_name
from kiln.core.errors import ConfigError

REPO = "https://github.com/example/gitops.git"


def appset(spec: dict[str, Any], name: str = "envs") -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": name, "namespace": "argocd"}, "spec": spec}


def template(name: str, path: str, **source: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"team": "x"}},
            "spec": {"project": "default",
                     "source": {"repoURL": REPO, "targetRevision": "HEAD", "path": path,
                                **source},
                     "destination": {"server": "https://kubernetes.default.svc",
                                     "namespace": "apps"}}}


def load(tmp_path: Path, doc: dict[str, Any], repo_urls: tuple[str, ...] = ()) -> list[Any]:
    file = tmp_path / "sets" / "set.yaml"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(yaml.safe_dump(doc))
    return load_applications(file, repo_root=tmp_path, repo_urls=repo_urls)


def tree(root: Path, *dirs: str) -> None:
    for rel in dirs:
        (root / rel).mkdir(parents=True, exist_ok=True)


def test_list_generator_fasttemplate(tmp_path: Path) -> None:
    doc = appset({
        "generators": [{"list": {"elements": [
            {"env": "dev", "values": {"replicas": "1"}},
            {"env": "prod", "values": {"replicas": "3"}},
        ]}}],
        "template": template("web-{{env}}", "envs/{{ env }}", helm={
            "parameters": [{"name": "replicas", "value": "{{values.replicas}}"}],
            "valuesObject": {"{{env}}-key": "{{env}}", "other": "{{unknown}}"}}),
    })
    specs = load(tmp_path, doc)
    assert [(s.name, s.path) for s in specs] == [("web-dev", "envs/dev"),
                                                 ("web-prod", "envs/prod")]
    dev = specs[0]
    assert dev.app_settings["helm"]["parameters"] == [{"name": "replicas", "value": "1"}]
    # map keys are substituted too; an unknown tag stays as written
    assert dev.app_settings["helm"]["valuesObject"] == {"dev-key": "dev",
                                                        "other": "{{unknown}}"}
    assert dev.origin.endswith("set.yaml: ApplicationSet envs: Application web-dev")
    assert dev.env["ARGOCD_APP_NAME"] == "web-dev"


def test_list_elements_yaml_and_go_template(tmp_path: Path) -> None:
    doc = appset({
        "goTemplate": True, "goTemplateOptions": ["missingkey=error"],
        "generators": [{"list": {"elements": [{"env": "dev", "count": 2}],
                                 "elementsYaml": "- env: prod\n  count: 5\n"}}],
        "template": template("web-{{ .env }}", "envs/{{ .env | lower }}", helm={
            "parameters": [{"name": "replicas", "value": "{{ .count }}"}]}),
    })
    specs = load(tmp_path, doc)
    assert [(s.name, s.path) for s in specs] == [("web-dev", "envs/dev"),
                                                 ("web-prod", "envs/prod")]
    assert [s.app_settings["helm"]["parameters"][0]["value"] for s in specs] == ["2", "5"]


def test_fasttemplate_list_values_must_be_strings(tmp_path: Path) -> None:
    doc = appset({"generators": [{"list": {"elements": [{"env": "dev", "count": 2}]}}],
                  "template": template("web-{{env}}", "envs/{{env}}")})
    with pytest.raises(ConfigError, match=r"spec.generators\[0\].list.elements\[0\].count: must "
                                          r"be a string"):
        load(tmp_path, doc)


def test_git_directories_with_exclude_and_path_params(tmp_path: Path) -> None:
    tree(tmp_path, "apps/web", "apps/api", "apps/legacy", "apps/web/nested", "apps/.hidden",
         "other/x")
    (tmp_path / "apps" / "link").symlink_to(tmp_path / "other")
    doc = appset({
        "generators": [{"git": {"repoURL": REPO, "revision": "HEAD", "directories": [
            {"path": "apps/*"}, {"path": "apps/legacy", "exclude": True}],
            "values": {"cluster": "c-{{path.basename}}"}}}],
        "template": template("{{path.basename}}", "{{path}}", helm={"parameters": [
            {"name": "a", "value": "{{path[0]}}"}, {"name": "b", "value": "{{path[1]}}"},
            {"name": "c", "value": "{{path.basenameNormalized}}"},
            {"name": "d", "value": "{{values.cluster}}"}]}),
    })
    specs = load(tmp_path, doc, repo_urls=("git@github.com:example/gitops.git",))
    assert [(s.name, s.path) for s in specs] == [("api", "apps/api"), ("web", "apps/web")]
    assert [p["value"] for p in specs[1].app_settings["helm"]["parameters"]] == [
        "apps", "web", "web", "c-web"]


def test_git_directories_go_template_and_prefix(tmp_path: Path) -> None:
    tree(tmp_path, "clusters/Prod_EU/web")
    doc = appset({
        "goTemplate": True,
        "generators": [{"git": {"repoURL": REPO, "revision": "main", "pathParamPrefix": "p",
                                "directories": [{"path": "clusters/*/*"}],
                                "values": {"where": "{{ index .p.path.segments 1 }}"}}}],
        "template": template("{{ .p.path.basename }}-{{ .p.path.basenameNormalized }}",
                             "{{ .p.path.path }}", helm={"parameters": [
                                 {"name": "w", "value": "{{ .values.where }}"},
                                 {"name": "num", "value": "{{ index .p.path.segments 1 | "
                                                        "normalize }}"}]}),
    })
    (spec,) = load(tmp_path, doc)
    assert spec.name == "web-web"
    assert spec.path == "clusters/Prod_EU/web"
    assert [p["value"] for p in spec.app_settings["helm"]["parameters"]] == [
        "Prod_EU", "prod-eu"]


def test_git_generator_of_another_repository_is_refused(tmp_path: Path) -> None:
    doc = appset({"generators": [{"git": {"repoURL": "https://github.com/o/other",
                                          "directories": [{"path": "*"}]}}],
                  "template": template("{{path}}", "{{path}}")})
    with pytest.raises(ConfigError, match=r"spec.generators\[0\].git.repoURL: .* is not the "
                                          "checkout"):
        load(tmp_path, doc, repo_urls=(REPO,))


@pytest.mark.parametrize(("generator", "field"), [
    ({"clusters": {}}, "spec.generators[0]: needs exactly one generator"),
    ({"clusters": {"selector": {"matchLabels": {"a": "b"}}}},
     "spec.generators[0].clusters: not supported by kiln"),
    ({"matrix": {"generators": [{"list": {"elements": [{}]}}]}},
     "spec.generators[0].matrix: not supported by kiln"),
    ({"git": {"repoURL": REPO, "files": [{"path": "*.json"}]}},
     "spec.generators[0].git.files: not supported by kiln"),
    ({"list": {"elements": [{"a": "b"}]}, "selector": {"matchLabels": {"a": "b"}}},
     "spec.generators[0].selector: not supported by kiln"),
    ({"list": {"elements": [{"a": "b"}], "template": {"metadata": {"name": "x"}}}},
     "spec.generators[0].list.template: not supported by kiln"),
    ({"list": {"elements": [{"a": "b"}], "bogus": 1}},
     "spec.generators[0].list.bogus: unknown field"),
    ({"git": {"repoURL": REPO, "directories": [{"path": "[x"}]}},
     "spec.generators[0].git.directories[0].path: '[x': syntax error"),
])
def test_unsupported_generators_are_errors(tmp_path: Path, generator: dict[str, Any],
                                           field: str) -> None:
    doc = appset({"generators": [generator], "template": template("a", "a")})
    with pytest.raises(ConfigError) as info:
        load(tmp_path, doc)
    assert field in info.value.message
    assert "(ApplicationSet envs)" in info.value.message


def test_template_patch_and_unsupported_go_template_are_errors(tmp_path: Path) -> None:
    doc = appset({"goTemplate": True, "templatePatch": "spec: {}",
                  "generators": [{"list": {"elements": [{"a": "b"}]}}],
                  "template": template("a", "a")})
    with pytest.raises(ConfigError, match=r"spec\.templatePatch: not supported by kiln"):
        load(tmp_path, doc)
    doc = appset({"goTemplate": True,
                  "generators": [{"list": {"elements": [{"a": "b"}]}}],
                  "template": template('{{ if .a }}x{{ end }}', "a")})
    with pytest.raises(ConfigError, match=r"spec.template.metadata.name: \{\{if\}\} is not "
                                          "supported by kiln"):
        load(tmp_path, doc)


def test_generated_application_fields_are_checked(tmp_path: Path) -> None:
    tmpl = template("a-{{a}}", "a")
    tmpl["spec"]["source"]["helm"] = {"fileParameters": [{"name": "x", "path": "a",
                                                          "extra": "{{a}}"}]}
    doc = appset({"generators": [{"list": {"elements": [{"a": "b"}]}}], "template": tmpl})
    with pytest.raises(ConfigError) as info:
        load(tmp_path, doc)
    assert info.value.message == ("spec.template.spec.source.helm.fileParameters[0].extra: "
                                  "unknown field (ApplicationSet envs, Application a-b)")


def test_generated_names_must_be_unique(tmp_path: Path) -> None:
    doc = appset({"generators": [{"list": {"elements": [{"a": "b"}, {"a": "b"}]}}],
                  "template": template("x-{{a}}", "a")})
    with pytest.raises(ConfigError, match="'x-b' is declared twice"):
        load(tmp_path, doc)


# -- the pieces ---------------------------------------------------------------------------------

def test_checkout_directories_walk_like_go(tmp_path: Path) -> None:
    tree(tmp_path, "a/b", "a-c", ".git/x", "b/.h")
    assert checkout_directories(tmp_path) == ["a", "a/b", "a-c", "b"]


@pytest.mark.parametrize(("pattern", "name", "matches"), [
    ("apps/*", "apps/web", True), ("apps/*", "apps/web/x", False), ("*", "apps", True),
    ("a?c", "abc", True), ("a?c", "a/c", False), ("[a-c]x", "bx", True),
    ("[^a-c]x", "dx", True), ("[^a-c]x", "ax", False), ("a\\*", "a*", True),
    ("a\\*", "ab", False), ("*/*/web", "x/y/web", True),
])
def test_go_path_match(pattern: str, name: str, matches: bool) -> None:
    assert go_path_match(pattern)(name) is matches


@pytest.mark.parametrize("pattern", ["[", "[]", "a\\", "[b-a]"])
def test_go_path_match_bad_patterns(pattern: str) -> None:
    with pytest.raises(ValueError, match="syntax error"):
        go_path_match(pattern)


def test_sanitize_name() -> None:
    assert sanitize_name("My_App.v2-") == "my-app.v2"
    assert sanitize_name("-x" + "y" * 300) == "x" + "y" * 251


def test_fasttemplate_rules() -> None:
    params = {"a": "1", "b.c": "2", "n": 3}  # only string parameters are substituted
    assert render_fast("{{a}}{{ b.c }}{{n}}{{ }}{{zz}}", params) == "12{{n}}{{ }}{{zz}}"
    assert render_fast("{{a\n}}", params) == "{{a\n}}"  # no tag on one line: untouched
    with pytest.raises(TemplateError, match="cannot find end tag"):
        render_fast("{{a}} {{b", params)


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ .a }}", "x"), ("{{.n}}", "3"), ("{{ .f }}", "1.5"), ("{{ .big }}", "2"),
    ("{{ .t }}", "true"), ("{{ .missing }}", "<no value>"),
    ("a {{- .a -}} b", "axb"), ("{{/* note */}}z", "z"), ('{{ "q\\"" }}', 'q"'),
    ("{{ index .l 1 }}", "y"), ('{{ index .m "k" }}', "v"), ("{{ .a | upper }}", "X"),
    ('{{ default "d" .missing }}', "d"), ('{{ default "d" .a }}', "x"),
    ("{{ trim .s }}", "s"), ("{{ $.a }}", "x"), ("{{ (index .l 0) | upper }}", "X"),
    ('{{ printf "%s-%v-%v%%" .a .n .t }}', "x-3-true%"), ('{{ .w | replace "-" "_" }}', "a_b_c"),
    ('{{ trunc 3 .w }}', "a-b"), ('{{ trunc -3 .w }}', "b-c"), ('{{ trimPrefix "a-" .w }}', "b-c"),
    ('{{ .w | trimSuffix "-c" }}', "a-b"),
])
def test_go_template_subset(text: str, expected: str) -> None:
    params = {"a": "x", "n": 3, "f": 1.5, "big": 2.0, "t": True, "l": ["x", "y"],
              "m": {"k": "v"}, "s": "  s ", "w": "a-b-c"}
    assert render_go(text, params) == expected


@pytest.mark.parametrize("text", [
    "{{ if .a }}x{{ end }}", "{{ range .l }}{{ . }}{{ end }}", '{{ printf "%q" .a }}',
    '{{ printf "%d" .n }}', '{{ toYaml .m }}', '{{ printf "%s %s" .a }}{{ trunc "x" .a }}',
    "{{ .m }}", "{{ .a.b }}", "{{ .missing.b }}", "{{ index .l 9 }}", "{{ $x }}", "{{",
    "{{ .a | }}", "{{ ( .a }}",
])
def test_go_template_outside_the_subset_is_an_error(text: str) -> None:
    with pytest.raises(TemplateError):
        render_go(text, {"a": "x", "l": ["x"], "m": {"k": "v"}, "n": 1})


def test_go_template_missingkey_error() -> None:
    with pytest.raises(TemplateError, match="no entry for key 'b'"):
        render_go("{{ .b }}", {"a": "x"}, strict=True)
