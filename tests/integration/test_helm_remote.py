"""Remote charts: a loopback HTTP chart repository and a real OCI registry (docker-registry).

Both servers are real and started/stopped by the fixtures below; downloads are counted by the
servers themselves (the HTTP server's request log, the registry's access log).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.helm.servers import (
    WEBAPP,
    ChartRepo,
    Registry,
    helm_env,
    package,
)
from tests.helpers import assert_clean_failure, run_kiln, tool
from tests.integration.argo_yaml import argo_objects
from tests.servers import free_port

pytestmark = pytest.mark.integration

HOST = "web.example.com"
PARAMS = [{"name": "hostname", "value": HOST}]
USER, PASSWORD = "deployer", "s3cr3t-chart-pass"


@pytest.fixture(scope="module")
def helm() -> str:
    return tool("helm")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Helm homes for running helm directly in these tests."""
    return helm_env(tmp_path_factory.mktemp("raw-helm-home"))


@pytest.fixture(scope="module")
def packaged(helm: str, home: dict[str, str], tmp_path_factory: pytest.TempPathFactory
             ) -> Path:
    """The test chart (1.4.0 and 1.5.0) and its subchart, packaged by ``helm package``."""
    dest = tmp_path_factory.mktemp("packages")
    package(helm, WEBAPP, dest, home)
    package(helm, WEBAPP, dest, home, version="1.5.0")
    package(helm, WEBAPP / "charts" / "cache", dest, home)
    return dest


@pytest.fixture(scope="module")
def repo(helm: str, home: dict[str, str], packaged: Path) -> Iterator[ChartRepo]:
    with ChartRepo(packaged) as server:
        server.index(helm, home)
        yield server


@pytest.fixture(scope="module")
def private_repo(helm: str, home: dict[str, str], packaged: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRepo]:
    directory = tmp_path_factory.mktemp("private")
    shutil.copy(packaged / "webapp-1.4.0.tgz", directory)
    with ChartRepo(directory, auth=(USER, PASSWORD)) as server:
        server.index(helm, home)
        yield server


