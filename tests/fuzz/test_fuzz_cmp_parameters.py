"""CMP parameters: ``ARGOCD_APP_PARAMETERS`` JSON and ``PARAM_*`` variables, as Argo CD (or an
attacker controlling the Application) may send them.

Every input ends in kiln settings that load as an app, or one ConfigError naming the
parameter source, within a time bound.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kiln.cmp.environment import (
    escape_name,
    load_app_from_environment,
    parameters_from_param_vars,
    parse_parameters_json,
)
from kiln.cmp.parameters import table
from kiln.core.engine import Engine
from kiln.core.errors import ConfigError, KilnError
from tests.fuzz.bounds import FUZZ, result_or_kiln_error

TABLE = table({})

NAMES = st.one_of(st.sampled_from([spec.name for spec in TABLE]), st.text(max_size=12))
SHORT = st.one_of(st.text(max_size=12), st.sampled_from(
    ["true", "false", "TRUE", " 3 ", "-1", "1e3", "9" * 50, "$ARGOCD_APP_NAME", "${X}",
     "../x", "/etc/passwd", "--post-renderer=sh", "a=b", "a,b", "", " "]))
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), SHORT),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(SHORT, inner, max_size=3)), max_leaves=6)
ITEM = st.one_of(
    st.fixed_dictionaries({"name": NAMES}, optional={
        "string": st.one_of(SHORT, JSONISH), "array": st.one_of(st.lists(SHORT, max_size=3),
                                                                 JSONISH),
        "map": st.one_of(st.dictionaries(SHORT, SHORT, max_size=3), JSONISH)}),
    JSONISH,
)
PARAMETERS_JSON = st.one_of(
    st.lists(ITEM, max_size=4).map(json.dumps),
    JSONISH.map(json.dumps),
    st.text(max_size=40),
)

DEEP = "[" * 5_000 + "]" * 5_000


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("app")
    (path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")
    return path


@FUZZ
@given(text=PARAMETERS_JSON)
@example(text=DEEP)
@example(text='[{"name": "helm-parameters", "map": {"a": "b"}}, {"name": "helm-parameters"}]')
def test_parameters_json_parses_or_is_one_config_error(text: str) -> None:
    out = result_or_kiln_error(lambda: parse_parameters_json(text, TABLE), seconds=5)
    if isinstance(out, KilnError):
        assert isinstance(out, ConfigError)
        assert out.source == "ARGOCD_APP_PARAMETERS"


@FUZZ
@given(text=PARAMETERS_JSON, extra=st.dictionaries(
    st.sampled_from(["ARGOCD_APP_NAME", "ARGOCD_APP_NAMESPACE", "KUBE_VERSION",
                     "KUBE_API_VERSIONS", "ARGOCD_APP_SOURCE_PATH", "ARGOCD_ENV_X"]),
    SHORT, max_size=3))
@example(text=DEEP, extra={})
def test_cmp_environment_loads_an_app_or_is_one_error(engine: Engine, app_dir: Path, text: str,
                                                      extra: dict[str, str]) -> None:
    env = {"ARGOCD_APP_PARAMETERS": text, **extra}
    result_or_kiln_error(lambda: load_app_from_environment(engine, app_dir, env), seconds=10)


PARAM_VAR = st.one_of(
    st.tuples(st.sampled_from([escape_name(spec.name) for spec in TABLE]),
              st.one_of(st.just(""), st.text(max_size=6).map(lambda s: "_" + s),
                        st.integers(-2, 20).map(lambda i: f"_{i}"))).map(
        lambda t: "PARAM_" + t[0] + t[1]),
    st.text(max_size=10).map(lambda s: "PARAM_" + s),
)


@FUZZ
@given(env=st.dictionaries(PARAM_VAR, SHORT, max_size=5))
def test_param_vars_parse_or_are_one_config_error(engine: Engine, app_dir: Path,
                                                  env: dict[str, str]) -> None:
    result_or_kiln_error(lambda: parameters_from_param_vars(env, TABLE), seconds=5)
    result_or_kiln_error(lambda: load_app_from_environment(engine, app_dir, env), seconds=10)
