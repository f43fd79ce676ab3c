"""Declared faces: what the registry's renderers and resolvers declare, how kiln checks it,
and the README flag table matching the declarations."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kiln.core.errors import PluginError
from kiln.core.faces import (
    CORE,
    Entry,
    Faces,
    Flag,
    Parameter,
    all_flags,
    all_tools,
    declared,
    faces_of,
    load_plugins,
    set_option,
)
from kiln.core.registry import RendererRegistry, ResolverRegistry
from tests.helpers import REPO, assert_clean_failure, run_kiln


class _Plugins:
    """A registry pair as :func:`declared` reads it (renderers, resolvers, describe())."""

    def __init__(self, *items: Any) -> None:
        self.renderers = RendererRegistry()
        self.resolvers = ResolverRegistry()
        for item in items:
            self.renderers.items[item.name] = item
            self.renderers.owners[item.name] = item.name

    def describe(self) -> list[Any]:
        return [SimpleNamespace(name=name) for name in self.renderers]


def _renderer(name: str, faces: Any) -> Any:
    return SimpleNamespace(name=name, faces=faces)


def test_a_flag_declared_twice_names_both_declarations() -> None:
    one = _renderer("one", Faces(flags=(Flag(("--greeting",), "one.greeting"),)))
    two = _renderer("two", Faces(flags=(Flag(("-g", "--greeting"), "two.greeting"),)))
    with pytest.raises(PluginError, match=r"flag '--greeting' declared twice \(by renderer "
                                          r"'one' and renderer 'two'\)"):
        declared(_Plugins(one, two))


def test_a_plugin_flag_may_not_take_a_core_spelling() -> None:
    bad = _renderer("bad", Faces(flags=(Flag(("-n",), "bad.name"),)))
    with pytest.raises(PluginError, match=r"flag '-n' declared twice \(by core 'kiln'"):
        declared(_Plugins(bad))


def test_a_parameter_declared_twice_is_refused() -> None:
    one = _renderer("one", Faces(parameters=(Parameter("type", "one.t", "str", "T", "t"),)))
    with pytest.raises(PluginError, match="parameter 'type' declared twice"):
        declared(_Plugins(one))


def test_faces_must_be_a_faces_object() -> None:
    from kiln.core.registry import RendererRegistry

    registry = RendererRegistry()  # a plugin without 'faces' gets the base class's default
    assert faces_of(SimpleNamespace(name="plain"), registry) == Faces()
    with pytest.raises(PluginError, match=r"'odd': 'faces' must be a kiln\.core\.faces\.Faces"):
        faces_of(SimpleNamespace(name="odd", faces={"flags": []}), registry)


def test_declarations_come_in_load_order_core_first() -> None:
    found = declared(load_plugins({"KILN_CACHE_DIR": "/nonexistent-kiln-cache"}))
    assert found[0].declares is CORE
    renderers = [d.name for d in found if d.kind == "renderer"]
    assert renderers == ["helm", "kustomize", "jsonnet", "directory"]
    assert all_tools(found) == ["helm", "kubectl", "kustomize", "jsonnet", "sops"]


def test_disabled_plugin_declares_nothing() -> None:
    env = {"KILN_CACHE_DIR": "/nonexistent-kiln-cache", "KILN_DISABLE_PLUGINS": "helm"}
    names = {n for f in all_flags(declared(load_plugins(env))) for n in f.names}
    assert "--release-name" not in names and "--nameprefix" in names


def test_entries_extend_what_another_declaration_put_there() -> None:
    settings: dict[str, Any] = {}
    set_option(settings, ("helm", "parameters"), [{"name": "a", "value": "1"}])
    set_option(settings, ("helm", "parameters"), [{"name": "b", "value": "2",
                                                    "forceString": True}])
    set_option(settings, ("helm", "releaseName"), "r")
    assert settings == {"helm": {"parameters": [{"name": "a", "value": "1"},
                                                {"name": "b", "value": "2",
                                                 "forceString": True}],
                                 "releaseName": "r"}}


def test_parameter_collection_follows_shape() -> None:
    def of(shape: Any) -> str:
        return Parameter("x", "a.b", shape, "t", "t", entry=Entry()).collection

    assert [of(s) for s in ("str", "int", "bool", "list", "map", "entries")] == [
        "string", "string", "string", "array", "map", "map"]


def test_a_clashing_third_party_flag_is_one_clean_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "kiln_clash").mkdir(parents=True)
    (site / "kiln_clash" / "__init__.py").write_text(
        "from kiln import hookimpl\nfrom kiln.core.faces import Faces, Flag\n"
        "class R:\n    name = 'clash'\n    version = '1'\n    priority = 1\n"
        "    options_type = None\n"
        "    faces = Faces(flags=(Flag(('--set',), 'clash.set'),))\n"
        "    def detect(self, app): return False\n"
        "    def tool_version(self, ctx): return ''\n"
        "    def inputs(self, app, ctx): raise AssertionError\n"
        "    def render(self, app, ctx): raise AssertionError\n"
        "@hookimpl\ndef kiln_register_renderers(registry):\n    registry.add(R())\n")
    info = site / "kiln_clash-1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kiln-clash\nVersion: 1\n")
    (info / "entry_points.txt").write_text("[kiln]\nclash = kiln_clash\n")
    proc = run_kiln("render", str(tmp_path), env={"PYTHONPATH": f"{REPO}:{site}",
                                                  "KILN_CACHE_DIR": str(tmp_path / "c")})
    assert_clean_failure(proc, "flag '--set' declared twice (by renderer 'helm' and renderer "
                               "'clash')")


def test_readme_flag_table_matches_the_declarations() -> None:
    """Each README row lists exactly the flags its renderer (``any``: kiln itself;
    ``secrets``: the secret resolvers) declares, besides the CLI's own ``--source-root``."""
    rows: dict[str, set[str]] = {}
    for line in (REPO / "README.md").read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if len(cells) == 2 and line.startswith("| ") and "`" in cells[1]:
            rows[cells[0]] = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", cells[1]))
    expected: dict[str, set[str]] = {}
    for item in declared(load_plugins({"KILN_CACHE_DIR": "/nonexistent-kiln-cache"})):
        row = {"core": "any", "secret resolver": "secrets"}.get(item.kind, item.name)
        for flag in item.declares.flags:
            expected.setdefault(row, set()).update(flag.names)
    expected["any"].add("--source-root")
    assert {k: rows.get(k) for k in expected} == expected


