"""Deadlines, not per-read timeouts: hostile servers cannot hold kiln past its limits.

The hostile servers are written here with the standard library (they are attackers, not mocks
of a product): ``Drip`` answers ``200`` with a large Content-Length and then sends one byte
every half second, which a per-socket-read timeout never trips; ``Silent`` listens but never
accepts, so a connection opens and no byte ever comes back. Times are measured around the real
``kiln`` CLI subprocess; on a loaded machine Python start-up and SDK imports take seconds, so
each bound is checked against a baseline run of the same command that fails at once (a closed
port, no retries), measured in the same test.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, assert_clean_failure
from tests.integration.eso_helpers import clear_ambient, kiln, secret, write_app

pytestmark = pytest.mark.integration

VAULT_TOKEN = "drip-test-token"


class Drip:
    """Answers every request with 200 headers, then one body byte per ``interval`` seconds."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests = 0
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                self.requests += 1
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000000\r\n\r\n")
                while not self.stop.is_set():
                    conn.sendall(b" ")
                    time.sleep(self.interval)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


class Silent:
    """A listening socket that never accepts: connects succeed, nothing is ever answered."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def drip() -> Iterator[Drip]:
    server = Drip()
    yield server
    server.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _no_ambient(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_ambient(monkeypatch)
    monkeypatch.delenv("KILN_TIMEOUT", raising=False)


def _vault_env(url: str, **extra: str) -> dict[str, str]:
    return {"AVP_TYPE": "vault", "AVP_AUTH_TYPE": "token", "VAULT_ADDR": url,
            "VAULT_TOKEN": VAULT_TOKEN, **extra}


def _aws_env(url: str, **extra: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": url, "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true", **extra}


def _timed(*args: object, **kwargs: object) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = kiln(*args, **kwargs)  # type: ignore[arg-type]
    return proc, time.monotonic() - started


def _closed_port() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def _baseline(section: str, ref: str, env: dict[str, str], tmp_path: Path) -> float:
    """Seconds the same command takes when the backend refuses at once (no retries)."""
    app = write_app(tmp_path, [secret("s", pw=ref)], {"secrets": {section: {"retries": 0}}},
                    name="baseline")
    proc, elapsed = _timed("generate", app, tmp_path, env)
    assert proc.returncode == 1, proc.stderr
    return elapsed


def test_vault_drip_is_cut_at_the_read_timeout(drip: Drip, tmp_path: Path) -> None:
    ref = "<path:secret/data/drip#pw>"
    app = write_app(tmp_path, [secret("s", pw=ref)], {"secrets": {"vault": {"timeout": 2}}})
    proc, elapsed = _timed("generate", app, tmp_path, _vault_env(drip.url))
    assert_clean_failure(proc, "vault", "within 2s", "secret/data/drip")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert drip.requests >= 1
    base = _baseline("vault", ref, _vault_env(_closed_port()), tmp_path)
    assert elapsed < base + 2 + 1.5, (elapsed, base)
    assert elapsed < 15, elapsed  # the per-socket-read timeout alone ran for over 35 s


def test_aws_drip_is_cut_at_the_read_timeout(drip: Drip, tmp_path: Path) -> None:
    ref = "ref+awssecrets://drip#pw"
    app = write_app(tmp_path, [secret("s", pw=ref)], {"secrets": {"aws": {"timeout": 2}}})
    proc, elapsed = _timed("generate", app, tmp_path, _aws_env(drip.url))
    assert_clean_failure(proc, "aws-secretsmanager", "within 2s", "drip")
    assert drip.requests >= 1
    base = _baseline("aws", ref, _aws_env(_closed_port()), tmp_path)
    assert elapsed < base + 2 + 1.5, (elapsed, base)
    assert elapsed < 15, elapsed


def test_unanswered_vault_ends_with_kilns_own_deadline_error(silent: Silent,
                                                              tmp_path: Path) -> None:
    # Default settings (30 s per read, 3 retries): the whole-command deadline ends it.
    app = write_app(tmp_path, [secret("s", a="<path:secret/data/one#pw>",
                                      b="<path:secret/data/two#pw>")])
    proc, elapsed = _timed("generate", app, tmp_path, _vault_env(silent.url, KILN_TIMEOUT="3"))
    assert_clean_failure(proc, "3s deadline (KILN_TIMEOUT)", "reading from vault",
                         "2 read(s) pending", "secret/data/one", "secret/data/two")
    assert len(proc.stderr.strip().splitlines()) == 1
    base = _startup(tmp_path)
    assert elapsed < base + 3 + 1.5, (elapsed, base)


def test_unanswered_aws_on_a_stream_ends_with_the_deadline_error(silent: Silent,
                                                                  tmp_path: Path) -> None:
    stream = json.dumps(secret("s", pw="ref+awssecrets://quiet#pw"))
    proc, elapsed = _timed("generate", "-", tmp_path, _aws_env(silent.url, KILN_TIMEOUT="3"),
                           stdin=stream)
    assert_clean_failure(proc, "3s deadline (KILN_TIMEOUT)", "aws-secretsmanager", "quiet")
    base = _startup(tmp_path)
    assert elapsed < base + 3 + 1.5, (elapsed, base)


def _startup(tmp_path: Path) -> float:
    """Seconds a ``kiln generate -`` of an empty stream takes (start-up to exit)."""
    proc, elapsed = _timed("generate", "-", tmp_path, {}, stdin="")
    assert proc.returncode == 0, proc.stderr
    return elapsed


def test_watchdog_ends_a_step_no_timeout_reaches(tmp_path: Path) -> None:
    """stdin that never ends: no read timeout applies, the watchdog prints the error."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "kiln", "generate", "-"], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                                 "KILN_TIMEOUT": "2",
                                 "KILN_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.wait(timeout=20)  # stdin stays open: kiln's read of it never ends by itself
    finally:
        if proc.poll() is None:
            proc.kill()
    elapsed = time.monotonic() - started
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdin.close()
    assert proc.returncode == 1, (out, err)
    assert out == ""
    assert err.strip().splitlines() == [
        "kiln: error: gave up after the 2s deadline (KILN_TIMEOUT) while reading the manifest "
        "stream <stdin>"]
    base = _startup(tmp_path)
    assert elapsed < base + 2 + 2 + 1.5, (elapsed, base)


def test_bad_kiln_timeout_is_a_config_error(tmp_path: Path) -> None:
    proc = kiln("generate", "-", tmp_path, {"KILN_TIMEOUT": "soon"}, stdin="")
    assert_clean_failure(proc, "KILN_TIMEOUT must be a number of seconds", "'soon'")
