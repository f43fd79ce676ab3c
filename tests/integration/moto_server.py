"""A real AWS Secrets Manager API for tests: ``moto_server`` from PyPI ``moto[server]``.

``start_moto`` runs ``moto_server`` on 127.0.0.1 (a free port) in its own process group, waits
a bounded time until it answers, and returns a :class:`MotoServer`; ``stop_moto`` kills it by
PID (both through ``tests/servers.py``).
The session fixture ``moto_server`` wraps both (each pytest-xdist worker gets its own server);
tests reset its state through ``/moto-api/reset``. ``env()`` is what a kiln subprocess needs to
talk to it: ``AWS_ENDPOINT_URL``, a region and fake static credentials (no real AWS config is
read).
"""

from __future__ import annotations

import os
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import tool
from tests.servers import free_port, http_ready, start, stop, wait_until

READY_TIMEOUT = 30.0
REGION = "us-east-1"
FAKE_KEY = "testing"
FAKE_SECRET = "testing"


@dataclass
class MotoServer:
    """A running moto_server: its URL and process."""

    url: str
    process: subprocess.Popen[bytes]
    log_file: Path

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for boto3 (in-process or a kiln subprocess) to use this server."""
        env = {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": FAKE_KEY,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        env.update(extra)
        return env

    def client(self, service: str = "secretsmanager", **kwargs: Any) -> Any:
        """A boto3 client bound to this server with the fake credentials."""
        import boto3

        args: dict[str, Any] = {"region_name": REGION, "endpoint_url": self.url,
                                "aws_access_key_id": FAKE_KEY,
                                "aws_secret_access_key": FAKE_SECRET}
        args.update(kwargs)
        return boto3.client(service, **args)

    def reset(self) -> None:
        """Forget every secret (moto's reset API)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10):
            pass


def start_moto(log_dir: Path, env: dict[str, str] | None = None) -> MotoServer:
    """Start moto_server on a free loopback port; fail (never skip) if it does not come up.

    ``env`` adds to the server's environment (e.g. ``INITIAL_NO_AUTH_ACTION_COUNT``).
    """
    port = free_port()
    log_file = log_dir / f"moto-{port}.log"
    process = start([tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)], log=log_file,
                    env={**os.environ, **(env or {})})
    server = MotoServer(f"http://127.0.0.1:{port}", process, log_file)
    wait_until(lambda: http_ready(f"{server.url}/moto-api/"), "moto_server", process,
               READY_TIMEOUT, log=log_file)
    return server


def stop_moto(server: MotoServer) -> None:
    """Kill the server's process group by its PID and reap it."""
    stop(server.process)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto_server per test session (per xdist worker)."""
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        stop_moto(server)
