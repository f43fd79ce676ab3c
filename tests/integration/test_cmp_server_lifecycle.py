"""``kiln cmp serve`` as a process: socket naming and clean-up, signals, drain, deadlines and
cancellation killing the tool's process group, the cache and single-flight seen through the
metrics endpoint and through a helm wrapper that counts real ``helm template`` runs."""

from __future__ import annotations

import base64
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import yaml

from tests.cmp_client import RepoServerClient, prepare
from tests.integration.cmp_serve import (
    SERVING,
    Server,
    argo_env,
    cli,
    commit,
    git_repo,
    helm_wrapper,
    one_line,
    pid_gone,
    response_objects,
    rpc_error,
    short_dir,
    sidecar_env,
    start_server,
    wait_for,
)

pytestmark = pytest.mark.integration

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "values.yaml": "marker: m1\n",
    "templates/cm.yaml": """\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {{ .Release.Name }}
        data:
          marker: {{ .Values.marker | quote }}
        """,
}


def _repo(root: Path, apps: tuple[str, ...] = ("web",)) -> Path:
    files: dict[str, str] = {"README.md": "r\n"}
    for app in apps:
        files.update({f"apps/{app}/{k}": v for k, v in CHART.items()})
    return git_repo(root, files)


def _env(app: str) -> dict[str, str]:
    return argo_env(app_name=app, source_path=f"apps/{app}")


