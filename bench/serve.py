"""Benchmark ``kiln serve`` replicas (issue 17 §6): a git monorepo through the HTTP API with two
replicas on one Redis, against the raw tools per app in the same run.

A monorepo of N apps (``bench/monorepo.py``: helm, kustomize, directory and jsonnet in turn,
each with its Argo CD Application's options), a real ``redis-server`` and two ``kiln serve``
processes on loopback sharing it (``--cache-url``, separate local directories), then:

1. raw tools, one process per app, as Argo CD's repo-server runs them: the reference objects
   of every app and the reference time;
2. a full refresh: ``POST /v1/render`` ``{"git": {repoURL, revision: main, path}, settings}``
   for every app, app *i* to replica *i mod 2*, ``--concurrency`` clients at once (cold: every
   app is a miss);
3. a commit changing one app (``one_app_commit``), then a full refresh again with every app
   sent to the **other** replica than in step 2: everything but the changed app must be a hit
   found in Redis (rendered by the other replica), and exactly one render in total;
4. the same refresh once more, nothing changed: hits each replica answers from its own key
   memo (the steady state of a controller refreshing every few minutes);
5. ``--sample`` of those hits again from one client, for the latency of a hit without
   queueing behind the other clients.

Every answer is checked against the raw tools' objects (parsed with PyYAML, compared per app),
so a wrong answer cannot be timed as a fast one; a mismatch is printed and the exit code is 1.
Latency is measured by the client (request sent to body read); "hit" and "miss" by the
answer's ``cacheHit``. Renders are counted from the replicas' ``kiln_renders_total{result=
"render"}`` (before/after each step). RSS is each replica's ``VmRSS`` and ``VmHWM`` (from
/proc; tools it ran are separate processes, counted by the raw column instead).

Targets: 1 render after the one-app commit; RSS <= 150 MB per replica.

Usage: python bench/serve.py [--apps N] [--concurrency N] [--parallelism N] [--jobs N]
                            [--sample N] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.monorepo import (  # noqa: E402  (after the path set-up)
    BenchApp,
    Monorepo,
    canonical,
    make_monorepo,
    one_app_commit,
    parse_output,
    raw_command,
)

TARGET_RSS_MB = 150.0


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the request an Application stands for -----------------------------------------------------

def settings_for(app: BenchApp) -> dict[str, Any]:
    """kiln.yaml-shaped settings with the effect of ``app``'s Application (its destination
    namespace and source options), sent as the request's ``settings``."""
    settings: dict[str, Any] = {"namespace": app.namespace}
    source = app.source
    if app.kind == "helm":
        helm = source["helm"]
        settings["helm"] = {"releaseName": helm["releaseName"],
                            "valueFiles": list(helm["valueFiles"]),
                            "parameters": [dict(p) for p in helm["parameters"]]}
    elif app.kind == "kustomize":
        opts = source["kustomize"]
        settings["kustomize"] = {"namePrefix": opts["namePrefix"],
                                 "images": list(opts["images"])}
    elif app.kind == "jsonnet":
        opts = source["directory"]["jsonnet"]
        settings["jsonnet"] = {"libs": list(opts["libs"]),
                               "tlas": [dict(t) for t in opts["tlas"]]}
    else:
        settings["directory"] = {"recurse": bool(source["directory"].get("recurse"))}
    return settings


# -- processes ---------------------------------------------------------------------------------

def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(ready: Any, what: str, proc: subprocess.Popen[bytes], log_file: Path,
             timeout: float = 90) -> None:
    """Poll ``ready()`` until true; fail with the log's tail when the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log_file.read_text(errors='replace')[-2000:]}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {timeout}s")


@dataclass
class Replica:
    """One running ``kiln serve``."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def render(self, body: bytes) -> tuple[dict[str, Any], float]:
        """POST /v1/render; the answer and the client-side seconds."""
        request = urllib.request.Request(self.base + "/v1/render", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=300) as response:
            data = response.read()
        seconds = time.perf_counter() - started
        return json.loads(data), seconds

    def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples with ``labels``."""
        with urllib.request.urlopen(self.base + "/metrics", timeout=30) as response:
            text = response.read().decode()
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        total = 0.0
        for line in text.splitlines():
            head, _, value = line.rpartition(" ")
            sample, _, label_text = head.partition("{")
            if not line.startswith("#") and sample == name and all(w in label_text
                                                                   for w in wanted):
                total += float(value)
        return total

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) of the server process, in MB."""
        values = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
        return values["VmRSS"], values["VmHWM"]


