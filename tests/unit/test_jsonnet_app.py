"""Unit tests of the jsonnet renderer's app handling: detection, entry file, variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.core.app import App
from kiln.core.errors import ConfigError, InputError
from kiln.plugins.jsonnet import JsonnetRenderer, entry_file, make_plan
from kiln.plugins.jsonnet.options import JsonnetOptions


def app_with(tmp_path: Path, names: list[str], **options: object) -> App:
    for name in names:
        (tmp_path / name).write_text("{}")
    return App(path=tmp_path, options={"jsonnet": options} if options else {})


def test_detects_any_jsonnet_file_or_a_main_option(tmp_path: Path) -> None:
    renderer = JsonnetRenderer()
    assert not renderer.detect(app_with(tmp_path, ["a.yaml", "lib.libsonnet"]))
    assert renderer.detect(app_with(tmp_path / ".", [], main="sub/x.jsonnet"))
    assert renderer.detect(app_with(tmp_path, ["app.jsonnet"]))
    # Several entry candidates are still a jsonnet app (the render asks for jsonnet.main).
    assert renderer.detect(app_with(tmp_path, ["other.jsonnet"]))
    assert renderer.detect(app_with(tmp_path, ["main.jsonnet"]))
    assert renderer.priority == 10 and renderer.name == "jsonnet"


def test_entry_file_choice(tmp_path: Path) -> None:
    app = app_with(tmp_path, ["b.jsonnet", "a.jsonnet"])
    with pytest.raises(ConfigError, match=r"several \*\.jsonnet files \(a.jsonnet, b.jsonnet\)"):
        entry_file(app, JsonnetOptions())
    assert entry_file(app, JsonnetOptions(main="b.jsonnet")) == tmp_path / "b.jsonnet"
    with pytest.raises(InputError, match="does not exist"):
        entry_file(app, JsonnetOptions(main="c.jsonnet"))
    (tmp_path / "main.jsonnet").write_text("{}")
    assert entry_file(app, JsonnetOptions()) == tmp_path / "main.jsonnet"


def test_entry_file_outside_the_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.jsonnet").write_text("{}")
    app = App(path=tmp_path / "app", source_root=tmp_path / "app")
    (tmp_path / "app").mkdir()
    with pytest.raises(InputError, match="outside the source root"):
        entry_file(app, JsonnetOptions(main="../x.jsonnet"))


def test_no_entry_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no main\.jsonnet"):
        entry_file(app_with(tmp_path, []), JsonnetOptions())


def test_variables_split_by_form_and_env_substituted(tmp_path: Path) -> None:
    (tmp_path / "main.jsonnet").write_text("{}")
    app = App(path=tmp_path, env={"ARGOCD_APP_NAME": "shop"}, options={"jsonnet": {
        "extVars": [{"name": "a", "value": "$ARGOCD_APP_NAME"},
                    {"name": "b", "value": "{x: '$$'}", "code": True}],
        "tlas": [{"name": "c", "value": "${ARGOCD_APP_NAME}-1"}],
    }})
    plan = make_plan(app)
    assert plan.ext_vars == {"a": "shop"}
    assert plan.ext_codes == {"b": "{x: '$'}"}
    assert plan.tla_vars == {"c": "shop-1"} and plan.tla_codes == {}


def test_a_variable_given_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "main.jsonnet").write_text("{}")
    app = App(path=tmp_path, options={"jsonnet": {"tlas": [
        {"name": "a", "value": "1"}, {"name": "a", "value": "2", "code": True}]}})
    with pytest.raises(ConfigError, match="'a' is given twice"):
        make_plan(app)


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    (tmp_path / "main.jsonnet").write_text("{}")
    app = App(path=tmp_path, options={"jsonnet": {"extVars": [{"name": "a", "val": "1"}]}})
    with pytest.raises(ConfigError, match="val"):
        make_plan(app)
