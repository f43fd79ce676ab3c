"""The cache-key contract: every part of the engine's key, changed in turn, is a miss for the
engine (``Engine.render``) *and* for the CLI's fast path (the real ``kiln render`` run twice),
each time next to a positive control (the unchanged repeat is a hit).

The fast path says why it decided (``KILN_DEBUG_FASTPATH=1``), so each miss is asserted with
its reason; the output after each change is checked against values the test wrote.
"""

from __future__ import annotations

import datetime
import importlib.util
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import kiln
import kiln._version
from kiln.core.digest import canonical_json
from kiln.core.engine import Engine
from kiln.core.errors import InputError, PluginError
from kiln.plugins.directory import DirectoryOptions
from kiln.plugins.jsonnet.options import JsonnetOptions, JsonnetVar
from tests.helpers import REPO

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  v: '{value}'\n"

PLUGIN = '''
from kiln.core.hookspecs import hookimpl
from kiln.core.registry import Inputs

VERSION = {version!r}
OUTPUT = {output!r}
TOOL = {tool!r}


class ContractRenderer:
    name = "contract"
    priority = 100
    options_type = None
    version = VERSION

    def detect(self, app):
        return (app.path / "contract.txt").is_file()

    def tool_version(self, ctx):
        return ctx.tool_versions.get(TOOL, ["version"])

    def inputs(self, app, ctx):
        return Inputs(files=[app.path / "contract.txt"])

    def render(self, app, ctx):
        data = (app.path / "contract.txt").read_text().strip()
        return [{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "contract"}},
                 "data": {{"input": data, "output": OUTPUT, "version": VERSION}}}}]


@hookimpl
def kiln_register_renderers(registry):
    registry.add(ContractRenderer())
'''

@dataclass
class Run:
    """One ``kiln render`` run: its process and what the fast path said."""

    proc: subprocess.CompletedProcess[str]

    @property
    def decision(self) -> str:
        """``hit`` or ``miss: <reason>``, from the fast path's debug line."""
        for line in self.proc.stderr.splitlines():
            if line.startswith("kiln: fastpath: ") and not line.startswith(
                    ("kiln: fastpath: recorded", "kiln: fastpath: not recorded")):
                return line[len("kiln: fastpath: "):]
        raise AssertionError(f"no fast-path decision in {self.proc.stderr!r}")

    def objects(self) -> list[dict[str, Any]]:
        assert self.proc.returncode == 0, self.proc.stderr
        return [d for d in yaml.safe_load_all(self.proc.stdout) if d]


def render(app: Path, cache: Path, *, path: tuple[Path, ...] = (), cwd: Path | None = None
           ) -> Run:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (*path, REPO))),
           "KILN_DEBUG_FASTPATH": "1"}
    env.pop("ARGOCD_APP_NAME", None)
    proc = subprocess.run([sys.executable, "-m", "kiln", "render", str(app), "--cache-dir",
                           str(cache)], env=env, cwd=cwd or app.parent, capture_output=True,
                          text=True,
                          timeout=120)
    return Run(proc)


def prime(app: Path, cache: Path, **kw: Any) -> Run:
    """Render twice: the first run records a memo, the second (positive control) is served."""
    first = render(app, cache, **kw)
    assert first.proc.returncode == 0, first.proc.stderr
    assert "kiln: fastpath: recorded" in first.proc.stderr, first.proc.stderr
    second = render(app, cache, **kw)
    assert second.decision == "hit", second.proc.stderr
    assert second.proc.stdout == first.proc.stdout
    return second


def engine_prime(engine: Any, app: Path) -> str:
    """Render twice in process: a miss, then a hit with the same key; return the key."""
    first = engine().render(engine().load_app(app))
    second = engine().render(engine().load_app(app))
    assert not first.cache_hit and second.cache_hit and first.key == second.key
    assert first.key is not None
    return first.key


def engine_miss(engine: Any, app: Path, old_key: str) -> list[dict[str, Any]]:
    result = engine().render(engine().load_app(app))
    assert not result.cache_hit and result.key != old_key
    return result.objects


def data(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o.get("data", {}) for o in objects]


