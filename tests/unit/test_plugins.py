"""Plugin loading: real entry points, broken plugins, strict mode, disabling, hook docs."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import pytest
import yaml

from kiln import App, Engine
from kiln.core import hookspecs
from kiln.core.errors import PluginError
from kiln.core.hookspecs import hookimpl
from tests.helpers import REPO, assert_clean_failure, run_kiln

HELLO_PLUGIN = '''
from kiln import Inputs, hookimpl


class HelloRenderer:
    name = "hello"
    version = "1.2.3"
    priority = 5
    options_type = None

    def detect(self, app):
        return (app.path / "hello.txt").exists()

    def tool_version(self, ctx):
        return ""

    def inputs(self, app, ctx):
        return Inputs(files=[app.path / "hello.txt"])

    def render(self, app, ctx):
        text = (app.path / "hello.txt").read_text().strip()
        return [{"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "hello"}, "data": {"greeting": text}}]


@hookimpl
def kiln_register_renderers(registry):
    registry.add(HelloRenderer())
'''


def install_dist(site: Path, dist: str, version: str, module: str, code: str | None,
                 entry: str) -> None:
    """Install a distribution the way pip would: a package plus a dist-info with entry points."""
    if code is not None:
        (site / module).mkdir()
        (site / module / "__init__.py").write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[kiln]\n{entry}\n")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    install_dist(path, "kiln-hello", "1.2.3", "kiln_hello", HELLO_PLUGIN, "hello = kiln_hello")
    return path


@pytest.fixture
def hello_app(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    (path / "hello.txt").write_text("hi there\n")
    return path


def env_with(site: Path, **extra: str) -> dict[str, str]:
    return {"PYTHONPATH": f"{REPO}:{site}", **extra}


def test_entry_point_plugin_is_discovered_and_used(site: Path, hello_app: Path,
                                                   cache_dir: Path) -> None:
    listing = run_kiln("plugins", env=env_with(site))
    assert listing.returncode == 0, listing.stderr
    assert "hello 1.2.3 (kiln-hello): renderer hello" in listing.stdout
    assert "directory" in listing.stdout
    proc = run_kiln("render", str(hello_app), "--cache-dir", str(cache_dir), env=env_with(site))
    assert proc.returncode == 0, proc.stderr
    (obj,) = yaml.safe_load_all(proc.stdout)
    assert obj["data"] == {"greeting": "hi there"}


def test_broken_entry_point_is_a_warning_not_a_crash(site: Path, hello_app: Path,
                                                     cache_dir: Path) -> None:
    install_dist(site, "kiln-broken", "0.1", "kiln_broken", "raise RuntimeError('boom')\n",
                 "broken = kiln_broken")
    install_dist(site, "kiln-missing", "0.2", "unused", None, "missing = no_such_module")
    proc = run_kiln("render", str(hello_app), "--cache-dir", str(cache_dir), env=env_with(site))
    assert proc.returncode == 0, proc.stderr
    assert "greeting: hi there" in proc.stdout
    assert "'broken' from distribution 'kiln-broken' failed to load" in proc.stderr
    assert "'missing' from distribution 'kiln-missing'" in proc.stderr
    listing = run_kiln("plugins", env=env_with(site))
    assert listing.returncode == 0 and "hello 1.2.3" in listing.stdout
    strict = run_kiln("render", str(hello_app), "--cache-dir", str(cache_dir),
                      env=env_with(site, KILN_STRICT_PLUGINS="1"))
    assert_clean_failure(strict, "kiln-broken")


def test_disabled_plugins_are_blocked(site: Path, hello_app: Path, cache_dir: Path) -> None:
    proc = run_kiln("render", str(hello_app), "--type", "hello", "--cache-dir", str(cache_dir),
                    env=env_with(site, KILN_DISABLE_PLUGINS="hello, other"))
    assert_clean_failure(proc, "unknown app type 'hello'")
    listing = run_kiln("plugins", env=env_with(site, KILN_DISABLE_PLUGINS="directory"))
    assert "hello 1.2.3" in listing.stdout and "directory" not in listing.stdout


def test_duplicate_renderer_name_is_a_start_up_error(tmp_path: Path, cache_dir: Path) -> None:
    class Clash:
        @staticmethod
        @hookimpl
        def kiln_register_renderers(registry: object) -> None:
            from kiln.plugins.directory import DirectoryRenderer

            registry.add(DirectoryRenderer())  # type: ignore[attr-defined]

    engine = Engine(cache_dir=cache_dir, entry_points=False, plugins=[Clash()])
    with pytest.raises(PluginError, match="'directory' registered twice"):
        engine.render(App(path=tmp_path))


def test_post_render_hook_sees_objects_after_the_cache(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")

    class Labeller:
        @staticmethod
        @hookimpl
        def kiln_post_render(app: App, objects: list[dict[str, object]]) -> None:
            for obj in objects:
                obj.setdefault("metadata", {})["labels"] = {"app": app.display_name}  # type: ignore[union-attr]

    engine = Engine(cache_dir=cache_dir, entry_points=False, plugins=[Labeller()])
    for _ in range(2):
        result = engine.render(App(path=tmp_path, name="demo"))
        assert result.objects[0]["metadata"]["labels"] == {"app": "demo"}
        assert "app: demo" in result.to_yaml()
    plain = Engine(cache_dir=cache_dir, entry_points=False).render(App(path=tmp_path, name="demo"))
    assert plain.cache_hit and "labels" not in plain.objects[0]["metadata"]


def test_every_hook_has_a_docstring_and_is_documented() -> None:
    docs = (REPO / "docs" / "plugins.md").read_text()
    hooks = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if n.startswith("kiln_")]
    assert len(hooks) >= 4
    for name in hooks:
        assert inspect.getdoc(getattr(hookspecs, name)), f"{name} has no docstring"
        assert f"### `{name}" in docs, f"{name} is not documented in docs/plugins.md"


MINIMAL_PLUGIN = '''
from kiln import Inputs, hookimpl


class Minimal:
    """Only the required members: no priority, options_type, detect or tool_version."""

    name = "minimal"
    version = "0.1"

    def inputs(self, app, ctx):
        return Inputs(files=[app.path / "words.txt"])

    def render(self, app, ctx):
        words = (app.path / "words.txt").read_text().split()
        return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": w}}
                for w in words]


@hookimpl
def kiln_register_renderers(registry):
    registry.add(Minimal())
'''


def test_renderer_with_only_the_required_members(site: Path, tmp_path: Path,
                                                 cache_dir: Path) -> None:
    """Optional members take the base class's defaults: the renderer never claims a directory
    by itself (detect is False), renders when kiln.yaml names its type, and caches."""
    install_dist(site, "kiln-minimal", "0.1", "kiln_minimal", MINIMAL_PLUGIN,
                 "minimal = kiln_minimal")
    app = tmp_path / "minimal"
    app.mkdir()
    (app / "words.txt").write_text("alpha beta\n")
    untyped = run_kiln("render", str(app), "--cache-dir", str(cache_dir), env=env_with(site))
    assert_clean_failure(untyped)  # the directory renderer finds no manifest; minimal is silent
    (app / "kiln.yaml").write_text("type: minimal\n")
    first = run_kiln("render", str(app), "--cache-dir", str(cache_dir), env=env_with(site))
    assert first.returncode == 0, first.stderr
    assert [o["metadata"]["name"] for o in yaml.safe_load_all(first.stdout)] == ["alpha", "beta"]
    engine = Engine(cache_dir=cache_dir, entry_points=False,
                    plugins=[_load(site / "kiln_minimal" / "__init__.py")])
    again = engine.render(engine.load_app(app))
    assert again.renderer == "minimal" and [o["metadata"]["name"] for o in again.objects] == [
        "alpha", "beta"]


def _load(path: Path) -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location("kiln_minimal_lib", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