def start_redis(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server on a free loopback port; its process and URL."""
    port = free_port()
    out = work / "redis.log"
    with out.open("wb") as handle:
        proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                                 "--save", "", "--appendonly", "no", "--dir", str(work)],
                                stdout=handle, stderr=subprocess.STDOUT)

    def ready() -> bool:
        import socket

        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    wait_for(ready, "redis-server", proc, out)
    return proc, f"redis://127.0.0.1:{port}/0"


def start_replica(work: Path, name: str, cache_url: str, repo_url: str,
                  parallelism: int) -> Replica:
    """``kiln serve`` on a free loopback port with its own directories and the shared Redis."""
    port = free_port()
    home = work / name
    (home / "tmp").mkdir(parents=True)
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin",
                                    "/usr/bin", "/bin"]),
           "HOME": str(home), "TMPDIR": str(home / "tmp"), "LANG": "C.UTF-8",
           "PYTHONPATH": str(REPO)}
    out = work / f"{name}.log"
    with out.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kiln", "serve", "--listen", f"127.0.0.1:{port}",
             "--cache-url", cache_url, "--cache-dir", str(home / "cache"),
             "--git-cache-dir", str(home / "git"), "--allow-repo", repo_url,
             "--parallelism", str(parallelism)],
            cwd=home, env=env, stdout=handle, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
    replica = Replica(name, proc, port, out)

    def ready() -> bool:
        with urllib.request.urlopen(replica.base + "/healthz", timeout=2) as response:
            return int(response.status) == 200

    wait_for(ready, f"kiln serve {name}", proc, out)
    return replica


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, by PID."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# -- the steps ---------------------------------------------------------------------------------

@dataclass
class Pass:
    """One refresh of every app through the replicas."""

    label: str
    seconds: float = 0.0
    hits: list[float] = field(default_factory=list)     # client seconds of each hit
    misses: list[float] = field(default_factory=list)   # ... of each miss
    renders: float = 0.0                                 # kiln_renders_total{result=render}
    mismatches: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.hits) + len(self.misses)


def raw_tools(repo: Monorepo, scratch: Path, jobs: int
              ) -> tuple[dict[str, list[str]], float, list[float]]:
    """Each app's canonical objects from the raw tool, the wall time of all of them on
    ``jobs`` workers, and each one's seconds."""
    commands = [raw_command(repo, app, scratch / app.name) for app in repo.apps]
    expected: dict[str, list[str]] = {}
    each: list[float] = []

    def run(cmd: Any) -> None:
        started = time.perf_counter()
        out = cmd.run()
        each.append(time.perf_counter() - started)
        expected[cmd.app.name] = canonical(parse_output(out, cmd.output))

    started = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(run, commands))
    return expected, time.perf_counter() - started, each


def refresh(label: str, repo: Monorepo, repo_url: str, replicas: Sequence[Replica],
            offset: int, concurrency: int, expected: dict[str, list[str]]) -> Pass:
    """Every app through the API, app i to replica (i + offset) mod 2; each answer must be
    the raw tool's objects at the repository's HEAD commit."""
    head = repo.head()
    step = Pass(label)
    lock = threading.Lock()
    before = sum(r.metric("kiln_renders_total", result="render") for r in replicas)

    def one(app: BenchApp) -> None:
        replica = replicas[(app.index + offset) % len(replicas)]
        body = json.dumps({"git": {"repoURL": repo_url, "revision": "main", "path": app.path},
                           "settings": settings_for(app)}).encode()
        try:
            answer, seconds = replica.render(body)
        except Exception as exc:  # noqa: BLE001 - counted and shown, the run goes on
            detail = exc.read().decode(errors="replace")[:300] if hasattr(exc, "read") else ""
            with lock:
                step.errors.append(f"{app.name} via {replica.name}: {exc} {detail}")
            return
        got = canonical(answer["objects"])
        with lock:
            (step.hits if answer["cacheHit"] else step.misses).append(seconds)
            if got != expected[app.name] or answer["revision"] != head:
                step.mismatches.append(app.name)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, repo.apps))
    step.seconds = time.perf_counter() - started
    step.renders = sum(r.metric("kiln_renders_total", result="render")
                       for r in replicas) - before
    return step


