"""The benchmark monorepo generator (bench/monorepo.py) makes a repository the real tools render.

Oracles: git itself (status, log, diff --name-only), PyYAML reading the Application files, and
the real helm / kubectl kustomize / go-jsonnet output for every app, checked against the values
this test knows the generator chose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bench.monorepo import (
    BenchApp,
    Monorepo,
    canonical,
    git,
    make_monorepo,
    one_app_commit,
    parse_output,
    raw_command,
)

APPS = 8


def _render(repo: Monorepo, app: BenchApp, scratch: Path) -> list[dict[str, Any]]:
    cmd = raw_command(repo, app, scratch)
    return parse_output(cmd.run(), cmd.output)


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def test_the_repository_is_committed_clean_and_deterministic(tmp_path: Path) -> None:
    repo = make_monorepo(tmp_path / "a", APPS)
    again = make_monorepo(tmp_path / "b", APPS)
    assert repo.head() == again.head()
    assert git(repo.root, "status", "--porcelain") == ""
    assert git(repo.root, "rev-list", "--count", "HEAD").strip() == "1"
    assert sorted(a.kind for a in repo.apps) == sorted(["helm", "kustomize", "directory",
                                                        "jsonnet"] * 2)
    assert git(repo.root, "log", "-1", "--format=%an <%ae> %aI").strip() == (
        "kiln bench <bench@example.com> 2026-01-01T00:00:00+00:00")


def test_every_application_parses_and_points_at_its_app(tmp_path: Path) -> None:
    repo = make_monorepo(tmp_path / "repo", APPS)
    files = sorted(p.name for p in repo.applications.iterdir())
    assert files == sorted(f"{a.name}.yaml" for a in repo.apps)
    for app in repo.apps:
        docs = list(yaml.safe_load_all((repo.root / app.application).read_text()))
        assert len(docs) == 1
        doc = docs[0]
        assert (doc["apiVersion"], doc["kind"]) == ("argoproj.io/v1alpha1", "Application")
        assert doc["metadata"]["name"] == app.name
        source = doc["spec"]["source"]
        assert (repo.root / source["path"]).is_dir()
        assert source["path"] == app.path
        assert doc["spec"]["destination"]["namespace"] == app.namespace
        if app.kind == "helm":
            for vf in source["helm"]["valueFiles"]:
                assert (repo.root / app.path / vf).is_file()
        if app.kind == "jsonnet":
            for lib in source["directory"]["jsonnet"]["libs"]:
                assert (repo.root / lib).is_dir()


def test_each_app_renders_with_the_real_tool_and_its_options(tmp_path: Path) -> None:
    repo = make_monorepo(tmp_path / "repo", APPS)
    for app in repo.apps:
        objects = _by_kind(_render(repo, app, tmp_path / "scratch"))
        assert set(objects) == {"Deployment", "Service", "ConfigMap"}, app.name
        deployment = objects["Deployment"]
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        if app.kind == "helm":  # valueFiles (replicas 2) and parameters (image.tag) applied
            assert deployment["metadata"]["name"] == app.name
            assert deployment["metadata"]["namespace"] == app.namespace
            assert deployment["spec"]["replicas"] == 2
            assert image.endswith(f":1.{app.index % 7}.0")
            assert objects["ConfigMap"]["data"]["ENVIRONMENT"] == "prod"
        elif app.kind == "kustomize":  # namePrefix, images, the overlay's patch
            assert deployment["metadata"]["name"] == f"prod-{app.name}"
            assert image == f"nginx:1.27.{app.index % 5}"
            assert deployment["spec"]["replicas"] == 3
            assert objects["ConfigMap"]["metadata"]["name"].startswith("prod-settings-")
        elif app.kind == "jsonnet":  # the TLA and the shared lib
            assert deployment["spec"]["replicas"] == 1 + app.index % 3
            assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "jsonnet"
        else:  # recurse: the ConfigMap lives in a sub-directory
            assert objects["ConfigMap"]["metadata"]["name"] == f"{app.name}-config"


def test_one_app_commit_changes_exactly_one_app(tmp_path: Path) -> None:
    repo = make_monorepo(tmp_path / "repo", APPS)
    before = {a.name: _render(repo, a, tmp_path / "before") for a in repo.apps}
    first = repo.head()
    assert one_app_commit(repo, 1) == repo.head() != first
    after = {a.name: _render(repo, a, tmp_path / "after") for a in repo.apps}
    assert [n for n in before if before[n] != after[n]] == [repo.apps[1].name]
    for index in range(APPS):
        app = repo.apps[index]
        one_app_commit(repo, index)
        changed = git(repo.root, "diff", "--name-only", "HEAD~1", "HEAD").split()
        assert changed, app.name
        assert all(name.startswith(f"{app.directory}/") for name in changed), changed
        assert git(repo.root, "status", "--porcelain") == ""
        assert _render(repo, app, tmp_path / f"own-{index}") != after[app.name], app.name
    assert git(repo.root, "rev-list", "--count", "HEAD").strip() == str(APPS + 2)


def test_kiln_reads_every_application_and_renders_the_raw_tools_objects(tmp_path: Path) -> None:
    """The generator keeps to the Application fields kiln maps: kiln.apps reads them all, and
    rendering them in one process gives each raw tool's objects (what the benchmark checks)."""
    from kiln.apps import load_applications
    from kiln.core.engine import Engine
    from kiln.many.runner import render_many

    repo = make_monorepo(tmp_path / "repo", APPS)
    specs = load_applications(repo.applications, repo_root=repo.root)
    assert sorted(s.name for s in specs) == sorted(a.name for a in repo.apps)
    by_name = {a.name: a for a in repo.apps}
    assert all(s.path == by_name[s.name].path for s in specs)
    engine = Engine(cache_dir=tmp_path / "cache", entry_points=False)
    outcomes = render_many(engine, repo.root, specs, secrets=False, jobs=2)
    for outcome in outcomes:
        assert outcome.result is not None, outcome.error
        app = by_name[outcome.spec.name]
        assert canonical(outcome.result.objects) == canonical(
            _render(repo, app, tmp_path / "scratch")), app.name