@pytest.fixture(scope="module")
def registry(helm: str, home: dict[str, str], packaged: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with Registry(tmp_path_factory.mktemp("registry")) as reg:
        for name in ("webapp-1.4.0.tgz", "cache-0.2.0.tgz"):
            subprocess.run([helm, "push", str(packaged / name), f"oci://{reg.host}/charts",
                            "--plain-http"], check=True, env=home, capture_output=True)
        yield reg


@pytest.fixture(scope="module")
def private_registry(helm: str, home: dict[str, str], packaged: Path,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with Registry(tmp_path_factory.mktemp("private-registry"), auth=(USER, PASSWORD)) as reg:
        subprocess.run([helm, "push", str(packaged / "webapp-1.4.0.tgz"),
                        f"oci://{reg.host}/charts", "--plain-http", "--username", USER,
                        "--password", PASSWORD], check=True, env=home, capture_output=True)
        yield reg


def make_app(parent: Path, name: str, **helm_opts: Any) -> Path:
    app = parent / name
    app.mkdir(parents=True)
    (app / "kiln.yaml").write_text(yaml.safe_dump({"helm": helm_opts}))
    return app


def kiln(app: Path, cache: Path, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    proc = run_kiln("render", str(app), "-o", "json", "--cache-dir", str(cache), env=env)
    assert proc.returncode == 0, proc.stderr
    data: list[dict[str, Any]] = json.loads(proc.stdout)
    return data


def raw(helm: str, env: dict[str, str], *argv: str) -> list[dict[str, Any]]:
    out = subprocess.run([helm, "template", *argv], check=True, capture_output=True, text=True,
                         env=env).stdout
    return argo_objects(out)


RAW_FLAGS = ["--namespace", "default", "--include-crds", "--set", f"hostname={HOST}"]


def test_http_repository_chart(helm: str, home: dict[str, str], repo: ChartRepo,
                               tmp_path: Path, cache_dir: Path) -> None:
    app = make_app(tmp_path, "shop", repoURL=repo.url, chart="webapp", version="1.4.0",
                   parameters=PARAMS)
    before = repo.chart_downloads()
    objects = kiln(app, cache_dir)
    assert repo.chart_downloads() == before + 1
    expected = raw(helm, home, "shop", "webapp", "--repo", repo.url, "--version", "1.4.0",
                   *RAW_FLAGS)
    assert objects == expected
    # a second app on the same chart (different values): the chart store serves it
    before = repo.chart_downloads()
    other = make_app(tmp_path, "blog", repoURL=repo.url, chart="webapp", version="1.4.0",
                     parameters=[{"name": "hostname", "value": "blog.example.com"}])
    kiln(other, cache_dir)
    kiln(app, cache_dir)
    assert repo.chart_downloads() == before


def test_oci_chart_downloaded_once(helm: str, home: dict[str, str], registry: Registry,
                                   packaged: Path, tmp_path: Path, cache_dir: Path) -> None:
    digest = hashlib.sha256((packaged / "webapp-1.4.0.tgz").read_bytes()).hexdigest()
    before = registry.chart_downloads("charts/webapp", digest)
    apps = [make_app(tmp_path, f"app{i}", repoURL=f"oci://{registry.host}/charts",
                     chart="webapp", version="1.4.0", plainHttp=True,
                     parameters=[{"name": "hostname", "value": f"a{i}.example.com"}])
            for i in range(3)]
    results = [kiln(app, cache_dir) for app in apps]
    assert registry.chart_downloads("charts/webapp", digest) == before + 1
    expected = raw(helm, home, "app1", f"oci://{registry.host}/charts/webapp", "--version",
                   "1.4.0", "--plain-http", "--namespace", "default", "--include-crds",
                   "--set", "hostname=a1.example.com")
    assert results[1] == expected
    # the digest is part of the key: the chart store memo records it
    refs = list((cache_dir / "tools/helm/store/charts/refs").glob("*.json"))
    assert [json.loads(r.read_text())["digest"] for r in refs] == [digest]


def test_oci_chart_given_as_full_reference(helm: str, home: dict[str, str],
                                           registry: Registry, tmp_path: Path,
                                           cache_dir: Path) -> None:
    app = make_app(tmp_path, "full", chart=f"oci://{registry.host}/charts/webapp",
                   version="1.4.0", plainHttp=True, parameters=PARAMS)
    expected = raw(helm, home, "full", f"oci://{registry.host}/charts/webapp", "--version",
                   "1.4.0", "--plain-http", *RAW_FLAGS)
    assert kiln(app, cache_dir) == expected


def test_unpinned_version_is_not_cached(helm: str, home: dict[str, str], repo: ChartRepo,
                                        tmp_path: Path, cache_dir: Path) -> None:
    app = make_app(tmp_path, "latest", repoURL=repo.url, chart="webapp", version="^1.0.0",
                   parameters=PARAMS)
    before = repo.chart_downloads()
    objects = kiln(app, cache_dir)
    kiln(app, cache_dir)
    assert repo.chart_downloads() == before + 2  # resolved afresh each time
    labels = next(o for o in objects if o["kind"] == "ConfigMap")["metadata"]["labels"]
    assert labels["helm.sh/chart"] == "webapp-1.5.0"
    assert list((cache_dir / "tools/helm/store/charts/refs").glob("*.json")) == []


def test_credentials_from_env_and_kiln_yaml(helm: str, home: dict[str, str],
                                            private_repo: ChartRepo, tmp_path: Path,
                                            cache_dir: Path) -> None:
    anon = make_app(tmp_path, "anon", repoURL=private_repo.url, chart="webapp",
                    version="1.4.0", parameters=PARAMS)
    proc = run_kiln("render", str(anon), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "webapp", "401")
    # The operator's credentials go to a repository kiln.yaml chose only by its leave.
    allow = {"KILN_ALLOW_APP_SETTINGS": "helm.repoURL"}
    objects = kiln(anon, cache_dir, env={"KILN_HELM_USERNAME": USER,
                                         "KILN_HELM_PASSWORD": PASSWORD, **allow})
    expected = raw(helm, home, "anon", "webapp", "--repo", private_repo.url, "--version",
                   "1.4.0", "--username", USER, "--password", PASSWORD, *RAW_FLAGS)
    assert objects == expected
    fresh = tmp_path / "fresh-cache"
    named = make_app(tmp_path, "named", repoURL=private_repo.url, chart="webapp",
                     version="1.4.0", username=USER, password="${KILN_HELM_CHART_PASS}",
                     parameters=PARAMS)
    # Credentials in kiln.yaml are repository level, and ${KILN_HELM_*} is the operator's
    # secret going to the repository kiln.yaml chose: the operator opts in to both.
    assert kiln(named, fresh, env={
        "KILN_HELM_CHART_PASS": PASSWORD,
        "KILN_ALLOW_APP_SETTINGS": "helm.username,helm.password,helm.repoURL"})
    for path in [*cache_dir.rglob("*"), *fresh.rglob("*")]:
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_dependencies_built_once_per_lock(helm: str, home: dict[str, str], repo: ChartRepo,
                                          tmp_path: Path, cache_dir: Path) -> None:
    scratch = tmp_path / "scratch" / "parent"
    scratch.mkdir(parents=True)
    (scratch / "Chart.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v2", "name": "parent", "version": "0.1.0",
        "dependencies": [{"name": "cache", "version": "0.2.0", "repository": repo.url,
                          "condition": "cache.enabled"}]}))
    (scratch / "values.yaml").write_text("cache:\n  enabled: true\n  size: tiny\n")
    (scratch / "templates").mkdir()
    (scratch / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n")
    subprocess.run([helm, "dependency", "build", str(scratch)], check=True, env=home,
                   capture_output=True)
    expected = raw(helm, home, "one", str(scratch), "--namespace", "default", "--include-crds")
    apps = []
    for name in ("one", "two"):
        app = tmp_path / name
        shutil.copytree(scratch, app, ignore=shutil.ignore_patterns("charts"))
        apps.append(app)
    before = repo.downloads["cache-0.2.0.tgz"]
    assert kiln(apps[0], cache_dir) == expected
    second = kiln(apps[1], cache_dir)
    assert second[0]["metadata"]["name"] == "two"
    assert repo.downloads["cache-0.2.0.tgz"] == before + 1
    assert not (apps[0] / "charts").exists()  # the app directory is never written


def test_unreachable_repository(tmp_path: Path, cache_dir: Path) -> None:
    app = make_app(tmp_path, "down", repoURL=f"http://127.0.0.1:{free_port()}",
                   chart="webapp", version="1.4.0")
    proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "chart webapp", "connection refused")


def test_chart_missing_from_repository(repo: ChartRepo, tmp_path: Path,
                                       cache_dir: Path) -> None:
    app = make_app(tmp_path, "nochart", repoURL=repo.url, chart="nope", version="1.0.0")
    proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "chart nope", "not found")


