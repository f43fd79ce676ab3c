"""Capabilities: the Renderer/SecretResolver protocols list every member the engine uses, the
base classes give the optional ones their defaults, and a secret resolver that declares no
``markers`` neither switches the CLI's fast path off for apps it has nothing to do with nor
ever gets an output it would have changed served from a memo.

The fast-path tests run the real ``kiln render`` twice or more, with a resolver installed as
a real distribution with a ``kiln`` entry point on ``PYTHONPATH``; the fast path says what it
decided (``KILN_DEBUG_FASTPATH=1``) and the output is checked against values the test chose.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kiln.cmp import fastpath
from kiln.core import registry as reg
from kiln.core.engine import Engine
from kiln.core.errors import PluginError
from kiln.core.hookspecs import hookimpl
from tests.helpers import REPO

SHOUT = '''
from kiln import hookimpl

REF = "shout.example/ref"


class ShoutResolver:
    """No markers and no base class: a resolver written from the old docs."""

    name = "shout"
    order = 70
    options_type = None

    def wants(self, objects, ctx):
        # Like most resolvers, it only acts once its backend is configured.
        return bool(ctx.env.get("SHOUT_BACKEND")) and any(
            REF in ((o.get("metadata") or {}).get("annotations") or {}) for o in objects)

    def resolve(self, objects, ctx):
        backend = ctx.env["SHOUT_BACKEND"]
        out = []
        for obj in objects:
            ref = ((obj.get("metadata") or {}).get("annotations") or {}).get(REF)
            if ref is not None:
                value = ref.upper() + "-" + backend
                ctx.redactor.register(value)
                obj = {**obj, "data": {**(obj.get("data") or {}), "value": value}}
            out.append(obj)
        return out


@hookimpl
def kiln_register_secret_resolvers(registry):
    registry.add(ShoutResolver())
'''

EVERYWHERE = '''

class _Everywhere(ShoutResolver):
    def wants(self, objects, ctx):
        return True

    def resolve(self, objects, ctx):
        return [{**o, "data": {**(o.get("data") or {}), "shouted": "everywhere"}}
                for o in objects]


def kiln_register_secret_resolvers(registry):  # noqa: F811 - the new version of the plugin
    registry.add(_Everywhere())


kiln_register_secret_resolvers = hookimpl(kiln_register_secret_resolvers)
'''

PLAIN_CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata:\n  k: v\n"
REF_CM = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: wanted\n  annotations:\n"
          "    shout.example/ref: hello\ndata:\n  k: v\n")


def install(site: Path, code: str) -> None:
    """Install the ``kiln-shout`` distribution as pip would: package and dist-info."""
    (site / "kiln_shout").mkdir(parents=True, exist_ok=True)
    (site / "kiln_shout" / "__init__.py").write_text(code)
    info = site / "kiln_shout-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kiln-shout\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[kiln]\nshout = kiln_shout\n")


class Run:
    """One real ``kiln render`` run and the fast path's decision."""

    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.proc = proc
        assert proc.returncode == 0, proc.stderr

    @property
    def decision(self) -> str:
        for line in self.proc.stderr.splitlines():
            if line.startswith("kiln: fastpath: ") and not line.startswith(
                    ("kiln: fastpath: recorded", "kiln: fastpath: not recorded")):
                return line[len("kiln: fastpath: "):]
        raise AssertionError(self.proc.stderr)

    @property
    def recorded(self) -> bool:
        return "kiln: fastpath: recorded" in self.proc.stderr

    def data(self) -> list[dict[str, Any]]:
        return [d["data"] for d in yaml.safe_load_all(self.proc.stdout) if d]


def render(app: Path, cache: Path, site: Path, **env: str) -> Run:
    full = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}",
            "KILN_DEBUG_FASTPATH": "1", **env}
    for name in ("ARGOCD_APP_NAME", "SHOUT_BACKEND"):
        if name not in env:
            full.pop(name, None)
    return Run(subprocess.run(
        [sys.executable, "-m", "kiln", "render", str(app), "--cache-dir", str(cache)],
        env=full, cwd=app.parent, capture_output=True, text=True, timeout=120))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site"
    install(path, SHOUT)
    return path


