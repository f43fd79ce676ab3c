"""``kiln serve`` with git sources: a real bare repository made here (branches, tags,
commits), the real server over HTTP, and the oracles git itself (``git rev-parse`` in the work
repository) and the real kustomize on a checkout of the same commit."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gitsource_helpers import Remote, git
from tests.helpers import tool
from tests.integration.serve_server import ServeServer, one_line_error, start_serve

pytestmark = pytest.mark.integration

BASE = {
    "base/kustomization.yaml": "resources: [deploy.yaml]\n",
    "base/deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
                        "spec:\n  replicas: 2\n",
    "apps/overlay/kustomization.yaml": "resources: [../../base]\nnamePrefix: git-\n",
    "apps/chart/Chart.yaml": "apiVersion: v2\nname: chart\nversion: 0.1.0\n",
    "apps/chart/values.yaml": "size: small\n",
    "apps/chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                    "  name: {{ .Release.Name }}\ndata:\n"
                                    "  size: {{ .Values.size }}\n",
}


def cm(name: str, value: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  v: {value}\n"


@dataclass
class Fixture:
    remote: Remote
    server: ServeServer
    work: Path
    v1: str
    v2: str


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    work = tmp_path_factory.mktemp("serve-git")
    remote = Remote(work / "repos")
    v1 = remote.commit({**BASE, "apps/web/cm.yaml": cm("web", "one"), "README.md": "r\n"})
    git(remote.work, "tag", "v1")
    v2 = remote.commit({"apps/web/cm.yaml": cm("web", "two")})
    git(remote.work, "branch", "release", v1)
    remote.push()
    Remote(work / "repos", "other").commit({"apps/web/cm.yaml": cm("web", "other")})
    server = start_serve(work / "server", ["--allow-repo", f"file://{work}/repos/remote*",
                                           "--git-cache-dir", str(work / "mirrors")])
    try:
        yield Fixture(remote, server, work, v1, v2)
    finally:
        server.close()


def render(fx: Fixture, revision: str, path: str, url: str | None = None,
           **extra: Any) -> Any:
    return fx.server.render({"git": {"repoURL": url or fx.remote.url, "revision": revision,
                                      "path": path}, **extra})


def checkout(fx: Fixture, commit: str, dest: Path) -> Path:
    """The commit's files, as git itself writes them out (the oracle's input)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", commit], cwd=fx.remote.work,
                             capture_output=True, check=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True, timeout=60)
    return dest


@pytest.mark.parametrize("revision", ["main", "v1", "release", "HEAD", "full-id", "short-id"])
def test_revisions_resolve_to_the_commit_git_names(fx: Fixture, revision: str) -> None:
    named = {"full-id": fx.v1, "short-id": fx.v1[:10]}.get(revision, revision)
    want_commit = fx.remote.rev(named)
    resp = render(fx, named, "apps/web")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["revision"] == want_commit
    value = "two" if want_commit == fx.v2 else "one"
    assert body["objects"] == [yaml.safe_load(cm("web", value))]


def test_an_app_reading_outside_its_directory_equals_kustomize(fx: Fixture, tmp_path: Path) -> None:
    tree = checkout(fx, fx.v2, tmp_path / "co")
    proc = subprocess.run([tool("kubectl"), "kustomize", str(tree / "apps/overlay")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    want = [d for d in yaml.safe_load_all(proc.stdout) if d]
    resp = render(fx, "main", "apps/overlay")
    assert resp.status_code == 200, resp.text
    assert resp.json()["objects"] == want
    assert want[0]["metadata"]["name"] == "git-web"


def test_repeat_and_an_unrelated_commit_are_hits(fx: Fixture) -> None:
    first = render(fx, fx.v1, "apps/web").json()
    renders = fx.server.metric("kiln_renders_total", result="render")
    again = render(fx, "v1", "apps/web").json()
    assert again["cacheHit"] is True and again["key"] == first["key"]
    # a commit touching only the README: the app's files are the same, a hit at the new commit
    v3 = fx.remote.commit({"README.md": "changed\n"})
    fx.remote.push("main")
    moved = render(fx, v3, "apps/web").json()
    assert moved["revision"] == v3 and moved["cacheHit"] is True
    assert moved["objects"] == [yaml.safe_load(cm("web", "two"))]
    assert fx.server.metric("kiln_renders_total", result="render") == renders


def test_request_settings_shape_a_git_render_and_its_key(fx: Fixture, tmp_path: Path) -> None:
    """Settings (application level) reach the render of a git app, and requests that differ
    only in settings never share a memo entry: each equals helm's own output."""
    tree = checkout(fx, fx.v2, tmp_path / "co")
    values = tmp_path / "big.yaml"
    values.write_text("size: big\n")
    answers = {}
    for release, extra in (("g1", []), ("g2", ["-f", str(values)])):
        proc = subprocess.run([tool("helm"), "template", release, str(tree / "apps/chart"),
                               *extra], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        want = [d for d in yaml.safe_load_all(proc.stdout) if d]
        settings: dict[str, Any] = {"helm": {"releaseName": release}}
        if extra:
            settings["helm"]["valuesObject"] = {"size": "big"}
        for attempt in range(2):
            resp = render(fx, "main", "apps/chart", settings=settings)
            assert resp.status_code == 200, resp.text
            assert resp.json()["objects"] == want
            assert resp.json()["cacheHit"] is (attempt == 1)
            answers[release] = resp.json()["key"]
    assert answers["g1"] != answers["g2"]


BAD = [
    ("unknown-revision", {"revision": "no-such-branch"}, 404, "no-such-branch"),
    ("unknown-commit", {"revision": "0" * 40}, 404, "0000000"),
    ("missing-path", {"path": "apps/nope"}, 404, "apps/nope"),
    ("a-file-path", {"path": "README.md"}, 404, "README.md"),
    ("climbing-path", {"path": "../x"}, 404, ".."),
    ("repo-not-allowed", {"url": "other"}, 403, "other.git"),
    ("remote-unreachable", {"url": "missing"}, 502, "remote-missing"),
    ("settings-redirect-credentials", {"settings": {"secrets": {"vault": {
        "address": "http://127.0.0.1:1"}}}}, 403, "secrets.vault.address"),
]


@pytest.mark.parametrize(("case", "status", "needle"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_bad_git_requests_are_one_line_errors(fx: Fixture, case: dict[str, Any], status: int,
                                              needle: str) -> None:
    urls = {"other": f"file://{fx.work}/repos/other.git",
            "missing": f"file://{fx.work}/repos/remote-missing.git"}
    url = urls.get(case.get("url", ""), fx.remote.url)
    extra = {"settings": case["settings"]} if "settings" in case else {}
    resp = render(fx, case.get("revision", "main"), case.get("path", "apps/web"), url, **extra)
    line = one_line_error(resp, status)
    assert needle in line, line


def test_readyz_reports_git(fx: Fixture) -> None:
    body = fx.server.client().get("/readyz").json()
    assert body["ok"] is True and body["git"]["ok"] is True
    assert body["git"]["repositories"] >= 1
