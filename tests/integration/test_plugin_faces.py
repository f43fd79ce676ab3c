"""The renderer example of docs/plugins.md, installed as a real distribution through an entry
point, gets every face from its declarations alone: a flag, a CMP parameter, an announcement,
a discovery answer and the fast path. The code is taken from the doc verbatim."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, run_kiln

DOC = REPO / "docs" / "plugins.md"
MARKER = "<!-- example: greeting-plugin -->"


def example_blocks() -> dict[str, str]:
    """The fenced blocks right after each example marker, by language."""
    text = DOC.read_text()
    blocks = re.findall(re.escape(MARKER) + r"\n```(\w+)\n(.*?)\n```", text, flags=re.S)
    return {lang: body + "\n" for lang, body in blocks}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The example installed the way pip would: its module and a dist-info whose entry point
    is the one the example's pyproject.toml declares."""
    blocks = example_blocks()
    assert set(blocks) == {"toml", "python"}, blocks.keys()
    entry_points = tomllib.loads(blocks["toml"])["project"]["entry-points"]["kiln"]
    ((name, target),) = entry_points.items()
    site = tmp_path / "site"
    module = site / target
    module.mkdir(parents=True)
    assert blocks["python"].startswith(f"# {target}/__init__.py\n")
    (module / "__init__.py").write_text(blocks["python"])
    info = site / "kiln_hello-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kiln-hello\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[kiln]\n{name} = {target}\n")
    return site


@pytest.fixture
def env(site: Path, tmp_path: Path) -> dict[str, str]:
    return {"PYTHONPATH": f"{REPO}:{site}", "KILN_CACHE_DIR": str(tmp_path / "cache")}


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    (path / "hello.txt").write_text("from the file\n")
    return path


def test_flag_is_in_the_help_and_sets_the_option(env: dict[str, str], app: Path) -> None:
    helped = run_kiln("render", "--help", env=env)
    assert helped.returncode == 0, helped.stderr
    assert re.search(r"^\s+--greeting TEXT\s+Hello: the greeting\.", helped.stdout, re.M)
    proc = run_kiln("render", str(app), "--greeting", "hi", env=env)
    assert proc.returncode == 0, proc.stderr
    (obj,) = yaml.safe_load_all(proc.stdout)
    assert obj["data"] == {"greeting": "hi", "text": "from the file\n"}
    default = run_kiln("render", str(app), env=env)
    assert default.returncode == 0, default.stderr
    assert yaml.safe_load(default.stdout)["data"]["greeting"] == "hello"


def test_parameter_is_in_plugin_yaml_and_sets_the_option(env: dict[str, str],
                                                         app: Path) -> None:
    plugin = yaml.safe_load(run_kiln("cmp", "plugin-yaml", env=env).stdout)
    static = {p["name"]: p for p in plugin["spec"]["parameters"]["static"]}
    assert static["hello-greeting"] == {
        "name": "hello-greeting", "title": "Greeting",
        "tooltip": "The greeting the ConfigMap carries.", "itemType": "string",
        "collectionType": "string"}
    params = json.dumps([{"name": "hello-greeting", "string": "bonjour"}])
    proc = run_kiln("generate", ".", cwd=app,
                    env={**env, "ARGOCD_APP_NAME": "demo", "ARGOCD_APP_PARAMETERS": params})
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout)["data"]["greeting"] == "bonjour"


def test_parameters_announce_the_current_value(env: dict[str, str], app: Path) -> None:
    (app / "kiln.yaml").write_text("hello:\n  greeting: salut\n")
    proc = run_kiln("cmp", "parameters", str(app), env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{
        "name": "hello-greeting", "title": "Greeting",
        "tooltip": "The greeting the ConfigMap carries.", "itemType": "string",
        "collectionType": "string", "string": "salut"}]


def test_discovery_answers_for_the_app(env: dict[str, str], app: Path,
                                       tmp_path: Path) -> None:
    proc = run_kiln("cmp", "discover", str(app), env=env)
    assert (proc.returncode, proc.stdout) == (0, "hello\n"), proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("no manifests\n")
    proc = run_kiln("cmp", "discover", str(empty), env=env)
    assert (proc.returncode, proc.stdout) == (1, ""), proc.stderr


def test_repeated_render_is_served_by_the_fast_path(env: dict[str, str], app: Path) -> None:
    env = {**env, "KILN_DEBUG_FASTPATH": "1"}
    first = run_kiln("render", str(app), env=env)
    assert first.returncode == 0, first.stderr
    assert "kiln: fastpath: hit" not in first.stderr
    second = run_kiln("render", str(app), env=env)
    assert second.returncode == 0, second.stderr
    assert "kiln: fastpath: hit" in second.stderr
    assert second.stdout == first.stdout
    (app / "hello.txt").write_text("changed\n")
    third = run_kiln("render", str(app), env=env)
    assert "kiln: fastpath: hit" not in third.stderr
    assert yaml.safe_load(third.stdout)["data"]["text"] == "changed\n"