# -- a third-party renderer, installed as a distribution with a `kiln` entry point -----------

@dataclass
class Plugin:
    site: Path
    tool: Path

    def write(self, version: str, output: str) -> None:
        pkg = self.site / "kiln_contract"
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text(PLUGIN.format(version=version, output=output,
                                                       tool=str(self.tool)))

    def install(self, dist_version: str) -> None:
        for old in self.site.glob("kiln_contract-*.dist-info"):
            shutil.rmtree(old)
        info = self.site / f"kiln_contract-{dist_version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: kiln-contract\nVersion: {dist_version}\n")
        (info / "entry_points.txt").write_text("[kiln]\ncontract = kiln_contract\n")

    def module(self) -> ModuleType:
        """The plugin module as it is on disk now (a fresh module object each time)."""
        spec = importlib.util.spec_from_file_location(
            "kiln_contract_lib", self.site / "kiln_contract" / "__init__.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


@pytest.fixture
def plugin(tmp_path: Path) -> Plugin:
    tool = tmp_path / "bin" / "contract-tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho contract-tool 1\n")
    tool.chmod(0o755)
    found = Plugin(tmp_path / "site", tool)
    found.write("1.0", "one")
    found.install("1.0")
    return found


@pytest.fixture
def contract_app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "contract.txt").write_text("in-1\n")
    return app


def test_third_party_renderer_version(plugin: Plugin, contract_app: Path, tmp_path: Path
                                      ) -> None:
    cache = tmp_path / "cli-cache"
    before = prime(contract_app, cache, path=(plugin.site,))
    assert data(before.objects()) == [{"input": "in-1", "output": "one", "version": "1.0"}]

    def engine() -> Engine:
        return Engine(cache_dir=tmp_path / "engine-cache", entry_points=False,
                      plugins=[plugin.module()])

    key = engine_prime(engine, contract_app)
    plugin.write("2.0.0", "two")  # a new release: another version, another output
    assert data(engine_miss(engine, contract_app, key)) == [
        {"input": "in-1", "output": "two", "version": "2.0.0"}]
    after = render(contract_app, cache, path=(plugin.site,))
    assert after.decision.startswith("miss: plugin code "), after.decision
    assert "kiln_contract/__init__.py changed" in after.decision
    assert data(after.objects()) == [{"input": "in-1", "output": "two", "version": "2.0.0"}]