def summary(step: Pass) -> dict[str, Any]:
    """A pass's figures for --json (percentiles, not every latency)."""
    return {"label": step.label, "seconds": step.seconds, "requests": step.requests,
            "hits": len(step.hits), "misses": len(step.misses), "renders": step.renders,
            "hit_p50": pct(step.hits, 50), "hit_p99": pct(step.hits, 99),
            "miss_p50": pct(step.misses, 50), "miss_p99": pct(step.misses, 99),
            "errors": step.errors[:10], "mismatches": step.mismatches[:10]}


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values`` (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def ms(seconds: float) -> str:
    """Seconds as milliseconds for the table."""
    return "-" if seconds != seconds else f"{seconds * 1000:.1f}"


def main() -> int:
    """Run the benchmark; print the table (and JSON with --json); 1 when a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8,
                        help="client requests in flight at once (default 8)")
    parser.add_argument("--parallelism", type=int, default=2,
                        help="each replica's --parallelism (default 2)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2,
                        help="raw tool processes at once (default: the CPU count)")
    parser.add_argument("--sample", type=int, default=100,
                        help="apps asked one at a time in the last step (default 100)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kiln-bench-serve-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        log(f"monorepo of {args.apps} apps in {work}")
        repo = make_monorepo(work / "repo", args.apps)
        repo_url = "file://" + str(repo.root)
        log("raw tools, one process per app")
        expected, raw_seconds, raw_each = raw_tools(repo, work / "raw", args.jobs)
        redis_proc, cache_url = start_redis(work)
        procs.append(redis_proc)
        replicas = []
        for name in ("a", "b"):
            replica = start_replica(work, name, cache_url, repo_url, args.parallelism)
            procs.append(replica.proc)
            replicas.append(replica)
        log("full refresh (cold)")
        cold = refresh("full refresh (cold)", repo, repo_url, replicas, 0, args.concurrency,
                       expected)
        changed = repo.apps[len(repo.apps) // 2]
        one_app_commit(repo, changed.index)
        # a controller hears of the push a moment later: past the replicas' revision memo
        # (kiln.gitsource.REF_TTL, 3 s), "main" names the new commit
        from kiln.gitsource import REF_TTL

        time.sleep(REF_TTL + 0.5)
        scratch = work / "raw-after"
        cmd = raw_command(repo, changed, scratch)
        expected[changed.name] = canonical(parse_output(cmd.run(), cmd.output))
        log(f"one-app commit ({changed.name}), full refresh on the other replicas")
        after = refresh("refresh after a one-app commit", repo, repo_url, replicas, 1,
                        args.concurrency, expected)
        log("full refresh again, no change (the replicas' own memo)")
        warm = refresh("refresh again, no change", repo, repo_url, replicas, 1,
                       args.concurrency, expected)
        sample = repo.apps[:: max(1, len(repo.apps) // args.sample)][: args.sample]
        log(f"{len(sample)} hits again with one client (latency without queueing)")
        alone = refresh(f"{len(sample)} hits, one client", Monorepo(repo.root, sample),
                        repo_url, replicas, 1, 1, expected)
        memory = {r.name: r.memory_mb() for r in replicas}
    finally:
        for proc in reversed(procs):
            stop(proc)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")

    ok = True
    print(f"kiln serve: {args.apps} apps, 2 replicas on one Redis, {args.concurrency} "
          f"clients, --parallelism {args.parallelism}, {os.cpu_count()} CPUs")
    print()
    print("| step | wall s | requests/s | hits | hit p50 ms | hit p99 ms | misses | "
          "miss p50 ms | miss p99 ms | renders |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    raw_mean = statistics.fmean(raw_each)
    print(f"| raw tools, one process per app ({args.jobs} at once) | {raw_seconds:.1f} | "
          f"{args.apps / raw_seconds:.1f} | - | - | - | {args.apps} | {ms(pct(raw_each, 50))} | "
          f"{ms(pct(raw_each, 99))} | {args.apps} |")
    for step in (cold, after, warm, alone):
        print(f"| {step.label} | {step.seconds:.1f} | {step.requests / step.seconds:.1f} | "
              f"{len(step.hits)} | {ms(pct(step.hits, 50))} | {ms(pct(step.hits, 99))} | "
              f"{len(step.misses)} | {ms(pct(step.misses, 50))} | {ms(pct(step.misses, 99))} | "
              f"{step.renders:g} |")
    print()
    for name, (rss, hwm) in memory.items():
        verdict = "ok" if hwm <= TARGET_RSS_MB else "OVER"
        ok = ok and hwm <= TARGET_RSS_MB
        print(f"replica {name}: RSS {rss:.0f} MB, peak (VmHWM) {hwm:.0f} MB "
              f"(target <= {TARGET_RSS_MB:.0f} MB: {verdict})")
    if alone.hits:
        print(f"raw tool mean per app: {raw_mean * 1000:.1f} ms; a hit alone (p50) "
              f"{ms(pct(alone.hits, 50))} ms: {raw_mean / pct(alone.hits, 50):.0f}x faster")
    renders_ok = after.renders == 1 and len(after.misses) == 1
    ok = ok and renders_ok
    print(f"renders after the one-app commit: {after.renders:g} (target 1: "
          f"{'ok' if renders_ok else 'FAILED'}); misses {len(after.misses)}")
    if warm.renders or alone.renders:
        ok = False
        print(f"the unchanged refreshes rendered {warm.renders + alone.renders:g} times "
              "(target 0)")
    for step in (cold, after, warm, alone):
        if step.errors or step.mismatches:
            ok = False
            print(f"{step.label}: {len(step.errors)} errors, {len(step.mismatches)} answers "
                  f"unlike the raw tools: {(step.errors + step.mismatches)[:5]}")
    if cold.renders != args.apps:
        print(f"note: the cold refresh counted {cold.renders:g} renders for {args.apps} apps")
    if args.json:
        print(json.dumps({"apps": args.apps, "raw_seconds": raw_seconds,
                          "passes": [summary(p) for p in (cold, after, warm, alone)],
                          "memory_mb": memory}, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
