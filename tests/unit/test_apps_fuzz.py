"""Property tests: whatever the input, kiln.apps answers AppSpecs or a KilnError, nothing else.

Three sources of input: random text as an Applications file; random values anywhere in a full
Application; random values anywhere in an ApplicationSet (both template modes), and random
Go-template / fasttemplate text.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln.apps import load_applications
from kiln.apps.application import specs_of_application
from kiln.apps.appset import specs_of_application_set
from kiln.apps.source import Checkout
from kiln.apps.templating import TemplateError, render_fast, render_go
from kiln.core.errors import KilnError

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
REPO = "https://github.com/example/gitops.git"

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from(["$values/x.yaml", "../..", "{{path}}",
                                                          "{{ .path.path }}", "*", "kiln"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(
        ["name", "path", "value", "string", "array", "map", "ref", "chart"])), inner,
        max_size=3)), max_leaves=10)

FULL_SOURCE = {
    "repoURL": REPO, "path": "apps/web", "targetRevision": "main",
    "helm": {"valueFiles": ["v.yaml", "$values/e.yaml"], "values": "a: 1",
             "valuesObject": {"b": 2}, "parameters": [{"name": "p", "value": "v",
                                                       "forceString": True}],
             "fileParameters": [{"name": "f", "path": "f.txt"}], "releaseName": "r",
             "namespace": "n", "skipCrds": True, "kubeVersion": "1.30",
             "apiVersions": ["v1"]},
}
APPLICATION = {
    "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
    "metadata": {"name": "web", "labels": {"a": "b"}},
    "spec": {
        "project": "default", "destination": {"namespace": "shop", "server": "x"},
        "sources": [
            FULL_SOURCE,
            {"repoURL": REPO, "ref": "values"},
            {"repoURL": REPO, "path": "k", "kustomize": {
                "namePrefix": "p-", "images": ["nginx:1"], "commonLabels": {"a": "b"},
                "replicas": [{"name": "w", "count": 2}],
                "patches": [{"patch": "x", "target": {"kind": "D"}, "options": {"o": True}}]}},
            {"repoURL": REPO, "path": "d", "directory": {"recurse": True, "jsonnet": {
                "extVars": [{"name": "e", "value": "v", "code": False}], "libs": ["l"]}}},
            {"repoURL": REPO, "path": "p", "plugin": {
                "name": "kiln", "env": [{"name": "A", "value": "b"}],
                "parameters": [{"name": "helm-values-files", "array": ["a"]},
                               {"name": "helm-parameters", "map": {"a": "b"}}]}},
            {"repoURL": "https://charts.example.com", "chart": "c", "targetRevision": "1.0.0"},
        ],
        "syncPolicy": {"automated": {}},
    },
}
APPLICATION_SET = {
    "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
    "metadata": {"name": "set"},
    "spec": {
        "generators": [
            {"list": {"elements": [{"env": "dev", "values": {"a": "b"}}],
                      "elementsYaml": "- env: prod\n"}},
            {"git": {"repoURL": REPO, "revision": "HEAD", "pathParamPrefix": "",
                     "directories": [{"path": "apps/*"}, {"path": "apps/x", "exclude": True}],
                     "values": {"v": "{{path}}"}}},
        ],
        "template": {"metadata": {"name": "app-{{env}}{{path.basename}}"},
                     "spec": {"project": "default", "destination": {"namespace": "{{env}}"},
                              "source": {"repoURL": REPO, "path": "{{path}}"}}},
    },
}


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key/index path into ``data`` (the root too)."""
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from paths(value, (*prefix, index))


def mutate(doc: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(list(paths(doc))[1:]))
        parent: Any = doc
        for step in where[:-1]:
            parent = parent[step]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[where[-1]]
        elif action == "add" and isinstance(parent[where[-1]], dict):
            parent[where[-1]][data.draw(st.text(max_size=8))] = data.draw(values)
        else:
            parent[where[-1]] = data.draw(values)
    return doc


@pytest.fixture(scope="module")
def checkout() -> Iterator[Checkout]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel in ("apps/web", "apps/x", "apps/api", "d", "k"):
            (root / rel).mkdir(parents=True)
        (root / "d" / "main.jsonnet").write_text("{}")
        yield Checkout(root, (REPO,))


@SETTINGS
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=200).map(
    lambda b: b.decode("latin-1"))))
def test_random_text_files(tmp_path: Path, text: str) -> None:
    file = tmp_path / "apps.yaml"
    file.write_text("apiVersion: argoproj.io/v1alpha1\nkind: Application\n" + text,
                    encoding="utf-8", errors="surrogatepass")
    try:
        load_applications(file, repo_root=tmp_path)
    except KilnError as exc:
        assert "\n" not in exc.one_line()


@SETTINGS
@given(data=st.data())
def test_random_application_fields(checkout: Checkout, data: st.DataObject) -> None:
    doc = mutate(APPLICATION, data)
    try:
        specs = specs_of_application(doc, "apps.yaml", checkout)
    except KilnError as exc:
        assert exc.source == "apps.yaml"
        return
    for spec in specs:
        assert isinstance(spec.path, str) and not spec.path.startswith("..")


@SETTINGS
@given(data=st.data(), go=st.booleans())
def test_random_application_set_fields(checkout: Checkout, data: st.DataObject,
                                       go: bool) -> None:
    doc = copy.deepcopy(APPLICATION_SET)
    doc["spec"]["goTemplate"] = go
    doc = mutate(doc, data)
    try:
        specs_of_application_set(doc, "set.yaml", checkout)
    except KilnError as exc:
        assert exc.source == "set.yaml"


template_text = st.lists(st.one_of(
    st.text(max_size=6),
    st.sampled_from(["{{", "}}", "{{-", "-}}", ".a", ".l", "|", "(", ")", "index", "default",
                     "upper", " ", '"s"', "1", "$", "$.a", "if", "/*", "*/", "`r`"])),
    max_size=12).map("".join)


@SETTINGS
@given(text=template_text)
def test_random_templates(text: str) -> None:
    params = {"a": "x", "l": ["y", 2], "m": {"k": 1.5}}
    for strict in (False, True):
        with contextlib.suppress(TemplateError):
            assert isinstance(render_go(text, params, strict=strict), str)
    with contextlib.suppress(TemplateError):
        assert isinstance(render_fast(text, {"a": "x"}), str)
