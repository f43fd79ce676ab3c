"""Start real servers for tests: on 127.0.0.1, a free port, readiness-checked, killed by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(ready: Callable[[], bool], what: str, proc: subprocess.Popen[bytes],
               timeout: float = 30.0, log: Path | None = None) -> None:
    """Poll ``ready`` until it is true; fail with the server's output if it dies or times out.

    The output is the captured stdout, or the tail of ``log`` for a server started with one.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if log is not None:
                out = log.read_text(errors="replace") if log.exists() else ""
            else:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}: {out[-2000:]}")
        with contextlib.suppress(OSError):
            if ready():
                return
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"{what} not ready after {timeout}s")


def port_open(port: int) -> bool:
    """Tell whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


def http_ready(url: str, accept: Sequence[int] = (), context: ssl.SSLContext | None = None,
               timeout: float = 2.0) -> bool:
    """Tell whether ``url`` answers a GET with a 2xx status (or one of the ``accept`` codes).

    Connection failures and other HTTP errors raise ``OSError``, which :func:`wait_until`
    treats as "not ready yet".
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return 200 <= int(response.status) < 300
    except urllib.error.HTTPError as exc:
        if exc.code in accept:
            return True
        raise


def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the process, or its whole process group when it leads one (own session)."""
    if os.getpgid(proc.pid) == proc.pid:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started by :func:`start`, by its PID (SIGTERM, then SIGKILL).

    A server started with a ``log`` runs in its own session: its whole process group is stopped.
    """
    if proc.poll() is not None:
        return
    try:
        _signal(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL)
            proc.wait(timeout=10)
    except ProcessLookupError:  # it exited in the meantime
        proc.wait(timeout=10)


def start(argv: Sequence[str], cwd: Path | None = None, *, log: Path | None = None,
          env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a server process with its output captured (in a pipe, or in the file ``log``).

    With ``log`` the server runs in its own session, so :func:`stop` ends its process group.
    ``env`` replaces the environment when given.
    """
    if log is None:
        return subprocess.Popen(list(argv), cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=None if env is None else dict(env))
    with log.open("wb") as out:
        return subprocess.Popen(list(argv), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=None if env is None else dict(env),
                                start_new_session=True)


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """Run Debian's redis-server on a free loopback port; yield its redis:// URL."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = start([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                  "--appendonly", "no", "--dir", str(workdir)])
    try:
        wait_until(lambda: port_open(port), "redis-server", proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)