def app_with(tmp_path: Path, name: str, manifest: str) -> Path:
    app = tmp_path / name
    app.mkdir()
    (app / "cm.yaml").write_text(manifest)
    return app


def test_resolver_without_markers_keeps_the_fast_path_for_other_apps(
        site: Path, tmp_path: Path) -> None:
    """Configured and loaded, the markerless resolver acts on the app holding its reference,
    and the app it has nothing to do with is still served by the fast path."""
    cache = tmp_path / "cache"
    wanted = app_with(tmp_path, "wanted", REF_CM)
    acted = render(wanted, cache, site, SHOUT_BACKEND="loud")
    assert acted.data() == [{"k": "v", "value": "HELLO-loud"}]  # the plugin is live
    assert not acted.recorded

    plain = app_with(tmp_path, "plain", PLAIN_CM)
    first = render(plain, cache, site, SHOUT_BACKEND="loud")
    assert first.recorded, first.proc.stderr
    second = render(plain, cache, site, SHOUT_BACKEND="loud")
    assert second.decision == "hit"
    assert second.proc.stdout == first.proc.stdout
    assert second.data() == [{"k": "v"}]


def test_memo_never_serves_what_a_markerless_resolver_would_change(
        site: Path, tmp_path: Path) -> None:
    """A reference left alone while the backend is unconfigured is recorded, served while
    nothing changes, and resolved (not served) once the backend is configured; a new version
    of the resolver's code is never answered by an old memo either."""
    cache = tmp_path / "cache"
    app = app_with(tmp_path, "app", REF_CM)
    first = render(app, cache, site)
    assert first.recorded, first.proc.stderr
    assert first.data() == [{"k": "v"}]
    repeat = render(app, cache, site)
    assert repeat.decision == "hit" and repeat.proc.stdout == first.proc.stdout

    configured = render(app, cache, site, SHOUT_BACKEND="quiet")
    assert configured.decision.startswith("miss: the environment changed"), configured.decision
    assert configured.data() == [{"k": "v", "value": "HELLO-quiet"}]
    again = render(app, cache, site, SHOUT_BACKEND="quiet")
    assert again.decision != "hit"
    assert again.data() == [{"k": "v", "value": "HELLO-quiet"}]

    # Back to unconfigured: served again; then the resolver's code changes in place.
    assert render(app, cache, site).decision == "hit"
    install(site, SHOUT + EVERYWHERE)
    changed = render(app, cache, site)
    assert changed.decision.startswith("miss: plugin code "), changed.decision
    assert changed.data() == [{"k": "v", "shouted": "everywhere"}]


class _Markerless:
    """A library-registered resolver with no markers: acts on objects named ``wanted``."""

    name = "markerless"
    order = 60

    def wants(self, objects: list[dict[str, Any]], ctx: Any) -> bool:
        return bool(ctx.env.get("MARKERLESS_ON")) and any(
            o["metadata"]["name"] == "wanted" for o in objects)

    def resolve(self, objects: list[dict[str, Any]], ctx: Any) -> list[dict[str, Any]]:
        return [{**o, "data": {"resolved": "yes"}} for o in objects]


class _MarkerlessPlugin:
    @hookimpl
    def kiln_register_secret_resolvers(self, registry: reg.ResolverRegistry) -> None:
        registry.add(_Markerless())


def _record_and_check(tmp_path: Path, manifest: str, env: dict[str, str]) -> fastpath.Outcome:
    app_dir = app_with(tmp_path, "lib", manifest)
    cache = tmp_path / "libcache"
    engine = Engine(cache, env=env, plugins=[_MarkerlessPlugin()], entry_points=False)
    app = engine.load_app(app_dir)
    result = engine.render(app)
    request = fastpath.Request(app_dir, ("render",), cache)
    return fastpath.record(engine, app, result, result.to_yaml(), env, request)


