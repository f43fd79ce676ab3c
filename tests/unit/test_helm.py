"""Unit tests of the Helm plugin's pure parts: flags, value resolution, chart files, the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.core.app import App
from kiln.core.errors import ConfigError, InputError
from kiln.core.tools import ToolVersions
from kiln.plugins.helm.chartfiles import chart_files, read_chart_file
from kiln.plugins.helm.command import TemplateArgs, escape_set_value, helm_env, template_argv
from kiln.plugins.helm.options import HelmOptions
from kiln.plugins.helm.renderer import HelmRenderer, _present_dependencies, _source
from kiln.plugins.helm.store import ChartStore, RemoteChart
from kiln.plugins.helm.values import hcl_to_json, resolve_values, value_files


def make_app(path: Path, env: dict[str, str] | None = None, **helm: object) -> App:
    path.mkdir(parents=True, exist_ok=True)
    return App(path=path, source_root=path, options={"helm": helm} if helm else {},
               env=env or {})


def opts(app: App) -> HelmOptions:
    result: HelmOptions = app.options_for("helm", HelmOptions)
    return result


@pytest.mark.parametrize(("raw", "escaped"), [
    ("plain", "plain"), ("a,b", "a\\,b"), ("a\\,b", "a\\,b"), ("{a,b}", "{a,b}"),
    ("x=1,y", "x=1\\,y"), ("", ""),
])
def test_escape_set_value(raw: str, escaped: str) -> None:
    assert escape_set_value(raw) == escaped


def test_template_argv_order_and_flags() -> None:
    argv = template_argv("helm", TemplateArgs(
        release="r", chart="/c", namespace="ns", value_files=["a.yaml", "b.yaml"],
        sets=[("--set", "x=1"), ("--set-string", "y=2")], kube_version="1.30.0",
        api_versions=["v1/Foo"], include_crds=False, skip_tests=True,
        skip_schema_validation=True, pass_credentials=True))
    assert argv == ["helm", "template", "--namespace=ns", "--values=a.yaml",
                    "--values=b.yaml", "--set=x=1", "--set-string=y=2",
                    "--kube-version=1.30.0", "--api-versions=v1/Foo", "--skip-tests",
                    "--skip-schema-validation", "--pass-credentials", "--", "r", "/c"]
    assert "--include-crds" in template_argv("helm", TemplateArgs(release="r", chart="c"))


def test_helm_env_points_homes_under_tool_dir(tmp_path: Path) -> None:
    env = helm_env({"PATH": "/bin", "HELM_DATA_HOME": ""}, tmp_path)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        assert Path(env[var]).is_dir() and tmp_path in Path(env[var]).parents
    kept = helm_env({"HELM_CONFIG_HOME": "/custom"}, tmp_path)
    assert kept["HELM_CONFIG_HOME"] == "/custom"


def test_value_files_globs_missing_and_outside(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app", valueFiles=["base.yaml", "env/*.yaml", "$STAGE.yaml"],
                   env={"STAGE": "prod"})
    (app.path / "env").mkdir()
    for name in ("base.yaml", "env/b.yaml", "env/a.yaml", "prod.yaml"):
        (app.path / name).write_text("{}\n")
    found = value_files(app, opts(app))
    assert [p.relative_to(app.path).as_posix() for p in found] == [
        "base.yaml", "env/a.yaml", "env/b.yaml", "prod.yaml"]

    missing = make_app(tmp_path / "app", valueFiles=["nope.yaml"])
    with pytest.raises(InputError, match="value file not found"):
        value_files(missing, opts(missing))
    empty_glob = make_app(tmp_path / "app", valueFiles=["none-*.yaml"])
    with pytest.raises(InputError, match="matches no file"):
        value_files(empty_glob, opts(empty_glob))
    ignored = make_app(tmp_path / "app", valueFiles=["nope.yaml", "none-*.yaml"],
                       ignoreMissingValueFiles=True)
    assert value_files(ignored, opts(ignored)) == []

    (tmp_path / "outside.yaml").write_text("{}\n")
    outside = make_app(tmp_path / "app", valueFiles=["../outside.yaml"],
                       ignoreMissingValueFiles=True)
    with pytest.raises(InputError, match="outside the source root"):
        value_files(outside, opts(outside))
    remote = make_app(tmp_path / "app", valueFiles=["https://example.com/v.yaml"])
    with pytest.raises(InputError, match="remote value files"):
        value_files(remote, opts(remote))


def test_absolute_value_file_is_relative_to_source_root(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "shared").mkdir(parents=True)
    (root / "shared" / "common.yaml").write_text("{}\n")
    app = App(path=root / "apps" / "web", source_root=root,
              options={"helm": {"valueFiles": ["/shared/common.yaml"]}})
    app.path.mkdir(parents=True)
    assert value_files(app, opts(app)) == [root / "shared" / "common.yaml"]


def test_parameters_env_substituted(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app", env={"ARGOCD_APP_NAME": "shop"}, parameters=[
        {"name": "a", "value": "$ARGOCD_APP_NAME"}, {"name": "b", "value": 3},
        {"name": "c", "value": True, "forceString": True}, {"name": "d", "value": "$$x"}])
    (app.path / "f.txt").write_text("x")
    values = resolve_values(app, opts(app))
    assert values.sets == (("--set", "a=shop"), ("--set", "b=3"), ("--set-string", "c=true"),
                           ("--set", "d=$x"))


def test_file_parameters_are_inputs_and_confined(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app", fileParameters=[{"name": "cert", "path": "tls.crt"}])
    (app.path / "tls.crt").write_text("PEM")
    values = resolve_values(app, opts(app))
    assert values.inputs == (app.path / "tls.crt",)
    assert values.sets == (("--set-file", f"cert={app.path / 'tls.crt'}"),)
    bad = make_app(tmp_path / "app", fileParameters=[{"name": "x", "path": "../../etc/passwd"}])
    with pytest.raises(InputError, match="outside the source root"):
        resolve_values(bad, opts(bad))


def test_hcl_to_json(tmp_path: Path) -> None:
    path = tmp_path / "out.tfvars"
    path.write_text('name = "web"\nreplicas = 3\ntags = ["a", "b"]\n'
                    'db = {\n  host = "db.local"\n  port = 5432\n}\n')
    assert json.loads(hcl_to_json(path)) == {
        "name": "web", "replicas": 3, "tags": ["a", "b"],
        "db": {"host": "db.local", "port": 5432}}


def test_chart_files_honour_helmignore(tmp_path: Path) -> None:
    chart = tmp_path / "c"
    for rel in ("Chart.yaml", "values.yaml", "templates/a.yaml", "templates/.hidden",
                "notes-x.txt", "x.bak", ".git/config", "docs/README.md", "charts/sub-1.0.0.tgz"):
        (chart / rel).parent.mkdir(parents=True, exist_ok=True)
        (chart / rel).write_text("x")
    (chart / ".helmignore").write_text("# comment\n.git/\n*.bak\nnotes-*.txt\n!keep.bak\n"
                                       "docs/\n")
    rels = [p.relative_to(chart).as_posix() for p in chart_files(chart, 1 << 20)]
    assert rels == [".helmignore", "Chart.yaml", "charts/sub-1.0.0.tgz", "templates/a.yaml",
                    "values.yaml"]
    with pytest.raises(InputError, match="maxChartBytes"):
        chart_files(chart, 3)


def test_read_chart_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no Chart\.yaml"):
        read_chart_file(tmp_path)
    (tmp_path / "Chart.yaml").write_text("- a list\n")
    with pytest.raises(InputError, match="expected one mapping"):
        read_chart_file(tmp_path)
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nversion: 1.0.0\n")
    with pytest.raises(InputError, match="no chart name"):
        read_chart_file(tmp_path)
    (tmp_path / "Chart.yaml").write_text("name: x\ndependencies: {a: 1}\n")
    with pytest.raises(InputError, match="dependencies"):
        read_chart_file(tmp_path)


def test_present_dependencies(tmp_path: Path) -> None:
    """Vendored dependencies are found by the name in their Chart.yaml (a directory) or in
    the archive's file name (``NAME-VERSION.tgz``)."""
    assert _present_dependencies(tmp_path) == set()
    (tmp_path / "charts" / "sub-dir").mkdir(parents=True)
    (tmp_path / "charts" / "sub-dir" / "Chart.yaml").write_text("name: sub\n")
    (tmp_path / "charts" / "redis-1.0.0.tgz").write_bytes(b"")
    (tmp_path / "charts" / "notes.txt").write_text("not a chart")
    assert _present_dependencies(tmp_path) == {"sub", "redis"}


