"""Support for the ``kiln cmp serve`` tests: start the real server, build real git repos, ask
the CLI (the oracle the issue names: the server must print what ``kiln generate .`` prints).

The server runs as ``python -m kiln cmp serve`` in its own session with a controlled sidecar
environment (a private ``KILN_CACHE_DIR``); it is ready when its socket answers the gRPC health
check. Unix socket paths must stay short (108 bytes), so sockets live in a ``/tmp/kcmp-*``
directory of their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml

from tests.cmp_client import RepoServerClient
from tests.helpers import REPO, param_vars, tool
from tests.servers import free_port, stop

SERVING = 1  # grpc.health.v1.HealthCheckResponse.SERVING
REVISION = "8d2f7c1e9b4a6f3d2c1b0a9e8f7d6c5b4a3f2e1d"
REPO_URL = "https://git.example.com/platform/gitops.git"
KUBE_VERSION = "1.31.0"
API_VERSIONS = ("v1", "apps/v1", "batch/v1", "networking.k8s.io/v1")
START_TIMEOUT = 60.0


# -- environments --------------------------------------------------------------------------------

def sidecar_env(home: Path, cache: Path, extra: Mapping[str, str] | None = None
                ) -> dict[str, str]:
    """The sidecar container's own (operator) environment."""
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin",
                                 "/usr/bin", "/bin"]),
        "HOME": str(home),
        "KILN_CACHE_DIR": str(cache),
        "PYTHONPATH": str(REPO),
        "LANG": "C.UTF-8",
        "SOPS_DISABLE_VERSION_CHECK": "1",
    }
    env.update(extra or {})
    return env


def argo_env(*, app_name: str, source_path: str, namespace: str = "web-prod",
             params: Sequence[Mapping[str, Any]] = (),
             plugin_env: Mapping[str, str] | None = None,
             revision: str = REVISION) -> dict[str, str]:
    """The variables Argo CD's repo-server puts in ``metadata.env`` for a GenerateManifest:
    the build env, KUBE_VERSION/KUBE_API_VERSIONS, ARGOCD_ENV_* and the parameters."""
    env = {
        "ARGOCD_APP_NAME": app_name,
        "ARGOCD_APP_NAMESPACE": namespace,
        "ARGOCD_APP_PROJECT_NAME": "default",
        "ARGOCD_APP_REVISION": revision,
        "ARGOCD_APP_REVISION_SHORT": revision[:7],
        "ARGOCD_APP_REVISION_SHORT_8": revision[:8],
        "ARGOCD_APP_SOURCE_PATH": source_path,
        "ARGOCD_APP_SOURCE_REPO_URL": REPO_URL,
        "ARGOCD_APP_SOURCE_TARGET_REVISION": "main",
        "KUBE_VERSION": KUBE_VERSION,
        "KUBE_API_VERSIONS": ",".join(API_VERSIONS),
    }
    for key, value in (plugin_env or {}).items():
        env[f"ARGOCD_ENV_{key}"] = value
    if params:
        env["ARGOCD_APP_PARAMETERS"] = json.dumps(list(params))
        env.update(param_vars(params))
    return env


# -- git repositories ----------------------------------------------------------------------------

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}


def git(root: Path, *args: str) -> str:
    """Run the real git binary in ``root``; return stdout."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")}, **GIT_ENV}
    proc = subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def write_files(root: Path, files: Mapping[str, str]) -> None:
    """Write ``files`` (relative path -> dedented text) under ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


def git_repo(root: Path, files: Mapping[str, str]) -> Path:
    """A real git repository holding ``files`` in one commit."""
    root.mkdir(parents=True, exist_ok=True)
    write_files(root, files)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


