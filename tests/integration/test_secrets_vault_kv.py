"""KV version detection against a real OpenBao: a KV v1 mount (``kv1``) and the dev server's KV
v2 mount (``secret``) in one object, with neither ``AVP_KV_VERSION`` nor the annotation set.

kiln asks ``sys/internal/ui/mounts/<path>`` as the vault CLI does, once per mount; when the
server does not tell, it uses argocd-vault-plugin's default (KV v2). OpenBao answers that
endpoint for any path the token can read, so the "not permitted" case is shown twice: a token
without access to a mount, and a gateway written here (stdlib) that refuses the endpoint in
front of the real server, as an operator's API gateway may.
"""

from __future__ import annotations

import http.server
import json
import secrets as pysecrets
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import assert_clean_failure
from tests.integration.eso_helpers import docs, kiln, secret, write_app
from tests.integration.openbao import OpenBao, openbao
from tests.secrets_scan import PlaintextScan, plaintext_scan

__all__ = ["openbao", "plaintext_scan"]

pytestmark = pytest.mark.integration

MOUNTS = "sys/internal/ui/mounts/"


def _u(name: str) -> str:
    return f"{name}-{pysecrets.token_hex(5)}"


def _env(server: OpenBao, addr: str | None = None, token: str | None = None) -> dict[str, str]:
    return {"AVP_TYPE": "vault", "AVP_AUTH_TYPE": "token", "VAULT_ADDR": addr or server.addr,
            "VAULT_TOKEN": token or server.token}


class Gateway:
    """Forwards every request to OpenBao except ``sys/internal/ui/mounts``, answered 403."""

    def __init__(self, upstream: str) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                if self.path.startswith(f"/v1/{MOUNTS}"):
                    outer.refused += 1
                    body = b'{"errors":["permission denied"]}'
                    self.send_response(403)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                request = urllib.request.Request(upstream + self.path, data=data,
                                                 method=self.command)
                for name in ("X-Vault-Token", "Content-Type"):
                    if self.headers.get(name):
                        request.add_header(name, self.headers[name])
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        status, body = response.status, response.read()
                except urllib.error.HTTPError as exc:
                    status, body = exc.code, exc.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _forward

        self.refused = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(openbao: OpenBao) -> Iterator[Gateway]:
    gw = Gateway(openbao.addr)
    yield gw
    gw.close()


@pytest.fixture
def seeded(openbao: OpenBao, plaintext_scan: PlaintextScan) -> dict[str, str]:
    openbao.enable_kv("kv1", 1)
    values = {"p1": _u("kv1-one"), "p2": _u("kv1-two"), "p3": _u("kv2-three"),
              "p4": _u("kv2-four"), "path": _u("app")}
    openbao.kv1_put("kv1", values["path"], {"k": values["p1"]})
    openbao.kv1_put("kv1", values["path"] + "-b", {"k": values["p2"]})
    openbao.kv2_put("secret", values["path"], {"k": values["p3"]})
    openbao.kv2_put("secret", values["path"] + "-b", {"k": values["p4"]})
    plaintext_scan.add(values["p1"], values["p2"], values["p3"], values["p4"])
    return values


def test_kv1_and_kv2_mounts_resolve_in_one_object(openbao: OpenBao, tmp_path: Path,
                                                   seeded: dict[str, str]) -> None:
    p = seeded["path"]
    app = write_app(tmp_path, [secret(
        "s", a=f"<path:kv1/{p}#k>", b=f"<path:kv1/{p}-b#k>", c=f"<path:secret/data/{p}#k>",
        d=f"<path:secret/data/{p}-b#k>", e=f"ref+vault://secret/{p}#k")])
    before = len(openbao.audit_requests(MOUNTS))
    proc = kiln("generate", app, tmp_path, _env(openbao))
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"] == {
        "a": seeded["p1"], "b": seeded["p2"], "c": seeded["p3"], "d": seeded["p4"],
        "e": seeded["p3"]}
    # One mount lookup per mount, not per path.
    lookups = openbao.audit_requests(MOUNTS)[before:]
    assert len(lookups) == 2, lookups
    assert {lk.split("/")[4] for lk in lookups} == {"kv1", "secret"}


def test_refused_mount_lookup_falls_back_to_kv2(openbao: OpenBao, gateway: Gateway,
                                                 tmp_path: Path,
                                                 seeded: dict[str, str]) -> None:
    p = seeded["path"]
    kv2_only = write_app(tmp_path, [secret("s", c=f"<path:secret/data/{p}#k>")], name="v2")
    proc = kiln("generate", kv2_only, tmp_path, _env(openbao, gateway.url))
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"] == {"c": seeded["p3"]}
    assert gateway.refused >= 1
    # A KV v1 path read with AVP's default (v2) fails with AVP's hint; the annotation fixes it.
    mixed = write_app(tmp_path, [secret("s", a=f"<path:kv1/{p}#k>")], name="v1")
    proc = kiln("generate", mixed, tmp_path, _env(openbao, gateway.url))
    assert_clean_failure(proc, "Secret/s", "stringData.a", "KV v2")
    annotated = secret("s", a=f"<path:kv1/{p}#k>")
    annotated["metadata"]["annotations"] = {"avp.kubernetes.io/kv-version": "1"}
    fixed = write_app(tmp_path, [annotated], name="fixed")
    proc = kiln("generate", fixed, tmp_path, _env(openbao, gateway.url))
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"] == {"a": seeded["p1"]}


def test_token_without_access_to_the_mount_still_reads_and_reports_the_read(
        openbao: OpenBao, tmp_path: Path, seeded: dict[str, str]) -> None:
    p = seeded["path"]
    openbao.put_policy("kv-detect-kv1-only", 'path "kv1/*" { capabilities = ["read"] }\n')
    token = openbao.api("POST", "auth/token/create", {"policies": ["kv-detect-kv1-only"],
                                                      "no_default_policy": True})
    token = token["auth"]["client_token"]
    app = write_app(tmp_path, [secret("s", a=f"<path:kv1/{p}#k>",
                                      c=f"<path:secret/data/{p}#k>")])
    proc = kiln("generate", app, tmp_path, _env(openbao, token=token))
    assert_clean_failure(proc, "Secret/s", "stringData.c", "permission denied",
                         f"secret/data/{p}")
    # The read was made (AVP's default after the refused lookup) and refused by the server.
    assert f"secret/data/{p}" in openbao.audit_requests(f"secret/data/{p}")
    assert json.dumps(seeded["p3"]) not in proc.stderr and seeded["p1"] not in proc.stderr