def test_plugin_distribution_version(plugin: Plugin, contract_app: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The distribution is upgraded (its metadata), its code left as it was."""
    cache = tmp_path / "cli-cache"
    prime(contract_app, cache, path=(plugin.site,))
    # Installed like a distribution: not first on sys.path (that is the script's directory).
    monkeypatch.setattr(sys, "path", [sys.path[0], str(plugin.site), *sys.path[1:]])
    importlib.invalidate_caches()
    monkeypatch.delitem(sys.modules, "kiln_contract", raising=False)

    def engine() -> Engine:
        return Engine(cache_dir=tmp_path / "engine-cache")

    try:
        key = engine_prime(engine, contract_app)
        assert engine().key_recipe(engine().load_app(contract_app)).plugin["version"] == "1.0"
        plugin.install("1.1")
        engine_miss(engine, contract_app, key)
        assert engine().key_recipe(engine().load_app(contract_app)).plugin["version"] == "1.1"
    finally:
        sys.modules.pop("kiln_contract", None)
    after = render(contract_app, cache, path=(plugin.site,))
    assert after.decision.startswith("miss: plugin code "), after.decision
    assert "METADATA changed" in after.decision
    assert data(after.objects())[0]["version"] == "1.0"


def test_tool_binary_stamp(plugin: Plugin, contract_app: Path, tmp_path: Path) -> None:
    """The tool is replaced by another build that prints the same version."""
    cache = tmp_path / "cli-cache"
    prime(contract_app, cache, path=(plugin.site,))

    def engine() -> Engine:
        return Engine(cache_dir=tmp_path / "engine-cache", entry_points=False,
                      plugins=[plugin.module()])

    key = engine_prime(engine, contract_app)
    recipe = engine().key_recipe(engine().load_app(contract_app))
    assert recipe.tool == "contract-tool 1"
    assert [t.path for t in recipe.tools] == [os.path.realpath(plugin.tool)]
    plugin.tool.write_text("#!/bin/sh\n# rebuilt\necho contract-tool 1\n")
    engine_miss(engine, contract_app, key)
    assert engine().key_recipe(engine().load_app(contract_app)).tool == "contract-tool 1"
    after = render(contract_app, cache, path=(plugin.site,))
    assert after.decision == f"miss: tool {os.path.realpath(plugin.tool)} changed"
    assert after.proc.returncode == 0


# -- input files, symlinks -------------------------------------------------------------------

def _engine_for(tmp_path: Path) -> Any:
    return lambda: Engine(cache_dir=tmp_path / "engine-cache", entry_points=False)


def test_input_file_content(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "a.yaml").write_text(CM.format(name="a", value="1"))
    cache = tmp_path / "cli-cache"
    prime(app, cache)
    engine = _engine_for(tmp_path)
    key = engine_prime(engine, app)
    (app / "a.yaml").write_text(CM.format(name="a", value="2"))
    assert data(engine_miss(engine, app, key)) == [{"v": "2"}]
    after = render(app, cache)
    assert after.decision == "miss: input a.yaml changed"
    assert data(after.objects()) == [{"v": "2"}]


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    """repo/app/link.yaml -> ../shared/one.yaml, inside a git work tree (the source root)."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "shared").mkdir()
    (repo / "shared" / "one.yaml").write_text(CM.format(name="linked", value="one"))
    (repo / "shared" / "two.yaml").write_text(CM.format(name="linked", value="two"))
    (repo / "app").mkdir()
    (repo / "app" / "link.yaml").symlink_to("../shared/one.yaml")
    return repo / "app"


def test_symlink_retargeted_inside_the_root(linked: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cli-cache"
    assert data(prime(linked, cache).objects()) == [{"v": "one"}]
    engine = _engine_for(tmp_path)
    key = engine_prime(engine, linked)
    (linked / "link.yaml").unlink()
    (linked / "link.yaml").symlink_to("../shared/two.yaml")
    assert data(engine_miss(engine, linked, key)) == [{"v": "two"}]
    after = render(linked, cache)
    assert after.decision == "miss: input link.yaml now resolves to another file"
    assert data(after.objects()) == [{"v": "two"}]


def test_symlink_retargeted_outside_the_root_is_refused(linked: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cli-cache"
    prime(linked, cache)
    engine = _engine_for(tmp_path)
    engine_prime(engine, linked)
    outside = tmp_path / "outside.yaml"
    outside.write_text(CM.format(name="linked", value="outside"))
    (linked / "link.yaml").unlink()
    (linked / "link.yaml").symlink_to(outside)
    with pytest.raises(InputError, match="outside the source root"):
        engine().render(engine().load_app(linked))
    after = render(linked, cache)
    assert after.decision == "miss: input link.yaml resolves outside the source root"
    assert after.proc.returncode == 1 and after.proc.stdout == ""
    errors = [ln for ln in after.proc.stderr.splitlines() if ln.startswith("kiln: error: ")]
    assert len(errors) == 1 and "outside the source root" in errors[0]
    assert "Traceback" not in after.proc.stderr


# -- jsonnet: files imported by ext-code and TLA code, std.thisFile --------------------------

JSONNET_CM = ("{apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: 'j'}, "
              "data: %s}\n")


@pytest.mark.parametrize("kind", ["extVars", "tlas"])
def test_file_imported_by_code_variables(tmp_path: Path, kind: str) -> None:
    app = tmp_path / "app"
    app.mkdir()
    if kind == "extVars":
        (app / "main.jsonnet").write_text(JSONNET_CM % "std.extVar('cfg')")
    else:
        (app / "main.jsonnet").write_text("function(cfg) " + JSONNET_CM % "cfg")
    (app / "kiln.yaml").write_text(textwrap.dedent(f"""\
        jsonnet:
          {kind}:
            - name: cfg
              code: true
              value: "import 'cfg.libsonnet'"
        """))
    (app / "cfg.libsonnet").write_text("{v: '1'}\n")
    cache = tmp_path / "cli-cache"
    assert data(prime(app, cache).objects()) == [{"v": "1"}]
    engine = _engine_for(tmp_path)
    key = engine_prime(engine, app)
    (app / "cfg.libsonnet").write_text("{v: '2'}\n")
    assert data(engine_miss(engine, app, key)) == [{"v": "2"}]
    after = render(app, cache)
    assert after.decision == "miss: input cfg.libsonnet changed"
    assert data(after.objects()) == [{"v": "2"}]


def test_this_file_keys_the_render_by_location(tmp_path: Path) -> None:
    """std.thisFile is the entry's absolute path (as in Argo CD): a copy elsewhere must not be
    served the first copy's path."""
    one = tmp_path / "one" / "app"
    one.mkdir(parents=True)
    (one / "main.jsonnet").write_text(JSONNET_CM % "{file: std.thisFile}")
    two = tmp_path / "two" / "app"
    shutil.copytree(one, two)
    cache = tmp_path / "cli-cache"
    assert data(prime(one, cache).objects()) == [{"file": str(one / "main.jsonnet")}]
    engine = _engine_for(tmp_path)
    key = engine_prime(engine, one)
    assert data(engine_miss(engine, two, key)) == [{"file": str(two / "main.jsonnet")}]
    after = render(two, cache)
    assert after.decision == f"miss: the render depends on the app's location ({one}), not {two}"
    assert data(after.objects()) == [{"file": str(two / "main.jsonnet")}]
    # Positive control: a location-free program copied elsewhere is one key and one memo.
    (one / "main.jsonnet").write_text(JSONNET_CM % "{file: 'none'}")
    shutil.copy(one / "main.jsonnet", two / "main.jsonnet")
    prime(one, cache)
    assert render(two, cache).decision == "hit"
    assert engine().render(engine().load_app(two)).key == \
        engine().render(engine().load_app(one)).key


# -- options ---------------------------------------------------------------------------------

def test_option_value(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "a.yaml").write_text(CM.format(name="a", value="a"))
    (app / "b.yaml").write_text(CM.format(name="b", value="b"))
    (app / "kiln.yaml").write_text("directory:\n  include: a.yaml\n")
    cache = tmp_path / "cli-cache"
    assert data(prime(app, cache).objects()) == [{"v": "a"}]
    engine = _engine_for(tmp_path)
    key = engine_prime(engine, app)
    (app / "kiln.yaml").write_text("directory:\n  include: b.yaml\n")
    assert data(engine_miss(engine, app, key)) == [{"v": "b"}]
    after = render(app, cache)
    assert after.decision == "miss: no memo for this request"  # kiln.yaml names the memo
    assert data(after.objects()) == [{"v": "b"}]


def test_options_enter_the_key_normalised(tmp_path: Path) -> None:
    from kiln.core.app import App

    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "a.yaml").write_text(CM.format(name="a", value="a"))
    engine = Engine(cache_dir=tmp_path / "c", entry_points=False)

    def key(**options: Any) -> str | None:
        return engine.key_recipe(App(path=app_dir, options=options)).key

    default = key()
    assert default is not None
    assert key(directory={}) == default
    assert key(directory=DirectoryOptions()) == default
    assert key(directory={"recurse": False}) == default  # a default value, spelt out
    assert key(jsonnet=JsonnetOptions()) == default  # another renderer's default section
    recurse = key(directory={"recurse": True})
    assert recurse != default
    assert key(directory=DirectoryOptions(recurse=True)) == recurse
    var = JsonnetVar(name="a", value="b")
    assert key(jsonnet={"extVars": [{"name": "a", "value": "b"}]}) == \
        key(jsonnet=JsonnetOptions(ext_vars=(var,)))
    assert key(jsonnet=JsonnetOptions(ext_vars=(var,))) != default


def test_canonical_json_is_strict() -> None:
    assert canonical_json({"b": [1, 2.5, None, True], "a": "x"}) == \
        b'{"a":"x","b":[1,2.5,null,true]}'
    assert canonical_json({"t": (1, 2)}) == canonical_json({"t": [1, 2]})
    # A YAML timestamp and the string of the same text are different values.
    assert canonical_json({"d": datetime.date(2020, 1, 2)}) != canonical_json({"d": "2020-01-02"})
    for bad, where in (({"p": Path("x")}, "key.p"), ({"s": {1, 2}}, "key.s"),
                       ({"n": math.nan}, "key.n"), ({"k": {1: "a"}}, "key.k"),
                       ({"o": [object()]}, "key.o[0]")):
        with pytest.raises(PluginError, match=re.escape(f"cache key part {where} ")):
            canonical_json(bad)


def test_a_key_part_without_json_form_is_a_clean_error(tmp_path: Path) -> None:
    from kiln.core.hookspecs import hookimpl
    from kiln.core.registry import Inputs

    class Sloppy:
        name, version, priority, options_type = "sloppy", "1", 100, None

        def detect(self, app: Any) -> bool:
            return True

        def tool_version(self, ctx: Any) -> str:
            return ""

        def inputs(self, app: Any, ctx: Any) -> Inputs:
            return Inputs(extra={"where": app.path})  # a Path: no canonical JSON form

        def render(self, app: Any, ctx: Any) -> list[dict[str, Any]]:
            return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}}]

    class SloppyPlugin:
        __name__ = "sloppy"

        @hookimpl
        def kiln_register_renderers(self, registry: Any) -> None:
            registry.add(Sloppy())

    engine = Engine(cache_dir=tmp_path / "c", entry_points=False, plugins=[SloppyPlugin()])
    with pytest.raises(PluginError, match=r"cache key part key\.extra\.where holds a PosixPath"):
        engine.render(engine.load_app(tmp_path))


