"""Credentials in helm repository URLs never reach kiln's error line, log or ``--debug`` trace.

The real helm fails against a closed loopback port and against the loopback chart repository
(tests/fixtures/helm/servers.py) refusing a wrong password; the URL is the one the test chose.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fixtures.helm.servers import WEBAPP, ChartRepo, helm_env, package
from tests.helpers import assert_clean_failure, run_kiln, tool
from tests.servers import free_port

pytestmark = pytest.mark.integration

USER, PASSWORD = "deployer", "right-Pass-4711"
URL_PASSWORD = "url-Pw-93e1c7"


def helm_app(parent: Path, name: str, repo_url: str) -> Path:
    app = parent / name
    app.mkdir()
    (app / "kiln.yaml").write_text(yaml.safe_dump(
        {"helm": {"repoURL": repo_url, "chart": "webapp", "version": "1.4.0"}}))
    return app


@pytest.fixture(scope="module")
def private_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRepo]:
    helm = tool("helm")
    home = helm_env(tmp_path_factory.mktemp("helm-home"))
    packages = tmp_path_factory.mktemp("packages")
    package(helm, WEBAPP, packages, home)
    with ChartRepo(packages, auth=(USER, PASSWORD)) as server:
        server.index(helm, home)
        yield server


@pytest.mark.parametrize("debug", [False, True])
def test_closed_port_error_shows_no_password(tmp_path: Path, cache_dir: Path,
                                             debug: bool) -> None:
    port = free_port()
    app = helm_app(tmp_path, "down", f"https://{USER}:{URL_PASSWORD}@127.0.0.1:{port}/")
    proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir),
                    *(["--debug"] if debug else []))
    assert URL_PASSWORD not in proc.stderr
    assert f"https://***@127.0.0.1:{port}/" in proc.stderr
    if debug:
        assert "Traceback" in proc.stderr and proc.returncode == 1 and proc.stdout == ""
    else:
        assert_clean_failure(proc, "chart webapp", "connection refused")


def test_refused_password_in_url_is_masked(private_repo: ChartRepo, tmp_path: Path,
                                           cache_dir: Path) -> None:
    url = private_repo.url.replace("http://", f"http://{USER}:{URL_PASSWORD}@")
    app = helm_app(tmp_path, "refused", url)
    for args in ([], ["--debug"]):
        proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir), *args)
        assert proc.returncode == 1 and proc.stdout == ""
        assert "401" in proc.stderr
        assert URL_PASSWORD not in proc.stderr
        assert USER not in proc.stderr  # the user goes with the password, as for Redis URLs


def test_debug_trace_of_a_redis_url_with_password(tmp_path: Path, cache_dir: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")
    url = f"redis://:{URL_PASSWORD}@127.0.0.1:{free_port()}/0"
    proc = run_kiln("cache", "stats", env={"KILN_CACHE_URL": url})
    assert_clean_failure(proc, "Redis cache unreachable")
    proc = run_kiln("render", str(app), "--debug", "--cache-dir", str(cache_dir),
                    env={"KILN_CACHE_URL": url})
    assert proc.returncode == 0, proc.stderr
    assert "unreachable" in proc.stderr and URL_PASSWORD not in proc.stderr
