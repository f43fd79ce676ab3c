"""The jsonnet renderer against real programs, compared with go-jsonnet run directly.

The reference output comes from the ``_gojsonnet`` module evaluating the same files with its own
file importer (``jpathdir``) in a separate interpreter, so kiln's resolver, worker and flattening
are checked against the library's native behaviour.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from kiln.core.engine import Engine
from tests.helpers import REPO, assert_clean_failure, run_kiln

pytestmark = pytest.mark.integration

FIXTURES = REPO / "tests" / "fixtures" / "jsonnet"

_RAW = textwrap.dedent("""
    import json, sys, _gojsonnet
    a = json.loads(sys.argv[1])
    sys.stdout.write(_gojsonnet.evaluate_file(
        a["file"], jpathdir=a["jpath"], ext_vars=a["ext_vars"], ext_codes=a["ext_codes"],
        tla_vars=a["tla_vars"], tla_codes=a["tla_codes"]))
""")


def raw_jsonnet(file: Path, jpath: list[Path] | None = None, *,
                ext_vars: dict[str, str] | None = None, ext_codes: dict[str, str] | None = None,
                tla_vars: dict[str, str] | None = None,
                tla_codes: dict[str, str] | None = None) -> Any:
    """Evaluate ``file`` with go-jsonnet's own importer in a fresh interpreter."""
    args = {"file": str(file), "jpath": [str(p) for p in jpath or []],
            "ext_vars": ext_vars or {}, "ext_codes": ext_codes or {},
            "tla_vars": tla_vars or {}, "tla_codes": tla_codes or {}}
    proc = subprocess.run([sys.executable, "-c", _RAW, json.dumps(args)], capture_output=True,
                          text=True, check=True, timeout=60)
    return json.loads(proc.stdout)