@pytest.mark.parametrize(("repo", "chart", "reference", "oci"), [
    ("https://charts.example.com", "web", "web", False),
    ("oci://reg.example.com/charts", "web", "oci://reg.example.com/charts/web", True),
    ("reg.example.com/charts/", "web", "oci://reg.example.com/charts/web", True),
    ("", "oci://reg.example.com/charts/web", "oci://reg.example.com/charts/web", True),
])
def test_remote_chart_reference(repo: str, chart: str, reference: str, oci: bool) -> None:
    remote = RemoteChart(repo, chart, "1.2.3")
    assert remote.reference == reference and remote.is_oci == oci


@pytest.mark.parametrize(("version", "pinned"), [
    ("1.2.3", True), ("v1.2.3", True), ("1.2.3-rc.1+build.5", True), ("", False),
    ("^1.2.0", False), ("~1.2", False), (">=1.0.0", False), ("1.x", False),
])
def test_pinned_versions(version: str, pinned: bool) -> None:
    assert RemoteChart("https://r", "c", version).pinned == pinned


def test_store_lookup_needs_memo_and_blob(tmp_path: Path) -> None:
    def run(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("the store must not run helm on a lookup")

    store = ChartStore(tmp_path, binary="helm", env={}, run=run, timeout=5)
    chart = RemoteChart("https://r", "c", "1.0.0")
    assert store.lookup(chart) is None
    memo = tmp_path / "charts" / "refs" / f"{chart.key()}.json"
    memo.write_text(json.dumps({"digest": "ab" * 32}))
    assert store.lookup(chart) is None  # memo without its blob
    (tmp_path / "charts" / "blobs" / f"{'ab' * 32}.tgz").write_bytes(b"x")
    found = store.lookup(chart)
    assert found is not None and found.digest == "ab" * 32
    assert store.lookup(RemoteChart("https://r", "c", "^1.0.0")) is None


def test_detect_and_source(tmp_path: Path) -> None:
    renderer = HelmRenderer()
    assert renderer.priority == 20 and renderer.name == "helm"
    plain = make_app(tmp_path / "plain")
    assert not renderer.detect(plain)
    (plain.path / "Chart.yaml").write_text("name: x\n")
    assert renderer.detect(plain)
    remote = make_app(tmp_path / "remote", repoURL="https://r", chart="web", version="1.0.0")
    assert renderer.detect(remote)
    source = _source(remote, opts(remote))
    assert source.remote == RemoteChart("https://r", "web", "1.0.0")
    only_values = make_app(tmp_path / "vals", values="a: 1")
    assert not renderer.detect(only_values)
    no_chart = make_app(tmp_path / "nochart", repoURL="https://r")
    with pytest.raises(ConfigError, match=r"helm\.chart"):
        _source(no_chart, opts(no_chart))


def test_tool_version_is_memoised(tmp_path: Path) -> None:
    from kiln.core.context import RenderContext
    from tests.helpers import tool

    log = tmp_path / "calls"
    wrapper = tmp_path / "helm"
    wrapper.write_text(f'#!/bin/sh\necho x >> {log}\nexec {tool("helm")} "$@"\n')
    wrapper.chmod(0o755)
    env = {"KILN_HELM": str(wrapper), "PATH": "/usr/bin:/bin"}
    first = RenderContext(state_dir=tmp_path, env=env, tool_versions=ToolVersions(tmp_path))
    version = HelmRenderer().tool_version(first)
    assert version.startswith("v3.17")
    again = RenderContext(state_dir=tmp_path, env=env, tool_versions=ToolVersions(tmp_path))
    assert HelmRenderer().tool_version(again) == version
    assert log.read_text().count("x") == 1