def _templates(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def _stale_socket(path: Path) -> None:
    """Leave a unix socket file nobody listens on (a crashed server's)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()
    assert path.exists()


# -- sockets and signals -------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_default_socket_name_stale_socket_and_exit(tmp_path: Path, sig: signal.Signals) -> None:
    """The socket is <ARGOCD_PLUGINSOCKFILEPATH>/<name>[-<version>].sock from the plugin.yaml
    kiln generates; a stale one is replaced; the server removes its own on the signal."""
    proc = cli(["cmp", "plugin-yaml"], tmp_path, sidecar_env(tmp_path, tmp_path / "c"))
    assert proc.returncode == 0, proc.stderr
    meta = yaml.safe_load(proc.stdout)
    name = meta["metadata"]["name"]
    version = meta["spec"].get("version")
    sock_name = f"{name}-{version}.sock" if version else f"{name}.sock"
    with short_dir() as sockets:
        expected = sockets / sock_name
        _stale_socket(expected)
        server = start_server(tmp_path / "srv", socket=None, wait_path=expected,
                              extra_env={"ARGOCD_PLUGINSOCKFILEPATH": str(sockets)})
        try:
            assert sorted(p.name for p in sockets.iterdir()) == [sock_name]
            client = server.client()
            assert client.health() == SERVING
            repo = _repo(tmp_path / "repo")
            got = response_objects(client.generate_manifest(repo, "apps/web",
                                                            _env("web")).manifests)
            assert got[0]["data"] == {"marker": "m1"}
            server.signal(sig)
            assert server.wait(60) == 0, server.log_text()[-2000:]
            assert not expected.exists()
        finally:
            server.close()


def test_socket_flag_overrides_the_directory(tmp_path: Path) -> None:
    with short_dir() as sockets, short_dir() as other:
        path = sockets / "custom.sock"
        server = start_server(tmp_path / "srv", socket=path, metrics=False,
                              extra_env={"ARGOCD_PLUGINSOCKFILEPATH": str(other)})
        try:
            assert list(other.iterdir()) == []
            assert server.client().check_plugin_configuration().isDiscoveryConfigured
        finally:
            server.signal(signal.SIGTERM)
            assert server.wait(60) == 0
            server.close()
        assert not path.exists()


def test_large_response_beyond_grpc_default_cap(tmp_path: Path) -> None:
    """Responses above gRPC's 4 MiB default pass (100 MiB caps on both sides). The values are
    random (incompressible), so the stream is as large and no ratio limit is near."""
    files = {"README.md": "r\n"}
    for i in range(6):
        blob = base64.b64encode(os.urandom(768 * 1024)).decode()
        files[f"apps/big/cm{i}.yaml"] = (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                         f"  name: big{i}\ndata:\n  blob: {blob}\n")
    repo = git_repo(tmp_path / "repo", files)
    with short_dir() as sockets:
        server = start_server(tmp_path / "srv", socket=sockets / "kiln.sock", metrics=False)
        try:
            response = server.client().generate_manifest(repo, "apps/big", _env("big"),
                                                         chunk_size=65536)
            assert response.ByteSize() > 6 * (1 << 20)
            objs = response_objects(response.manifests)
            assert sorted(o["metadata"]["name"] for o in objs) == [f"big{i}" for i in range(6)]
        finally:
            server.close()


# -- the cache, single-flight and metrics --------------------------------------------------------

@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[Server, Path, Path]]:
    """A server whose helm is a wrapper logging each ``helm template`` (slowed by 1 s so
    concurrent identical requests overlap); yields (server, repo, template log)."""
    log = tmp_path / "templates.log"
    wrapper = helm_wrapper(tmp_path / "helm", log=log, before_template="sleep 1")
    repo = _repo(tmp_path / "repo", ("web", "api"))
    with short_dir() as sockets:
        server = start_server(tmp_path / "srv", socket=sockets / "kiln.sock",
                              extra_env={"KILN_HELM": str(wrapper)})
        try:
            yield server, repo, log
        finally:
            server.close()


def _renders(server: Server) -> tuple[float, float]:
    """(hits, renders that were not hits) from kiln_renders_total."""
    hits = server.metric("kiln_renders_total", result="hit")
    return hits, server.metric("kiln_renders_total") - hits


def test_second_identical_request_is_a_cache_hit(counted: tuple[Server, Path, Path]) -> None:
    server, repo, log = counted
    client = server.client()
    first = client.generate_manifest(repo, "apps/web", _env("web"))
    assert _templates(log) == 1
    hits0, renders0 = _renders(server)
    assert renders0 >= 1
    second = client.generate_manifest(repo, "apps/web", _env("web"))
    assert list(second.manifests) == list(first.manifests)
    assert _templates(log) == 1  # helm did not run again
    hits1, renders1 = _renders(server)
    assert (hits1 - hits0, renders1 - renders0) == (1, 0)
    # A commit elsewhere in the repository (new checksum, same app content): still a hit.
    commit(repo, {"apps/api/values.yaml": "marker: m2\n"})
    third = client.generate_manifest(repo, "apps/web", _env("web"))
    assert list(third.manifests) == list(first.manifests)
    assert _templates(log) == 1
    assert _renders(server)[0] - hits1 == 1
    # The changed app renders again, with the new value.
    api = response_objects(client.generate_manifest(repo, "apps/api", _env("api")).manifests)
    assert api[0]["data"] == {"marker": "m2"} and _templates(log) == 2
    ok = server.metric("kiln_requests_total", method="GenerateManifest")
    assert ok >= 4


def test_twenty_identical_concurrent_requests_render_once(
        counted: tuple[Server, Path, Path]) -> None:
    server, repo, log = counted
    stream = prepare(repo, "apps/web", _env("web"))
    client = server.client()
    barrier = threading.Barrier(20, timeout=60)

    def call(_: int) -> list[str]:
        barrier.wait()
        return list(client.send("GenerateManifest", stream).manifests)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(call, range(20), timeout=300))
    assert all(r == results[0] for r in results) and results[0]
    assert _templates(log) == 1
    hits, renders = _renders(server)
    assert renders == 1, server.metrics()
    shared = server.metric("kiln_singleflight_shared_total")
    assert hits + shared >= 19


# -- deadlines, cancellation and drain -----------------------------------------------------------

def _hang_wrapper(tmp_path: Path) -> tuple[Path, Path]:
    """A helm whose ``template`` for an app named *hang* starts a sleeping child in its process
    group and writes "<sh pid> <sleep pid>" to the returned file."""
    pids = tmp_path / "hang.pids"
    code = (f'case "$*" in *hang*) sleep 300 & echo "$$ $!" > "{pids}.tmp"; '
            f'mv "{pids}.tmp" "{pids}"; wait; exit 1;; esac')
    return helm_wrapper(tmp_path / "helm", before_template=code), pids


def _read_pids(path: Path) -> list[int]:
    wait_for(path.exists, "the hung helm to start", timeout=60)
    return [int(p) for p in path.read_text().split()]


@pytest.fixture
def hanging(tmp_path: Path) -> Iterator[tuple[Server, Path, Path]]:
    wrapper, pids = _hang_wrapper(tmp_path)
    repo = _repo(tmp_path / "repo", ("web", "hang"))
    with short_dir() as sockets:
        server = start_server(tmp_path / "srv", socket=sockets / "kiln.sock",
                              extra_env={"KILN_HELM": str(wrapper)})
        try:
            yield server, repo, pids
        finally:
            server.close()


def test_hung_tool_is_killed_at_the_deadline(hanging: tuple[Server, Path, Path]) -> None:
    server, repo, pid_file = hanging
    client = server.client()
    started = time.monotonic()
    exc = rpc_error(lambda: client.generate_manifest(repo, "apps/hang", _env("hang"),
                                                     timeout=6))
    elapsed = time.monotonic() - started
    assert exc.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN,
                          grpc.StatusCode.CANCELLED), exc
    assert elapsed < 6 + 2, elapsed
    if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
        one_line(exc.details())
    # Errors name the repository's paths, never the server's private directories.
    assert "kiln-cmp-" not in (exc.details() or "") and "/tree-" not in (exc.details() or "")
    pids = _read_pids(pid_file)
    wait_for(lambda: all(pid_gone(p) for p in pids), f"helm's process group {pids} to end",
             timeout=15)
    ok = response_objects(client.generate_manifest(repo, "apps/web", _env("web")).manifests)
    assert ok[0]["data"] == {"marker": "m1"}


def test_cancel_during_render_kills_the_tool(hanging: tuple[Server, Path, Path]) -> None:
    server, repo, pid_file = hanging
    client = server.client()
    future = client.future_raw("GenerateManifest",
                               prepare(repo, "apps/hang", _env("hang")).requests(), timeout=120)
    pids = _read_pids(pid_file)
    assert future.cancel()
    with pytest.raises(grpc.FutureCancelledError):
        future.result(timeout=30)
    wait_for(lambda: all(pid_gone(p) for p in pids), f"helm's process group {pids} to end",
             timeout=15)
    assert server.client().health() == SERVING
    ok = response_objects(client.generate_manifest(repo, "apps/web", _env("web")).manifests)
    assert ok[0]["data"] == {"marker": "m1"}


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    """SIGTERM while four renders run: each completes with its own objects, then the process
    exits 0 and its socket is gone."""
    marks = tmp_path / "marks"
    marks.mkdir()
    release = tmp_path / "release"
    code = (f'touch "{marks}/$$"; i=0; while [ ! -e "{release}" ] && [ $i -lt 600 ]; do '
            f'sleep 0.05; i=$((i+1)); done')
    wrapper = helm_wrapper(tmp_path / "helm", before_template=code)
    apps = ("a1", "a2", "a3", "a4")
    repo = _repo(tmp_path / "repo", apps)
    with short_dir() as sockets:
        path = sockets / "kiln.sock"
        server = start_server(tmp_path / "srv", socket=path, args=["--parallelism", "4",
                                                                   "--drain-seconds", "60"],
                              extra_env={"KILN_HELM": str(wrapper)})
        try:
            client = server.client()
            futures = [client.future_raw("GenerateManifest",
                                         prepare(repo, f"apps/{a}", _env(a)).requests(),
                                         timeout=120) for a in apps]
            wait_for(lambda: len(list(marks.iterdir())) == 4, "four renders in flight",
                     timeout=60)
            server.signal(signal.SIGTERM)
            # Draining: the server no longer reports SERVING (or refuses new calls) while
            # the in-flight renders still wait on the wrapper.
            wait_for(lambda: not _serving(path), "the server to start draining", timeout=15)
            assert server.proc.poll() is None
            release.touch()
            for app, future in zip(apps, futures, strict=True):
                objs = response_objects(future.result(timeout=60).manifests)
                assert [o["metadata"]["name"] for o in objs] == [app]
            assert server.wait(60) == 0, server.log_text()[-2000:]
            assert not path.exists()
        finally:
            release.touch()
            server.close()


def _serving(path: Path) -> bool:
    with RepoServerClient(path, timeout=1) as client:
        try:
            return client.health(timeout=1) == SERVING
        except grpc.RpcError:
            return False


def test_new_connection_after_exit_is_refused(tmp_path: Path) -> None:
    with short_dir() as sockets:
        path = sockets / "kiln.sock"
        server = start_server(tmp_path / "srv", socket=path, metrics=False)
        server.signal(signal.SIGTERM)
        assert server.wait(60) == 0
        server.close()
        with RepoServerClient(path, timeout=3) as client:
            exc = rpc_error(lambda: client.health(timeout=3))
        assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_no_discovery_spares_named_apps_the_match_call(tmp_path: Path) -> None:
    with short_dir() as sockets:
        server = start_server(tmp_path / "srv", socket=sockets / "kiln.sock", metrics=False,
                              args=["--no-discovery"])
        try:
            assert not server.client().check_plugin_configuration().isDiscoveryConfigured
        finally:
            server.close()


def test_servers_sharing_a_tmpdir_keep_out_of_each_others_work(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", ("web",))
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    with short_dir() as sockets:
        first = start_server(tmp_path / "one", socket=sockets / "one.sock", metrics=False,
                             extra_env={"TMPDIR": str(shared)})
        second = start_server(tmp_path / "two", socket=sockets / "two.sock", metrics=False,
                              extra_env={"TMPDIR": str(shared)})
        try:
            assert len(list(shared.glob("kiln-cmp-*"))) == 2
            for server in (first, second):
                objs = response_objects(server.client().generate_manifest(
                    repo, "apps/web", _env("web")).manifests)
                assert objs[0]["data"] == {"marker": "m1"}
            first.signal(signal.SIGTERM)
            assert first.wait(60) == 0
            assert len(list(shared.glob("kiln-cmp-*"))) == 1  # its own directory went with it
            commit(repo, {"apps/web/values.yaml": "marker: m2\n"})
            objs = response_objects(second.client().generate_manifest(
                repo, "apps/web", _env("web")).manifests)
            assert objs[0]["data"] == {"marker": "m2"}
        finally:
            first.close()
            second.close()