def kiln_json(app: Path, root: Path, cache: Path, *extra: str) -> list[dict[str, Any]]:
    proc = run_kiln("render", str(app), "-o", "json", "--source-root", str(root),
                    "--cache-dir", str(cache), *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def copy_fixture(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / name
    shutil.copytree(FIXTURES / name, dest, symlinks=True)
    return dest


def test_guestbook_matches_raw_jsonnet(tmp_path: Path, cache_dir: Path) -> None:
    app = copy_fixture("guestbook", tmp_path)
    expected = raw_jsonnet(app / "guestbook-ui.jsonnet", [app])
    assert [o["kind"] for o in expected] == ["Service", "Deployment"]
    assert kiln_json(app, app, cache_dir) == expected


def test_tla_app_with_string_and_code_vars(tmp_path: Path, cache_dir: Path) -> None:
    app = copy_fixture("tla-app", tmp_path)
    (app / "kiln.yaml").write_text(textwrap.dedent("""
        jsonnet:
          tlas:
            - {name: name, value: checkout}
            - {name: replicas, value: "3", code: true}
            - {name: labels, value: "{team: 'payments'}", code: true}
            - {name: debug, value: "true", code: true}
          extVars:
            - {name: env, value: prod}
            - {name: image, value: "example/checkout:1.2"}
            - {name: settings, value: "{retries: 2, hosts: ['a', 'b']}", code: true}
    """))
    raw = raw_jsonnet(
        app / "main.jsonnet", [app],
        tla_vars={"name": "checkout"},
        tla_codes={"replicas": "3", "labels": "{team: 'payments'}", "debug": "true"},
        ext_vars={"env": "prod", "image": "example/checkout:1.2"},
        ext_codes={"settings": "{retries: 2, hosts: ['a', 'b']}"},
    )
    expected = [raw[key] for key in sorted(raw)]
    got = kiln_json(app, app, cache_dir)
    assert got == expected
    assert got[1]["spec"]["replicas"] == 3
    assert got[1]["metadata"]["labels"] == {"app": "checkout", "env": "prod", "team": "payments"}


def test_tla_defaults_apply_when_not_given(tmp_path: Path, cache_dir: Path) -> None:
    app = copy_fixture("tla-app", tmp_path)
    opts = ['-O', 'jsonnet.tlas=[{name: name, value: x}]',
            '-O', 'jsonnet.extVars=[{name: env, value: dev}, {name: image, value: i}, '
                  '{name: settings, value: "{}", code: true}]']
    got = kiln_json(app, app, cache_dir, *opts)
    raw = raw_jsonnet(app / "main.jsonnet", [app], tla_vars={"name": "x"},
                      ext_vars={"env": "dev", "image": "i"}, ext_codes={"settings": "{}"})
    assert got == [raw["config"], raw["deployment"]]


def test_vars_are_env_substituted_and_part_of_the_cache_key(tmp_path: Path) -> None:
    app = copy_fixture("tla-app", tmp_path)
    settings = {"jsonnet": {
        "tlas": [{"name": "name", "value": "$ARGOCD_APP_NAME"}],
        "extVars": [{"name": "env", "value": "${ARGOCD_ENV_STAGE}-$$x"},
                    {"name": "image", "value": "img"},
                    {"name": "settings", "value": "{}", "code": True}],
    }}
    engine = Engine(tmp_path / "cache", entry_points=False)
    first = engine.render(engine.load_app(app, settings, build_env={
        "ARGOCD_APP_NAME": "shop", "ARGOCD_ENV_STAGE": "qa"}))
    deployment = first.objects[1]
    assert deployment["metadata"]["name"] == "shop"
    assert deployment["metadata"]["labels"]["env"] == "qa-$x"
    again = engine.render(engine.load_app(app, settings, build_env={
        "ARGOCD_APP_NAME": "shop", "ARGOCD_ENV_STAGE": "qa"}))
    assert again.cache_hit
    other = engine.render(engine.load_app(app, settings, build_env={
        "ARGOCD_APP_NAME": "cart", "ARGOCD_ENV_STAGE": "qa"}))
    assert not other.cache_hit
    assert other.objects[1]["metadata"]["name"] == "cart"


def _walk(value: Any, out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An independent rendition of Tanka's extraction, for the expected side of the tests."""
    if isinstance(value, dict):
        if "apiVersion" in value and "kind" in value:
            out.append(value)
        else:
            for key in sorted(value):
                _walk(value[key], out)
    elif isinstance(value, list):
        for item in value:
            _walk(item, out)
    return out


def test_tanka_project_with_lib_and_vendor(tmp_path: Path, cache_dir: Path) -> None:
    project = copy_fixture("tanka", tmp_path)
    env = project / "environments" / "default"
    raw = raw_jsonnet(env / "main.jsonnet", [project / "vendor", project / "lib", env])
    expected = _walk(raw, [])
    got = kiln_json(env, tmp_path, cache_dir)
    assert got == expected
    assert [(o["kind"], o["metadata"]["name"]) for o in got] == [
        ("Deployment", "backend"), ("ConfigMap", "backend"),
        ("Deployment", "frontend"), ("Service", "frontend")]
    config = got[1]["data"]
    assert config["source"] == "lib"  # lib/ shadows vendor/, as in Tanka
    assert config["banner"] == (project / "lib" / "banner.txt").read_text()
    assert got[3]["spec"]["ports"] == [{"port": 8080}]
    staging = kiln_json(project / "environments" / "staging", tmp_path, cache_dir)
    assert staging == raw_jsonnet(project / "environments/staging/main.jsonnet",
                                  [project / "vendor", project / "lib"])


def test_tanka_inline_environment(tmp_path: Path, cache_dir: Path) -> None:
    project = copy_fixture("tanka", tmp_path)
    env = project / "environments" / "inline"
    raw = raw_jsonnet(env / "main.jsonnet", [project / "vendor", project / "lib", env])
    got = kiln_json(env, tmp_path, cache_dir)
    assert got == _walk(raw["data"], [])
    assert [o["kind"] for o in got] == ["Service", "Deployment"]


def test_libs_are_relative_to_the_source_root(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "shared" / "jsonnet").mkdir(parents=True)
    (tmp_path / "shared" / "jsonnet" / "common.libsonnet").write_text(
        "{ cm(n):: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: n } } }")
    app = tmp_path / "apps" / "one"
    app.mkdir(parents=True)
    (app / "app.jsonnet").write_text("(import 'common.libsonnet').cm('one')")
    got = kiln_json(app, tmp_path, cache_dir, "-O", "jsonnet.libs=[shared/jsonnet]")
    assert got == [raw_jsonnet(app / "app.jsonnet", [app, tmp_path / "shared" / "jsonnet"])]


def test_input_digest_follows_the_import_closure(tmp_path: Path) -> None:
    project = copy_fixture("tanka", tmp_path)
    env = project / "environments" / "default"
    engine = Engine(tmp_path / "cache", entry_points=False)

    def render() -> Any:
        return engine.render(engine.load_app(env, source_root=tmp_path))

    first = render()
    assert not first.cache_hit
    assert set(first.inputs) == {
        "main.jsonnet", "spec.json", "logo.bin", "../../lib/k.libsonnet",
        "../../lib/settings.libsonnet", "../../lib/banner.txt",
        "../../vendor/github.com/example/kube-lib/main.libsonnet"}
    assert render().cache_hit
    (project / "README.md").write_text("not an input")
    assert render().cache_hit
    (project / "lib" / "banner.txt").write_text("changed banner\n")
    changed = render()
    assert not changed.cache_hit
    assert changed.objects[1]["data"]["banner"] == "changed banner\n"
    # A new file that shadows a lib file (the importing directory is searched first).
    (env / "settings.libsonnet").write_text("{ source: 'env', port: 9090 }")
    shadowed = render()
    assert not shadowed.cache_hit
    assert shadowed.objects[1]["data"]["source"] == "env"


def test_a_missing_lazy_import_becomes_an_input_once_it_exists(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.jsonnet").write_text(
        "local extra = if std.extVar('more') then import 'extra.libsonnet' else [];\n"
        "[{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a' } }] + extra\n")
    engine = Engine(tmp_path / "cache", entry_points=False)
    settings = {"jsonnet": {"extVars": [{"name": "more", "value": "false", "code": True}]}}
    first = engine.render(engine.load_app(app, settings))
    assert [o["metadata"]["name"] for o in first.objects] == ["a"]
    (app / "extra.libsonnet").write_text("[]")
    second = engine.render(engine.load_app(app, settings))
    assert not second.cache_hit
    assert "extra.libsonnet" in second.inputs


def test_cache_hit_never_imports_gojsonnet(tmp_path: Path) -> None:
    app = copy_fixture("guestbook", tmp_path)
    script = textwrap.dedent(f"""
        import sys
        from kiln.core.engine import Engine
        engine = Engine({str(tmp_path / "cache")!r}, entry_points=False)
        result = engine.render(engine.load_app({str(app)!r}))
        print(result.cache_hit, "_gojsonnet" in sys.modules, len(result.objects))
    """)
    outputs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              check=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin"},
                              ).stdout.split() for _ in range(2)]
    assert outputs == [["False", "False", "2"], ["True", "False", "2"]]


def test_worker_loads_exactly_the_scanned_closure(tmp_path: Path) -> None:
    """Every file go-jsonnet asked for was declared by the static scan (and vice versa)."""
    from kiln.core.app import App
    from kiln.plugins.jsonnet import make_plan
    from kiln.plugins.jsonnet.jpath import Resolver
    from kiln.plugins.jsonnet.runner import evaluate
    from kiln.plugins.jsonnet.scan import import_closure

    project = copy_fixture("tanka", tmp_path)
    app = App(path=project / "environments" / "default", source_root=tmp_path)
    plan = make_plan(app)
    closure = import_closure(plan.entry, Resolver(app.root, plan.jpath))
    outputs = []
    for start in ("fork", "spawn"):
        done = evaluate({
            "entry": plan.entry, "appDir": str(app.path), "root": str(app.root),
            "jpath": [str(p) for p in plan.jpath], "extVars": {}, "extCodes": {},
            "tlaVars": {}, "tlaCodes": {}, "maxStack": 500, "maxMemory": 1 << 30,
            "maxOutput": 1 << 24,
        }, timeout=60, source=plan.entry, on_helm=lambda m: [], start=start)
        assert set(done["loaded"]) | {plan.entry} == set(closure.files)
        outputs.append(done["json"])
    assert outputs[0] == outputs[1]


# -- bad input: one line, exit 1, nothing on stdout --------------------------------------------


def write_app(tmp_path: Path, files: dict[str, str]) -> Path:
    app = tmp_path / "app"
    for rel, text in files.items():
        path = app / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return app


def fail(app: Path, root: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_kiln("render", str(app), "--source-root", str(root), "--cache-dir", str(cache),
                    *extra)


def test_syntax_error_names_file_and_line(tmp_path: Path, cache_dir: Path) -> None:
    app = write_app(tmp_path, {"main.jsonnet": "{\n  a: 1,\n  b: ,\n}\n"})
    assert_clean_failure(fail(app, app, cache_dir), f"{app / 'main.jsonnet'}:3:")


def test_syntax_error_in_an_imported_file(tmp_path: Path, cache_dir: Path) -> None:
    app = write_app(tmp_path, {"main.jsonnet": "import 'lib.libsonnet'",
                               "lib.libsonnet": "local x = ;\nx"})
    proc = fail(app, app, cache_dir)
    assert_clean_failure(proc, f"kiln: error: {app / 'lib.libsonnet'}:1:")


def test_missing_import(tmp_path: Path, cache_dir: Path) -> None:
    app = write_app(tmp_path, {"main.jsonnet": "\nlocal x = import 'nope.libsonnet';\n[x]\n"})
    proc = fail(app, app, cache_dir)
    assert_clean_failure(proc, "main.jsonnet:2", "cannot find import 'nope.libsonnet'")
    # go-jsonnet's binding garbles callback error text; kiln reports its own, intact.
    assert proc.stderr.endswith(f"(searched {app})\n"), proc.stderr


def test_missing_import_in_a_lazy_branch_that_is_reached(tmp_path: Path, cache_dir: Path) -> None:
    app = write_app(tmp_path, {"main.jsonnet": "import 'sub/lib.libsonnet'",
                               "sub/lib.libsonnet": "{\n  a: if true then import 'gone.json',\n}"})
    proc = fail(app, app, cache_dir)
    assert_clean_failure(proc, f"{app / 'sub' / 'lib.libsonnet'}:2",
                         "cannot find import 'gone.json'")


def test_import_outside_the_source_root(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "secret.libsonnet").write_text("{ password: 'hunter2' }")
    app = write_app(tmp_path, {"main.jsonnet": "[import '../secret.libsonnet']"})
    proc = fail(app, app, cache_dir)
    assert_clean_failure(proc, "main.jsonnet:1", "outside the source root")
    assert "hunter2" not in proc.stderr


def test_importstr_through_a_symlink_out_of_the_root(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "outside.txt").write_text("private")
    app = write_app(tmp_path, {"main.jsonnet": "[{ apiVersion: 'v1', kind: 'ConfigMap', "
                                               "data: { x: importstr 'link.txt' } }]"})
    (app / "link.txt").symlink_to(tmp_path / "outside.txt")
    assert_clean_failure(fail(app, app, cache_dir), "resolves outside the source root")


def test_runtime_error_names_its_location(tmp_path: Path, cache_dir: Path) -> None:
    app = write_app(tmp_path, {"main.jsonnet": "local f(x) =\n  error 'bad value: ' + x;\nf('q')"})
    assert_clean_failure(fail(app, app, cache_dir), "main.jsonnet:2:", "bad value: q")


def test_non_object_output(tmp_path: Path, cache_dir: Path) -> None:
    app = write_app(tmp_path, {"main.jsonnet": "{ a: [{ apiVersion: 'v1', kind: 'X' }, 'str'] }"})
    assert_clean_failure(fail(app, app, cache_dir), "output at .a[1] is a string")


def test_ambiguous_entry_file(tmp_path: Path, cache_dir: Path) -> None:
    app = write_app(tmp_path, {"a.jsonnet": "[]", "b.jsonnet": "[]"})
    assert_clean_failure(fail(app, app, cache_dir, "--type", "jsonnet"), "jsonnet.main")
    ok = run_kiln("render", str(app), "--cache-dir", str(cache_dir), "--type", "jsonnet",
                  "-O", "jsonnet.main=b.jsonnet", "--allow-empty")
    assert ok.returncode == 0 and ok.stdout == "", ok.stderr


def test_unknown_option_is_refused(tmp_path: Path, cache_dir: Path) -> None:
    app = write_app(tmp_path, {"main.jsonnet": "[]"})
    assert_clean_failure(fail(app, app, cache_dir, "-O", "jsonnet.extVar=[]"), "extVar")


def test_native_function_error_is_reported(tmp_path: Path, cache_dir: Path) -> None:
    app = write_app(tmp_path, {"main.jsonnet": "std.native('parseYaml')('a: [')"})
    assert_clean_failure(fail(app, app, cache_dir), "parseYaml:", "malformed YAML")


def test_native_functions_work(tmp_path: Path, cache_dir: Path) -> None:
    app = write_app(tmp_path, {
        "main.jsonnet": textwrap.dedent("""
            local docs = std.native('parseYaml')(importstr 'objs.yaml');
            local cfg = std.native('parseJson')('{"k": "v"}');
            docs + [{
              apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'n' },
              data: {
                yaml: std.native('manifestYamlFromJson')(std.manifestJson(cfg)),
                hash: std.native('sha256')('abc'),
              },
            }]
        """),
        "objs.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
                     "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
    })
    got = kiln_json(app, app, cache_dir)
    assert [o["metadata"]["name"] for o in got] == ["a", "b", "n"]
    assert got[2]["data"]["yaml"] == yaml.safe_dump({"k": "v"})
    import hashlib

    assert got[2]["data"]["hash"] == hashlib.sha256(b"abc").hexdigest()


# -- limits ------------------------------------------------------------------------------------


def test_infinite_recursion_hits_the_stack_limit(tmp_path: Path, cache_dir: Path) -> None:
    app = write_app(tmp_path, {"main.jsonnet": "local f(n) = 1 + f(n + 1);\nf(0)"})
    assert_clean_failure(fail(app, app, cache_dir), "max stack frames exceeded",
                         "jsonnet.maxStack=500")


def test_endless_evaluation_times_out(tmp_path: Path, cache_dir: Path) -> None:
    app = write_app(tmp_path, {"main.jsonnet": "local f(n) = f(n + 1) tailstrict;\nf(0)"})
    # The recursion allocates as it goes: lift the memory bound so the clock is what stops it.
    proc = fail(app, app, cache_dir, "-O", "jsonnet.timeout=1.5",
                "-O", f"jsonnet.maxMemoryBytes={8 << 30}")
    assert_clean_failure(proc, "timed out after 1.5s", "jsonnet.timeout")


def test_memory_bound(tmp_path: Path, cache_dir: Path) -> None:
    app = write_app(tmp_path, {"main.jsonnet":
                               "std.length(std.makeArray(300000000, function(i) i)) "
                               "+ std.length(std.range(1, 300000000))"})
    proc = fail(app, app, cache_dir, "-O", f"jsonnet.maxMemoryBytes={256 << 20}")
    assert_clean_failure(proc, "exceeded the memory limit of 256 MiB")
    assert len(proc.stderr.splitlines()) == 1


def test_huge_output_is_refused(tmp_path: Path, cache_dir: Path) -> None:
    app = write_app(tmp_path, {"main.jsonnet":
                               "[{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' + i }"
                               " } for i in std.range(1, 1000)]"})
    proc = fail(app, app, cache_dir, "-O", "jsonnet.maxOutputBytes=10000")
    assert_clean_failure(proc, "output is larger than 10000 bytes")


# -- helmTemplate --------------------------------------------------------------------------------


def raw_helm(chart: Path, name: str, namespace: str, values: dict[str, Any]) -> list[Any]:
    from tests.helpers import tool

    values_file = chart.parent / f".{name}-values.json"
    values_file.write_text(json.dumps(values))
    try:
        out = subprocess.run([tool("helm"), "template", name, str(chart), "--namespace",
                              namespace, "-f", str(values_file)],
                             capture_output=True, text=True, check=True).stdout
    finally:
        values_file.unlink()
    return [d for d in yaml.safe_load_all(out) if d]


def test_helm_template_through_the_helm_plugin(tmp_path: Path, cache_dir: Path) -> None:
    """Needs kiln's helm plugin (registered as ``helm``): compares with ``helm template``."""
    project = copy_fixture("helm-app", tmp_path)
    env = project / "environments" / "default"
    expected = raw_helm(project / "charts" / "hello", "web", "demo", {"replicas": 3})
    by_kind = {o["kind"]: o for o in expected}
    by_kind["Deployment"]["metadata"]["labels"]["patched"] = "yes"
    got = kiln_json(env, tmp_path, cache_dir)
    assert got == [by_kind["Deployment"], by_kind["Service"]]


def test_helm_template_plumbing(tmp_path: Path) -> None:
    """helmTemplate through the engine's nested render (kiln's helm plugin), against
    ``helm template`` run directly."""
    project = copy_fixture("helm-app", tmp_path)
    env = project / "environments" / "default"
    expected = raw_helm(project / "charts" / "hello", "web", "demo", {"replicas": 3})
    by_kind = {o["kind"]: o for o in expected}
    by_kind["Deployment"]["metadata"]["labels"]["patched"] = "yes"
    engine = Engine(tmp_path / "cache", entry_points=False)
    result = engine.render(engine.load_app(env, source_root=tmp_path))
    assert result.objects == [by_kind["Deployment"], by_kind["Service"]]
    assert result.key is None  # not cached: the charts are known only after evaluation


def test_helm_template_errors_are_one_line(tmp_path: Path, cache_dir: Path) -> None:
    project = copy_fixture("helm-app", tmp_path)
    main = project / "environments" / "default" / "main.jsonnet"
    main.write_text(main.read_text().replace("../../charts/hello", "../../../../outside"))
    proc = fail(main.parent, tmp_path, cache_dir)
    assert_clean_failure(proc, "helmTemplate:", "outside the source root")
    main.write_text("std.native('helmTemplate')('x', '../../charts/hello', {bogus: 1})")
    assert_clean_failure(fail(main.parent, tmp_path, cache_dir), "unknown conf key 'bogus'")


def test_helm_template_with_the_helm_plugin_disabled(tmp_path: Path, cache_dir: Path) -> None:
    """helmTemplate asks the engine for a chart renderer by capability: none enabled is one
    clear error."""
    project = copy_fixture("helm-app", tmp_path)
    env = project / "environments" / "default"
    proc = run_kiln("render", str(env), "--type", "jsonnet", "--source-root", str(tmp_path),
                    "--cache-dir", str(cache_dir), env={"KILN_DISABLE_PLUGINS": "helm"})
    assert_clean_failure(proc, "no enabled renderer renders charts")


def test_helm_template_asks_any_renderer_offering_chart_app(tmp_path: Path) -> None:
    """With Helm disabled, a library renderer offering ``chart_app`` renders the chart: the
    request it receives carries what the Jsonnet code asked for, and its objects come back
    keyed as Tanka keys them."""
    from kiln.core.app import App
    from kiln.core.context import ChartRequest
    from kiln.core.hookspecs import hookimpl

    asked: list[ChartRequest] = []

    class StaticCharts:
        name, version, priority, options_type = "static-charts", "1", 0, None

        def detect(self, app: App) -> bool:
            return False

        def tool_version(self, ctx: object) -> str:
            return ""

        def inputs(self, app: App, ctx: object) -> Any:
            raise AssertionError("never rendered as an app of its own")

        def render(self, app: App, ctx: object) -> Any:
            raise AssertionError("never rendered as an app of its own")

        def chart_app(self, request: ChartRequest) -> App:
            asked.append(request)
            return App(path=request.chart / "static", type="directory",
                       source_root=request.parent.root)

    class Plugin:
        @hookimpl
        def kiln_register_renderers(self, registry: Any) -> None:
            registry.add(StaticCharts())

    app = write_app(tmp_path, {
        "main.jsonnet": "std.native('helmTemplate')('rel', './chart', "
                        "{namespace: 'ns1', values: {a: 1}, includeCrds: false})",
        "chart/static/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n",
    })
    engine = Engine(tmp_path / "cache", entry_points=False, plugins=[Plugin()],
                    env={"KILN_DISABLE_PLUGINS": "helm"})
    result = engine.render(engine.load_app(app, source_root=tmp_path))
    assert result.objects == [{"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "cfg"}}]
    [request] = asked
    assert (request.release, request.namespace, request.values, request.include_crds,
            request.chart) == ("rel", "ns1", {"a": 1}, False, app / "chart")
