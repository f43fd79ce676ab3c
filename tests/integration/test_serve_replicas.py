"""Two ``kiln serve`` processes on loopback over one real redis-server behave as one: a render
by one replica is a hit on the other, a burst of identical requests over both renders once
(counted by a helm wrapper, an oracle outside kiln), and Redis dying mid-run leaves both
rendering locally, reported in /readyz and the metrics, until it comes back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers import REPO
from tests.integration.cmp_serve import commit, git, git_repo, helm_wrapper
from tests.servers import free_port, http_ready, port_open, start, stop, wait_until

pytestmark = pytest.mark.integration

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: {name}\nversion: 0.1.0\n",
    "values.yaml": "greeting: hello\n",
    "templates/cm.yaml": ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}"
                          "\ndata:\n  greeting: {{ .Values.greeting }}\n"),
}


def write_chart(root: Path, name: str) -> None:
    for rel, text in CHART.items():
        path = root / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("{name}", name))


@dataclass
class Replica:
    """One running ``kiln serve``."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def render(self, path: str, timeout: float = 60, *,
               git: dict[str, str] | None = None) -> dict[str, Any]:
        body = {"git": git} if git is not None else {"path": path}
        request = urllib.request.Request(
            self.base + "/v1/render", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            assert response.status == 200
            body: dict[str, Any] = json.loads(response.read())
            return body

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as response:
                return int(response.status), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels`` (at least one
        sample must exist)."""
        with urllib.request.urlopen(self.base + "/metrics", timeout=10) as response:
            text = response.read().decode()
        total, found = 0.0, False
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            sample, _, label_text = head.partition("{")
            if sample == name and all(w in label_text for w in wanted):
                total += float(value)
                found = True
        assert found, f"no sample {name}{labels} in the metrics"
        return total


def start_replica(work: Path, name: str, *, root: Path, cache_url: str, helm: Path) -> Replica:
    port = free_port()
    home = work / name / "home"
    home.mkdir(parents=True)
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "HOME": str(home), "LANG": "C.UTF-8", "PYTHONPATH": str(REPO),
        "TMPDIR": str(home), "KILN_HELM": str(helm),
    }
    log = work / f"{name}.log"
    proc = start([sys.executable, "-m", "kiln", "serve", "--listen", f"127.0.0.1:{port}",
                  "--allow-root", str(root), "--cache-url", cache_url,
                  "--cache-dir", str(work / name / "cache"), "--parallelism", "4"],
                 log=log, env=env)
    replica = Replica(proc, port, log)
    wait_until(lambda: http_ready(replica.base + "/healthz"), f"kiln serve {name}", proc,
               timeout=60, log=log)
    return replica


@dataclass
class Cluster:
    a: Replica
    b: Replica
    root: Path
    templates: Path   # one line per `helm template` run, by either replica
    redis_url: str
    redis_port: int
    redis_proc: subprocess.Popen[bytes]

    def templates_run(self) -> int:
        return len(self.templates.read_text().splitlines()) if self.templates.exists() else 0


def start_redis(port: int, work: Path) -> subprocess.Popen[bytes]:
    proc = start(["/usr/bin/redis-server", "--bind", "127.0.0.1", "--port", str(port),
                  "--save", "", "--appendonly", "no", "--dir", str(work)])
    wait_until(lambda: port_open(port), "redis-server", proc)
    return proc


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    root = tmp_path / "apps"
    root.mkdir()
    templates = tmp_path / "templates.log"
    helm = helm_wrapper(tmp_path / "helm", log=templates, before_template="sleep 1")
    port = free_port()
    redis_proc = start_redis(port, tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    replicas: list[Replica] = []
    try:
        for name in ("a", "b"):
            replicas.append(start_replica(tmp_path, name, root=root, cache_url=url, helm=helm))
        yield Cluster(replicas[0], replicas[1], root, templates, url, port, redis_proc)
    finally:
        for replica in replicas:
            stop(replica.proc)
        stop(redis_proc)


def test_a_render_by_one_replica_is_a_hit_on_the_other(cluster: Cluster) -> None:
    write_chart(cluster.root, "web")
    first = cluster.a.render("web")
    assert first["cacheHit"] is False
    assert [o["data"]["greeting"] for o in first["objects"]] == ["hello"]
    second = cluster.b.render("web")
    assert second["cacheHit"] is True
    assert second["objects"] == first["objects"] and second["key"] == first["key"]
    assert cluster.templates_run() == 1
    assert cluster.a.metric("kiln_renders_total", result="render") == 1
    assert cluster.b.metric("kiln_renders_total", result="render") == 0
    assert cluster.b.metric("kiln_renders_total", result="hit") == 1


@pytest.mark.parametrize("source", ["path", "git"])
def test_identical_concurrent_requests_over_both_replicas_render_once(
        cluster: Cluster, tmp_path: Path, source: str) -> None:
    git_source: dict[str, str] | None = None
    if source == "git":
        files = {f"apps/burst/{rel}": text.replace("{name}", "burst")
                 for rel, text in CHART.items()}
        files["apps/warm/cm.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w\n"
        repo = git_repo(tmp_path / "repo", files)
        git_source = {"repoURL": "file://" + str(repo), "revision": "main",
                      "path": "apps/burst"}
        for replica in (cluster.a, cluster.b):  # mirror and tree ready: the burst is the render
            warm = replica.render("", git={**git_source, "path": "apps/warm"})
            assert [o["metadata"]["name"] for o in warm["objects"]] == ["w"]
    else:
        write_chart(cluster.root, "burst")
    before = [r.metric("kiln_renders_total", result="render") for r in (cluster.a, cluster.b)]
    answers: list[dict[str, Any]] = []
    failures: list[BaseException] = []
    gate = threading.Barrier(20)

    def ask(replica: Replica) -> None:
        try:
            gate.wait(30)
            answers.append(replica.render("burst", git=git_source))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=ask, args=(cluster.a if i % 2 else cluster.b,))
               for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    assert len(answers) == 20
    assert all(a["objects"] == answers[0]["objects"] for a in answers)
    assert [o["metadata"]["name"] for o in answers[0]["objects"]] == ["burst"]
    assert cluster.templates_run() == 1  # one helm template over both replicas
    renders = [r.metric("kiln_renders_total", result="render") - b
               for r, b in zip((cluster.a, cluster.b), before, strict=True)]
    assert sorted(renders) == [0, 1]
    waited = sum(r.metric("kiln_distlock_total", outcome="waited")
                 for r in (cluster.a, cluster.b))
    assert waited == 1  # the other replica's leader waited for the lock, then hit


def test_redis_killed_mid_run_both_render_locally_and_recover(cluster: Cluster) -> None:
    write_chart(cluster.root, "before")
    write_chart(cluster.root, "during")
    write_chart(cluster.root, "after")
    assert cluster.a.render("before")["cacheHit"] is False
    status, ready = cluster.a.get("/readyz")
    assert status == 200 and ready["cache"]["ok"] is True
    pid = int(redis.Redis.from_url(cluster.redis_url).info("server")["process_id"])
    os.kill(pid, signal.SIGKILL)
    cluster.redis_proc.wait(10)
    # every request still succeeds: misses rendered locally, on both replicas
    for replica in (cluster.a, cluster.b):
        for app in ("before", "during"):
            answer = replica.render(app)
            assert [o["metadata"]["name"] for o in answer["objects"]] == [app]
    for replica in (cluster.a, cluster.b):
        status, ready = replica.get("/readyz")
        assert status == 200  # still serving (rendering without the shared cache)
        assert ready["cache"]["ok"] is False and ready["cache"]["error"]
        assert "127.0.0.1" in ready["cache"]["location"]
        assert replica.metric("kiln_redis_up") == 0
        assert replica.metric("kiln_redis_errors_total") >= 1
    # the outage is logged once per replica, not once per request
    for replica in (cluster.a, cluster.b):
        lines = [ln for ln in replica.log.read_text().splitlines() if "unreachable" in ln]
        assert len(lines) == 1, lines
    # Redis comes back (empty): readiness reports it, and sharing resumes
    cluster.redis_proc = start_redis(cluster.redis_port, cluster.root.parent)
    give_up = time.monotonic() + 20
    for replica in (cluster.a, cluster.b):
        while not replica.get("/readyz")[1]["cache"]["ok"]:
            assert time.monotonic() < give_up, "readiness did not see Redis come back"
            time.sleep(0.2)
    time.sleep(1.1)  # past the store's back-off after the last failure
    before = cluster.templates_run()
    assert cluster.a.render("after")["cacheHit"] is False
    assert cluster.b.render("after")["cacheHit"] is True
    assert cluster.templates_run() == before + 1
    assert cluster.a.metric("kiln_redis_up") == 1


def test_git_sources_share_renders_across_replicas(cluster: Cluster, tmp_path: Path) -> None:
    """Each replica has its own bare mirror; the same commit gives the same cache key, so a
    render by A is a hit on B, and after a commit that changes one app only that app renders
    (on B, found by neither memo), the other a hit."""
    files = {f"apps/{name}/{rel}": text.replace("{name}", name)
             for name in ("one", "two") for rel, text in CHART.items()}
    repo = git_repo(tmp_path / "repo", files)
    url = "file://" + str(repo)
    first = {n: cluster.a.render("", git={"repoURL": url, "revision": "main",
                                          "path": f"apps/{n}"}) for n in ("one", "two")}
    head = git(repo, "rev-parse", "HEAD").strip()
    assert all(a["cacheHit"] is False and a["revision"] == head for a in first.values())
    for name in ("one", "two"):
        on_b = cluster.b.render("", git={"repoURL": url, "revision": head,
                                         "path": f"apps/{name}"})
        assert on_b["cacheHit"] is True and on_b["objects"] == first[name]["objects"]
    assert cluster.templates_run() == 2
    changed = commit(repo, {"apps/two/values.yaml": "greeting: changed\n"})
    answers = {n: cluster.b.render("", git={"repoURL": url, "revision": changed,
                                            "path": f"apps/{n}"}) for n in ("one", "two")}
    assert answers["one"]["cacheHit"] is True
    assert answers["two"]["cacheHit"] is False
    assert [o["data"]["greeting"] for o in answers["two"]["objects"]] == ["changed"]
    assert cluster.templates_run() == 3
    assert cluster.b.metric("kiln_renders_total", result="render") == 1