def test_remote_chart_over_size_cap(repo: ChartRepo, tmp_path: Path, cache_dir: Path) -> None:
    app = make_app(tmp_path, "big", repoURL=repo.url, chart="webapp", version="1.4.0",
                   maxChartBytes=100, parameters=PARAMS)
    proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "over the 100-byte limit")
    assert list((cache_dir / "tools/helm/store/charts/blobs").glob("*.tgz")) == []


def test_oci_registry_credentials(helm: str, home: dict[str, str], private_registry: Registry,
                                  tmp_path: Path, cache_dir: Path) -> None:
    ref = f"oci://{private_registry.host}/charts"
    anon = make_app(tmp_path, "anon", repoURL=ref, chart="webapp", version="1.4.0",
                    plainHttp=True, parameters=PARAMS)
    proc = run_kiln("render", str(anon), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "webapp")
    objects = kiln(anon, cache_dir, env={"KILN_HELM_USERNAME": USER,
                                         "KILN_HELM_PASSWORD": PASSWORD,
                                         "KILN_ALLOW_APP_SETTINGS": "helm.repoURL"})
    expected = raw(helm, home, "anon", f"{ref}/webapp", "--version", "1.4.0", "--plain-http",
                   "--username", USER, "--password", PASSWORD, *RAW_FLAGS)
    assert objects == expected
    for path in cache_dir.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_file_dependency_built_from_source_root(helm: str, home: dict[str, str],
                                                tmp_path: Path, cache_dir: Path) -> None:
    """A ``file://`` dependency outside the chart (but inside the source root) is built in the
    store, its files are part of the cache key, and the app directory is never written."""
    root = tmp_path / "repo"
    common = root / "libs" / "common"
    shutil.copytree(WEBAPP / "charts" / "cache", common)
    app = root / "apps" / "shop"
    (app / "templates").mkdir(parents=True)
    (app / "Chart.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v2", "name": "shop", "version": "0.1.0",
        "dependencies": [{"name": "cache", "version": "0.2.0",
                          "repository": "file://../../libs/common"}]}))
    (app / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n")
    first = run_kiln("render", str(app), "-o", "json", "--cache-dir", str(cache_dir),
                     "--source-root", str(root))
    assert first.returncode == 0, first.stderr
    scratch = Path(shutil.copytree(root, tmp_path / "scratch"))
    subprocess.run([helm, "dependency", "build", str(scratch / "apps" / "shop")], check=True,
                   env=home, capture_output=True)
    expected = raw(helm, home, "shop", str(scratch / "apps" / "shop"), "--namespace",
                   "default", "--include-crds")
    assert json.loads(first.stdout) == expected
    assert sorted(p.name for p in app.iterdir()) == ["Chart.yaml", "templates"]
    # editing the local dependency invalidates the render
    values = common / "values.yaml"
    values.write_text("size: huge\n")
    second = run_kiln("render", str(app), "-o", "json", "--cache-dir", str(cache_dir),
                      "--source-root", str(root))
    assert second.returncode == 0, second.stderr
    sts = next(o for o in json.loads(second.stdout) if o["kind"] == "StatefulSet")
    assert sts["metadata"]["labels"]["kiln.test/size"] == "huge"
    # and a dependency outside the source root is refused
    outside = run_kiln("render", str(app), "--cache-dir", str(cache_dir),
                       "--source-root", str(app))
    assert_clean_failure(outside, "outside the source root")


def test_parallel_renders_download_once(registry: Registry, packaged: Path, tmp_path: Path,
                                        cache_dir: Path) -> None:
    """Four kiln processes started together on one chart: the store's lock lets one download."""
    import os
    import sys

    from tests.helpers import REPO

    digest = hashlib.sha256((packaged / "cache-0.2.0.tgz").read_bytes()).hexdigest()
    before = registry.chart_downloads("charts/cache", digest)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = []
    for i in range(4):
        app = make_app(tmp_path, f"p{i}", repoURL=f"oci://{registry.host}/charts",
                       chart="cache", version="0.2.0", plainHttp=True)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "kiln", "render", str(app), "--cache-dir", str(cache_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env))
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outputs]
    assert registry.chart_downloads("charts/cache", digest) == before + 1
    assert all(b"kind: StatefulSet" in out for out, _ in outputs)