def test_kiln_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "a.yaml").write_text(CM.format(name="a", value="a"))
    engine = _engine_for(tmp_path)
    key = engine_prime(engine, app)
    monkeypatch.setattr(kiln._version, "__version__", "99.0.0-contract")
    engine_miss(engine, app, key)
    monkeypatch.undo()
    # The CLI: a copy of kiln whose version is bumped in place.
    copy = tmp_path / "kiln-copy"
    shutil.copytree(REPO / "kiln", copy / "kiln", ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cli-cache"
    prime(app, cache, path=(copy,))
    entries = sorted((cache / "objects").rglob("*"))
    init = copy / "kiln" / "_version.py"
    init.write_text(init.read_text().replace(f'__version__ = "{kiln.__version__}"',
                                             '__version__ = "99.0.0-contract"'))
    after = render(app, cache, path=(copy,))
    assert after.decision == "miss: no memo for this request"  # kiln's code names the memo
    assert data(after.objects()) == [{"v": "a"}]
    # The engine missed too: the run stored a second entry under a new key.
    assert len(sorted((cache / "objects").rglob("*"))) > len(entries)


# -- fuzz: the memo reader and canonical JSON ------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_canonical_json_round_trips_plain_data(value: Any) -> None:
    import json

    text = canonical_json({"v": value})
    assert json.loads(text) == {"v": value}
    assert canonical_json(json.loads(text)) == text  # one form per value


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["", "hmac-key-of-32-bytes-0123456789"]))
def test_no_memo_bytes_crash_or_get_served(blob: bytes, key: str) -> None:
    import tempfile

    from kiln.cmp import fastpath

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "app").mkdir()
        env = {"KILN_CACHE_DIR": str(base / "cache"), "KILN_CACHE_HMAC_KEY": key}
        request = fastpath.request_for(["render", "app"], env, cwd=base)
        assert request is not None
        memo = fastpath._memo_path(request, env)
        memo.parent.mkdir(parents=True)
        memo.write_bytes(blob)
        outcome = fastpath.check(request, env)
        assert not outcome.ok and outcome.text is None and outcome.reason
        # Sealed properly, a body that is not a memo is still refused, never served.
        memo.write_bytes(fastpath._seal(blob, env))
        outcome = fastpath.check(request, env)
        assert not outcome.ok and outcome.text is None
