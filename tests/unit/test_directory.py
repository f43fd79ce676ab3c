"""The plain-directory renderer: Argo CD's directory-app semantics."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kiln import App, Engine
from kiln.core.errors import InputError


def cm(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


def names(engine: Engine, app: App) -> list[str]:
    return [o["metadata"]["name"] for o in engine.render(app).objects]


@pytest.fixture
def engine(cache_dir: Path) -> Engine:
    return Engine(cache_dir=cache_dir, entry_points=False)


def test_reads_yaml_yml_json_in_lexical_order(tmp_path: Path, engine: Engine) -> None:
    (tmp_path / "b.yaml").write_text(cm("b1") + "---\n" + cm("b2"))
    (tmp_path / "a.yml").write_text(cm("a"))
    (tmp_path / "c.json").write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                                 "metadata": {"name": "c"}}))
    (tmp_path / "d.json").write_text(json.dumps([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d1"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d2"}},
    ]))
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / "kiln.yaml").write_text("type: directory\n")
    assert names(engine, App(path=tmp_path)) == ["a", "b1", "b2", "c", "d1", "d2"]


def test_recurse_is_off_by_default(tmp_path: Path, engine: Engine) -> None:
    (tmp_path / "top.yaml").write_text(cm("top"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.yaml").write_text(cm("deep"))
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config.yaml").write_text(cm("git"))
    assert names(engine, App(path=tmp_path)) == ["top"]
    recursive = App(path=tmp_path, options={"directory": {"recurse": True}})
    assert names(engine, recursive) == ["deep", "top"]


def test_include_and_exclude_globs_with_alternatives(tmp_path: Path, engine: Engine) -> None:
    for name in ("app.yaml", "db.yaml", "test.yaml"):
        (tmp_path / name).write_text(cm(name.split(".")[0]))
    (tmp_path / "extra.json").write_text(
        '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "extra"}}')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "app.yaml").write_text(cm("subapp"))
    opts = {"recurse": True, "include": "{app,db,sub/*}.yaml", "exclude": "*db*"}
    assert names(engine, App(path=tmp_path, options={"directory": opts})) == ["app", "subapp"]
    only_json = {"include": "*.json"}
    assert names(engine, App(path=tmp_path, options={"directory": only_json})) == ["extra"]


def test_skip_marker_and_empty_documents(tmp_path: Path, engine: Engine) -> None:
    (tmp_path / "a.yaml").write_text("# +argocd:skip-file-rendering\n" + cm("skipped"))
    (tmp_path / "b.yaml").write_text("---\n---\n" + cm("kept") + "---\n")
    (tmp_path / "c.yaml").write_text("")
    assert names(engine, App(path=tmp_path)) == ["kept"]


def test_combined_size_cap(tmp_path: Path, engine: Engine) -> None:
    (tmp_path / "a.yaml").write_text(cm("a") + "data:\n  x: '" + "x" * 600 + "'\n")
    (tmp_path / "b.yaml").write_text(cm("b") + "data:\n  x: '" + "x" * 600 + "'\n")
    small = App(path=tmp_path, options={"directory": {"maxCombinedBytes": 1000}})
    with pytest.raises(InputError, match="combined size limit of 1000"):
        engine.render(small)
    assert len(engine.render(App(path=tmp_path)).objects) == 2


def test_symlink_out_of_source_root_is_refused(tmp_path: Path, engine: Engine) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(cm("secret-stuff"))
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "link.yaml").symlink_to(outside)
    with pytest.raises(InputError) as err:
        engine.render(App(path=app_dir))
    assert "outside the source root" in err.value.message
    assert err.value.source is not None and err.value.source.endswith("link.yaml")
    # With the parent as the source root the same link is allowed.
    assert names(engine, App(path=app_dir, source_root=tmp_path)) == ["secret-stuff"]


def test_symlink_inside_root_is_followed(tmp_path: Path, engine: Engine) -> None:
    (tmp_path / "real.yaml.txt").write_text(cm("via-link"))
    os.symlink("real.yaml.txt", tmp_path / "link.yaml")
    assert names(engine, App(path=tmp_path)) == ["via-link"]