def test_fast_path_stamps_the_tools_plugins_declare(tmp_path: Path) -> None:
    """The memo holds a stamp for every declared tool beside Python (absent ones as absent),
    not a hard-coded list: a third-party plugin's tool is there, a disabled plugin's is not."""
    import sys

    from kiln.cmp.fastpath import _declared_tools
    from kiln.core.engine import Engine
    from kiln.core.hookspecs import hookimpl

    class Plugin:
        @hookimpl
        def kiln_register_renderers(self, registry: RendererRegistry) -> None:
            registry.add(SimpleNamespace(
                name="tooled", version="1", priority=1, options_type=None,
                detect=None, tool_version=None, inputs=None, render=None,
                faces=Faces(tools=("kiln-faces-no-such-tool",))))

    engine = Engine(cache_dir=tmp_path, entry_points=False, plugins=[Plugin()],
                    env={"KILN_DISABLE_PLUGINS": "secrets_sops"})
    stamps = {Path(path).name: (size, mtime) for path, size, mtime in _declared_tools(engine)}
    assert stamps["kiln-faces-no-such-tool"] == (None, None)
    assert "sops" not in stamps and "helm" in stamps
    helm = Path(sys.executable).parent / "helm"  # .ci/install puts the real helm there
    assert stamps["helm"] == (helm.stat().st_size, helm.stat().st_mtime_ns)
