"""A real ``moto_server`` (PyPI ``moto[server]``) on 127.0.0.1 for AWS tests (KMS, Secrets Manager).

moto is an AWS API emulator: no real AWS can be reached here, so it stands in for the service.
Use the session fixture ``moto_server`` (import it into a test module or conftest)::

    from tests.integration.moto import moto_server  # noqa: F401

It yields a :class:`MotoServer` whose ``env`` holds fake credentials, ``AWS_REGION`` and
``AWS_ENDPOINT_URL`` for boto3 and for tools (sops, aws). The server is started on a free port,
waited for with a bounded retry, and stopped by its own PID at teardown.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import tool

READY_TIMEOUT = 30.0
REGION = "us-east-1"


@dataclass
class MotoServer:
    """A running moto server: its URL and the environment that points AWS clients at it."""

    url: str
    pid: int
    env: dict[str, str] = field(default_factory=dict)

    def client(self, service: str):  # type: ignore[no-untyped-def]
        """A boto3 client for ``service`` talking to this server."""
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def reset(self) -> None:
        """Forget every resource the server holds (moto's reset endpoint)."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).read()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited early with code {proc.returncode}")
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"moto_server not ready after {READY_TIMEOUT}s")


def start_moto(log_dir: Path) -> tuple[MotoServer, subprocess.Popen[bytes]]:
    """Start moto_server on 127.0.0.1 and a free port; return it once it answers."""
    binary = tool("moto_server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(log_dir / "moto.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        _wait_ready(url, proc)
    except BaseException:
        stop_moto(proc)
        raise
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": url,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return MotoServer(url, proc.pid, env), proc


def stop_moto(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server by its own PID (process group), waiting a bounded time."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A moto server shared by the whole test session."""
    server, proc = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        stop_moto(proc)