def commit(root: Path, files: Mapping[str, str], message: str = "change") -> str:
    """Write ``files`` and commit them; return the new revision."""
    write_files(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


# -- the CLI oracle ------------------------------------------------------------------------------

def cli(args: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float = 180
        ) -> subprocess.CompletedProcess[str]:
    """Run ``python -m kiln ARGS`` with exactly ``env`` (sidecar env plus request env)."""
    return subprocess.run([sys.executable, "-m", "kiln", *args], cwd=cwd, env=dict(env),
                          capture_output=True, text=True, timeout=timeout)


def cli_objects(app_dir: Path, env: Mapping[str, str]) -> list[dict[str, Any]]:
    """The objects ``kiln generate .`` prints in ``app_dir`` (its JSON output, decoded)."""
    proc = cli(["generate", ".", "-o", "json"], app_dir, env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    return data if isinstance(data, list) else [data]


def cli_yaml_objects(app_dir: Path, env: Mapping[str, str]) -> list[dict[str, Any]]:
    """The objects ``kiln generate .`` prints as YAML (the form plugin.yaml runs)."""
    proc = cli(["generate", "."], app_dir, env)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc is not None]


def response_objects(manifests: Sequence[str]) -> list[dict[str, Any]]:
    """Decode ``ManifestResponse.manifests``: each entry must be one JSON object."""
    out = []
    for text in manifests:
        obj = json.loads(text)
        assert isinstance(obj, dict), text
        out.append(obj)
    return out


# -- the server ----------------------------------------------------------------------------------

@contextlib.contextmanager
def short_dir() -> Iterator[Path]:
    """A short private directory for unix sockets, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="kcmp-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Server:
    """A running ``kiln cmp serve``."""

    proc: subprocess.Popen[bytes]
    socket: Path
    log: Path
    env: dict[str, str]
    metrics_port: int | None = None
    clients: list[RepoServerClient] = field(default_factory=list)

    def client(self, timeout: float = 120.0) -> RepoServerClient:
        """A new client on the server's socket (closed when the server is stopped)."""
        c = RepoServerClient(self.socket, timeout=timeout)
        self.clients.append(c)
        return c

    def log_text(self) -> str:
        """What the server logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """The metrics endpoint, parsed by prometheus_client: (sample name, labels) -> value."""
        from prometheus_client.parser import text_string_to_metric_families

        assert self.metrics_port is not None, "started without --metrics-addr"
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as resp:
            text = resp.read().decode()
        out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[sample.name, frozenset(sample.labels.items())] = float(sample.value)
        return out

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
        want = set(labels.items())
        return sum(v for (n, lab), v in self.metrics().items() if n == name and want <= lab)

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the server process (by its PID)."""
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        """Wait a bounded time for the process to exit; return its exit status."""
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        """Close the clients and stop the process group (SIGTERM, then SIGKILL)."""
        for c in self.clients:
            c.close()
        self.clients.clear()
        stop(self.proc)


def start_server(workdir: Path, *, socket: Path | None, args: Sequence[str] = (),
                 extra_env: Mapping[str, str] | None = None, metrics: bool = True,
                 wait_path: Path | None = None) -> Server:
    """Start ``kiln cmp serve`` (``--socket socket`` unless None) and wait until it is SERVING.

    ``wait_path`` is the socket to wait for when ``socket`` is None (the default naming).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "home").mkdir(exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    # The sidecar's own /tmp (an emptyDir in deploy/argocd); each server also keeps its work in
    # a $TMPDIR/kiln-cmp-<pid>-* directory of its own.
    env = sidecar_env(workdir / "home", workdir / "server-cache",
                      {"TMPDIR": str(workdir / "tmp"), **(extra_env or {})})
    argv = [sys.executable, "-m", "kiln", "cmp", "serve", *args]
    if socket is not None:
        argv += ["--socket", str(socket)]
    port = None
    if metrics:
        port = free_port()
        argv += ["--metrics-addr", f"127.0.0.1:{port}"]
    log = workdir / f"server-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    path = socket if socket is not None else wait_path
    assert path is not None
    server = Server(proc, path, log, env, port)
    try:
        wait_serving(server)
    except BaseException:
        server.close()
        raise
    return server


def wait_serving(server: Server, timeout: float = START_TIMEOUT) -> None:
    """Poll (bounded) until the socket exists and the health check says SERVING."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"kiln cmp serve exited with {server.proc.returncode}:\n"
                               f"{server.log_text()[-3000:]}")
        if server.socket.exists():
            with RepoServerClient(server.socket, timeout=2) as c:
                try:
                    if c.health() == SERVING:
                        return
                except grpc.RpcError:
                    pass
        time.sleep(0.05)
    raise RuntimeError(f"kiln cmp serve not serving after {timeout}s:\n"
                       f"{server.log_text()[-3000:]}")


def wait_for(predicate: Any, what: str, timeout: float = 30.0, interval: float = 0.02) -> None:
    """Poll ``predicate`` (bounded); fail naming ``what`` when it never holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def pid_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie awaiting its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def real_helm() -> str:
    """The real helm binary the wrappers delegate to."""
    return tool("helm")


def helm_wrapper(path: Path, *, before_template: str = "", log: Path | None = None) -> Path:
    """A KILN_HELM wrapper script: on ``template`` it appends a line to ``log``, runs the shell
    code ``before_template``, then execs the real helm; anything else goes straight to helm."""
    lines = ["#!/bin/sh", 'if [ "$1" = template ]; then']
    if log is not None:
        lines.append(f'  echo "$$" >> "{log}"')
    if before_template:
        lines.append("  " + before_template)
    lines += ["fi", f'exec "{real_helm()}" "$@"', ""]
    path.write_text("\n".join(lines))
    path.chmod(0o755)
    return path


def one_line(details: str | None) -> str:
    """Assert a gRPC error message is one clean line (no traceback); return it."""
    assert details, "no error message"
    assert "\n" not in details.strip(), details
    assert "Traceback" not in details, details
    return details


def rpc_error(call: Any) -> grpc.RpcError:
    """Run ``call()``; assert it raises a gRPC status error and return it."""
    try:
        call()
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("the call succeeded; a gRPC error was expected")
