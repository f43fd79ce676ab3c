"""The app spec: kiln.yaml schema checks, flag precedence, source root."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kiln import App, Engine
from kiln.core.errors import ConfigError


@pytest.fixture
def engine(cache_dir: Path) -> Engine:
    return Engine(cache_dir=cache_dir, entry_points=False)


def test_kiln_yaml_is_loaded_and_flags_win(tmp_path: Path, engine: Engine) -> None:
    (tmp_path / "kiln.yaml").write_text(
        "type: directory\nnamespace: from-file\nname: file-name\n"
        "directory:\n  recurse: true\n  include: '*.yaml'\n"
    )
    app = engine.load_app(tmp_path, {"namespace": "from-flag", "directory": {"include": "x*"}})
    assert app.namespace == "from-flag"
    assert app.name == "file-name"
    opts = app.options["directory"]
    assert opts.recurse is True and opts.include == "x*"


@pytest.mark.parametrize(("content", "expected"), [
    ("colour: blue\n", "unknown key 'colour'"),
    ("directory:\n  recursive: true\n", "unknown key 'directory.recursive'"),
    ("secrets:\n  nosuch: {}\n", "unknown key 'secrets.nosuch'"),
    ("directory:\n  recurse: [1]\n", "directory.recurse"),
    ("namespace: [a]\n", "'namespace' must be a string"),
])
def test_schema_errors_name_the_key_and_the_file(
    tmp_path: Path, engine: Engine, content: str, expected: str
) -> None:
    (tmp_path / "kiln.yaml").write_text(content)
    with pytest.raises(ConfigError) as err:
        engine.load_app(tmp_path)
    assert expected in err.value.message
    assert err.value.source == str(tmp_path / "kiln.yaml")


def test_unknown_type_lists_known_renderers(tmp_path: Path, engine: Engine) -> None:
    with pytest.raises(ConfigError, match=r"unknown app type 'nope' \(known: .*directory"):
        engine.render(App(path=tmp_path, type="nope"))


def test_source_root_is_the_git_work_tree(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    app_dir = tmp_path / "apps" / "one"
    app_dir.mkdir(parents=True)
    assert App(path=app_dir).source_root == tmp_path
    assert App(path=app_dir, source_root=app_dir).source_root == app_dir


def test_source_root_without_git_is_the_app_dir(tmp_path: Path) -> None:
    assert App(path=tmp_path).source_root == tmp_path


def test_app_is_frozen(tmp_path: Path) -> None:
    app = App(path=tmp_path)
    with pytest.raises(AttributeError):
        app.namespace = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        app.options["directory"] = {}  # type: ignore[index]
