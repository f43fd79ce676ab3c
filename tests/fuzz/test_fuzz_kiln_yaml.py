"""kiln.yaml: arbitrary text, and YAML mappings over kiln's real keys with values of any shape.

Every file loads as an app or fails with one KilnError naming kiln.yaml; a directory app (the
only renderer that needs no tool) then renders or fails the same way, within a time bound.
One run also goes through the real ``kiln render`` command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from kiln.core.engine import Engine
from kiln.core.errors import KilnError
from tests.fuzz.bounds import FUZZ, result_or_kiln_error
from tests.helpers import assert_clean_failure, run_kiln

SECTIONS: dict[str, list[str]] = {
    "directory": ["recurse", "include", "exclude", "jsonnet"],
    "helm": ["releaseName", "valueFiles", "parameters", "fileParameters", "values",
             "valuesObject", "skipCrds", "skipTests", "repoURL", "chart", "version",
             "ignoreMissingValueFiles", "passCredentials", "namespace", "kubeVersion"],
    "kustomize": ["namePrefix", "nameSuffix", "images", "replicas", "commonLabels",
                  "commonAnnotations", "namespace", "buildOptions", "patches", "components"],
    "jsonnet": ["extVars", "tlas", "libs", "timeout", "maxMemoryBytes"],
}
SECRETS = {"sops": ["ignoreMac", "ageKeys", "ageKeyFile", "inProcess", "maxFileBytes"],
           "vault": ["addr", "kvVersion", "pathValidation", "authType"],
           "externalSecrets": ["mode", "secretStore"]}
TOP = ["type", "name", "namespace", "kubeVersion", "apiVersions"]

SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10),
    st.sampled_from(["directory", "helm", "kustomize", "jsonnet", "*.yaml", "**", "[", "../x",
                     "/etc", "--set=x", "1.30", "-1", "1e400", "true"]),
)
VALUE = st.recursive(SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=6), st.sampled_from(["name", "value", "code"])),
                    inner, max_size=3)), max_leaves=6)


def section(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(st.dictionaries(st.one_of(st.sampled_from(keys), st.text(max_size=6)),
                                     VALUE, max_size=4), VALUE)


SETTINGS = st.fixed_dictionaries({}, optional={
    **{key: VALUE for key in TOP},
    **{name: section(keys) for name, keys in SECTIONS.items()},
    "secrets": st.one_of(st.fixed_dictionaries({}, optional={
        name: section(keys) for name, keys in SECRETS.items()}), VALUE),
})
TEXT = st.one_of(
    SETTINGS.map(lambda s: yaml.safe_dump(s, sort_keys=False)),
    st.text(max_size=60),
    st.lists(st.sampled_from(["type: ", "directory:\n", "  recurse: ", "&a ", "*a", "[", "{",
                              "- ", "---\n", "!!python/object:os.system ", "? ", ": ", "\t",
                              "~", "true", "\n", "  ", "'", '"', "#"]), max_size=20).map(
        "".join),
)


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("app")
    (path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")
    (path / "sub").mkdir()
    (path / "sub" / "b.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                         "  name: b\n")
    return path


@FUZZ
@given(text=TEXT)
@example(text="directory:\n  include: '{' \n")
@example(text="secrets: [1]\n")
@example(text="helm: {parameters: [{name: 1}]}\n")
def test_any_kiln_yaml_loads_and_renders_or_is_one_error(engine: Engine, app_dir: Path,
                                                         text: str) -> None:
    (app_dir / "kiln.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
    app = result_or_kiln_error(lambda: engine.load_app(app_dir), seconds=10)
    if isinstance(app, KilnError):
        assert "kiln.yaml" in app.one_line() or app.source is None, app.one_line()
        return
    if app.type in (None, "directory"):
        result_or_kiln_error(lambda: engine.render(app, secrets=False), seconds=10)


def test_a_bad_kiln_yaml_through_the_cli_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "kiln.yaml").write_text("directory: {recurse: maybe}\n")
    proc = run_kiln("render", str(tmp_path), "--no-cache")
    assert_clean_failure(proc, "kiln.yaml", "directory")
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
