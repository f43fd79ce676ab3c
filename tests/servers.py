"""Start real servers for tests: on 127.0.0.1, a free port, readiness-checked, killed by PID."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(ready: Callable[[], bool], what: str, proc: subprocess.Popen[bytes],
               timeout: float = 30.0) -> None:
    """Poll ``ready`` until it is true; fail with the server's output if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
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


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started by :func:`start`, by its PID (SIGTERM, then SIGKILL)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start(argv: Sequence[str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a server process with its output captured."""
    return subprocess.Popen(list(argv), cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


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