def test_library_registered_resolver_without_markers(tmp_path: Path) -> None:
    """Through ``Engine(plugins=[...])``: a memo is recorded for an output the resolver does
    not want, served for the same environment, refused once the resolver is switched on; an
    output it wants is never recorded."""
    env = {"PATH": os.environ["PATH"]}
    recorded = _record_and_check(tmp_path, PLAIN_CM, env)
    assert recorded.ok, recorded.reason
    request = fastpath.Request(tmp_path / "lib", ("render",), tmp_path / "libcache")
    served = fastpath.check(request, env)
    assert served.ok and served.text is not None and "name: plain" in served.text
    refused = fastpath.check(request, {**env, "MARKERLESS_ON": "1"})
    assert not refused.ok and refused.reason.startswith("the environment changed")

    (tmp_path / "w").mkdir()
    wanted = _record_and_check(tmp_path / "w", REF_CM, {**env, "MARKERLESS_ON": "1"})
    assert not wanted.ok and wanted.reason == "secrets were resolved"


# -- the protocols and base classes ---------------------------------------------------------

def test_required_members_are_the_protocol_minus_the_base_defaults() -> None:
    assert reg.RENDERER_REQUIRED == ("name", "version", "inputs", "render")
    assert reg.RESOLVER_REQUIRED == ("name", "order", "wants", "resolve")
    assert set(reg.RESOLVER_MEMBERS) >= {"markers", "decrypt_file", "verify_file", "faces"}
    assert set(reg.RENDERER_MEMBERS) >= {"priority", "options_type", "detect", "tool_version",
                                         "faces"}


def test_missing_required_member_names_it() -> None:
    class NoResolve:
        name = "half"
        order = 1

        def wants(self, objects: Any, ctx: Any) -> bool:
            return False

    registry = reg.ResolverRegistry()
    registry.current_plugin = "halfplugin"
    with pytest.raises(PluginError, match="'halfplugin' registered a secret resolver without "
                                          "resolve"):
        registry.add(NoResolve())


def test_defaults_for_plugins_with_and_without_the_base_class() -> None:
    class Bare:
        name = "bare"
        version = "1"

        def inputs(self, app: Any, ctx: Any) -> reg.Inputs:
            return reg.Inputs()

        def render(self, app: Any, ctx: Any) -> str:
            return ""

    class Based(reg.RendererBase):
        name = "based"
        version = "1"
        priority = 7

        def inputs(self, app: Any, ctx: Any) -> reg.Inputs:
            return reg.Inputs()

        def render(self, app: Any, ctx: Any) -> str:
            return ""

    renderers = reg.RendererRegistry()
    renderers.add(Bare())
    renderers.add(Based())
    bare = renderers.get("bare")
    for item in (bare, renderers.get("based")):
        assert renderers.member(item, "detect")(None) is False
        assert renderers.member(item, "tool_version")(None) == ""
        assert renderers.member(item, "options_type") is None
        assert renderers.member(item, "faces") is None
    assert renderers.member(bare, "priority") == 0
    assert [r.name for r in renderers.by_priority()] == ["based", "bare"]
    assert renderers.detect_for(None) is None  # type: ignore[arg-type]


def test_first_answer_wins_in_resolver_order() -> None:
    asked: list[str] = []

    def resolver(name: str, order: int, answer: bytes | None, base: bool) -> object:
        def decrypt_file(self: Any, data: bytes, fname: str, ctx: Any, *,
                         fmt: str | None = None) -> bytes | None:
            asked.append(name)
            return answer

        attrs: dict[str, Any] = {"name": name, "order": order,
                                 "wants": lambda self, o, c: False,
                                 "resolve": lambda self, o, c: o, "decrypt_file": decrypt_file}
        bases: tuple[type, ...] = (reg.SecretResolverBase,) if base else ()
        return type(name, bases, attrs)()

    resolvers = reg.ResolverRegistry()

    class Plain:  # neither the base class nor the method: answers None
        name = "plain"
        order = 1

        def wants(self, objects: Any, ctx: Any) -> bool:
            return False

        def resolve(self, objects: Any, ctx: Any) -> Any:
            return objects

    resolvers.add(Plain())
    resolvers.add(resolver("late", 30, b"late", base=False))
    resolvers.add(resolver("none", 10, None, base=True))
    resolvers.add(resolver("early", 20, b"early", base=True))
    assert resolvers.first("decrypt_file", b"x", "f", None, fmt=None) == b"early"
    assert asked == ["none", "early"]
    assert resolvers.first("verify_file", b"x", "f", None, fmt=None) is None
    assert resolvers.markers_of(resolvers.get("plain")) is None


