"""Support for the ``kiln serve`` tests: start the real server (uvicorn) on 127.0.0.1 with a
free port, talk to it with a real HTTP client (httpx), read its metrics with
prometheus_client's parser.

The server runs as ``python -m kiln serve`` in its own session with a controlled operator
environment (a private ``KILN_CACHE_DIR`` and ``TMPDIR``); it is ready when ``/healthz``
answers 200. :func:`stop` (tests/servers.py) ends its process group by PID.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import REPO
from tests.servers import free_port, stop

START_TIMEOUT = 60.0


def operator_env(home: Path, cache: Path, extra: Mapping[str, str] | None = None
                 ) -> dict[str, str]:
    """The server's own environment: tools beside this Python, a private cache and HOME."""
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin",
                                 "/usr/bin", "/bin"]),
        "HOME": str(home),
        "KILN_CACHE_DIR": str(cache),
        "PYTHONPATH": str(REPO),
        "LANG": "C.UTF-8",
        "SOPS_DISABLE_VERSION_CHECK": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    env.update(extra or {})
    return env


@dataclass
class ServeServer:
    """A running ``kiln serve``."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    env: dict[str, str]
    scheme: str = "http"
    verify: ssl.SSLContext | bool = True
    token: str | None = None
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def base(self) -> str:
        """``scheme://127.0.0.1:port``."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def client(self, *, token: str | None = None, timeout: float = 120.0,
               verify: ssl.SSLContext | bool | None = None) -> httpx.Client:
        """A new HTTP client (closed with the server); ``token`` (default the server's)
        goes in ``Authorization: Bearer``."""
        token = token if token is not None else self.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        c = httpx.Client(base_url=self.base, headers=headers, timeout=timeout,
                         verify=self.verify if verify is None else verify)
        self.clients.append(c)
        return c

    def render(self, body: Mapping[str, Any], *, headers: Mapping[str, str] | None = None,
               client: httpx.Client | None = None) -> httpx.Response:
        """POST ``body`` (as JSON) to /v1/render."""
        return (client or self.client()).post("/v1/render", json=dict(body),
                                              headers=dict(headers or {}))

    def log_text(self) -> str:
        """What the server logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """``/metrics``, parsed by prometheus_client: (sample name, labels) -> value."""
        from prometheus_client.parser import text_string_to_metric_families

        resp = self.client().get("/metrics")
        assert resp.status_code == 200, resp.text
        out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(resp.text):
            for sample in family.samples:
                out[sample.name, frozenset(sample.labels.items())] = float(sample.value)
        return out

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
        want = set(labels.items())
        return sum(v for (n, lab), v in self.metrics().items() if n == name and want <= lab)

    def wait(self, timeout: float = 60.0) -> int:
        """Wait a bounded time for the process to exit; return its exit status."""
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        """Close the clients and stop the process group (SIGTERM, then SIGKILL)."""
        for c in self.clients:
            c.close()
        self.clients.clear()
        stop(self.proc)


def serve_argv(args: Sequence[str]) -> list[str]:
    """The command line of ``kiln serve ARGS`` under this Python."""
    return [sys.executable, "-m", "kiln", "serve", *args]


def start_serve(workdir: Path, args: Sequence[str] = (), *,
                extra_env: Mapping[str, str] | None = None, token: str | None = None,
                scheme: str = "http", verify: ssl.SSLContext | bool = True,
                port: int | None = None) -> ServeServer:
    """Start ``kiln serve --listen 127.0.0.1:<free port> ARGS`` and wait until /healthz
    answers (over TLS with ``verify`` when ``scheme`` is https)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in ("home", "tmp"):
        (workdir / sub).mkdir(exist_ok=True)
    env = operator_env(workdir / "home", workdir / "cache",
                       {"TMPDIR": str(workdir / "tmp"), **(extra_env or {})})
    port = port or free_port()
    log = workdir / f"serve-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(serve_argv(["--listen", f"127.0.0.1:{port}", *args]),
                                cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = ServeServer(proc, port, log, env, scheme, verify, token)
    try:
        wait_healthy(server)
    except BaseException:
        server.close()
        raise
    return server


def wait_healthy(server: ServeServer, timeout: float = START_TIMEOUT) -> None:
    """Poll (bounded) until ``/healthz`` answers 200."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.base, verify=server.verify, timeout=2) as c:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(f"kiln serve exited with {server.proc.returncode}:\n"
                                   f"{server.log_text()[-3000:]}")
            try:
                if c.get("/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"kiln serve not healthy after {timeout}s:\n{server.log_text()[-3000:]}")


def one_line_error(resp: httpx.Response, status: int) -> str:
    """Assert ``resp`` is ``status`` with a JSON body ``{"error": <one line>}`` and no
    traceback; return the line."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"error"}, body
    line = body["error"]
    assert isinstance(line, str) and line and "\n" not in line, body
    assert "Traceback" not in line, line
    return line