CORE_FILES = [*sorted((REPO / "kiln" / "core").rglob("*.py")),
              *sorted((REPO / "kiln" / "cmp").rglob("*.py"))]


OPTIONAL = ({n for n in reg.RENDERER_MEMBERS if n not in reg.RENDERER_REQUIRED}
            | {n for n in reg.RESOLVER_MEMBERS if n not in reg.RESOLVER_REQUIRED})


def test_the_core_reaches_optional_capabilities_only_through_the_registry() -> None:
    """In kiln/core and kiln/cmp no optional protocol member is read as a plain attribute of
    a plugin object or looked up with ``getattr``/``hasattr`` (either would bypass the base
    class's default for a plugin that does not inherit it), and every member named to the
    registry's ``member``/``first`` accessors is one the protocols declare."""
    members = set(reg.RENDERER_MEMBERS) | set(reg.RESOLVER_MEMBERS)
    named: set[str] = set()
    for path in CORE_FILES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Attribute) and node.attr in OPTIONAL
                    and isinstance(node.ctx, ast.Load)
                    and not (isinstance(node.value, ast.Name) and node.value.id == "self")):
                raise AssertionError(f"{path}:{node.lineno}: .{node.attr} read directly")
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            literals = [a.value for a in node.args
                        if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if isinstance(func, ast.Name) and func.id in ("getattr", "hasattr"):
                bad = [m for m in literals if m in members - {"name"}]
                assert not bad, f"{path}:{node.lineno}: {func.id} of {bad}"
            if isinstance(func, ast.Attribute) and func.attr in ("member", "first",
                                                                  "_file_service"):
                named.update(literals)
    assert named, "the registry accessors are used"
    assert named <= members, named - members


def test_docs_list_every_protocol_member() -> None:
    doc = (REPO / "docs" / "plugins.md").read_text()
    section = doc.split("## Capabilities", 1)[1].split("\n## ", 1)[0]
    for member in {*reg.RENDERER_MEMBERS, *reg.RESOLVER_MEMBERS}:
        assert f"`{member}" in section, member



def _python_blocks(markdown: str) -> list[str]:
    return [block.split("\n", 1)[1] for block in markdown.split("```")[1::2]
            if block.startswith("python\n")]


def test_the_documented_plugin_test_passes(tmp_path: Path) -> None:
    """The "Testing a plugin" example of docs/plugins.md, run verbatim against the documented
    renderer example (installed as the module ``kiln_hello``), passes."""
    doc = (REPO / "docs" / "plugins.md").read_text()
    blocks = _python_blocks(doc)
    plugin = next(b for b in blocks if b.startswith("# kiln_hello/__init__.py"))
    testing = _python_blocks(doc.split("## Testing a plugin", 1)[1])[0]
    site = tmp_path / "site"
    (site / "kiln_hello").mkdir(parents=True)
    (site / "kiln_hello" / "__init__.py").write_text(plugin)
    (tmp_path / "test_doc_example.py").write_text(testing)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         str(tmp_path / "test_doc_example.py")],
        env={**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}, cwd=tmp_path,
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_markers_are_checked_against_the_yaml_text_whatever_the_output_format(
        tmp_path: Path) -> None:
    """``kind: Secret`` (a marker of the Vault resolver: a Secret may hide a placeholder in
    base64) never appears in JSON output; a ``-o json`` render of a Secret must still not be
    memoised while Vault is unconfigured, or configuring Vault later would be answered with
    the unresolved stream."""
    app = app_with(tmp_path, "secret", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n"
                                       "data:\n  k: PHBhdGg6c2VjcmV0I2tleT4=\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "KILN_DEBUG_FASTPATH": "1"}
    for name in ("ARGOCD_APP_NAME", "VAULT_ADDR", "AVP_TYPE"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-m", "kiln", "render", str(app), "--cache-dir", str(tmp_path / "c"),
         "-o", "json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert '"kind": "Secret"' in proc.stdout or '"kind":"Secret"' in proc.stdout
    assert "kiln: fastpath: not recorded: the output may hold references for" in proc.stderr
