"""The Google Secret Manager resolver through the real ``kiln`` CLI and the real client library.

No Secret Manager emulator exists in any registry this project can use, so the server is the
documented loopback FAKE of :mod:`tests.integration.gcp_fake` (a real gRPC server built from
the client library's own request/response types); kiln's client reaches it over an insecure
channel with anonymous credentials (``secrets.gcp.endpoint`` + ``insecure``). The test seeds it
through the real client. Every test that resolves ends with the plaintext scan.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import assert_clean_failure
from tests.integration.eso_helpers import (
    b64,
    clear_ambient,
    docs,
    kiln,
    secret,
    unique,
    write_app,
)
from tests.integration.gcp_fake import FakeSecretManager, gcp_fake, gcp_fake_server
from tests.secrets_scan import PlaintextScan, plaintext_scan
from tests.servers import free_port

__all__ = ["gcp_fake", "gcp_fake_server", "plaintext_scan"]

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_ambient(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_ambient(monkeypatch)
    # The apps name the fake's endpoint in kiln.yaml (repository level): the operator opts in.
    monkeypatch.setenv("KILN_ALLOW_APP_SETTINGS", "secrets.gcp.endpoint,secrets.gcp.insecure")


def _settings(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {"secrets": {"gcp": {"endpoint": endpoint, "insecure": True, **extra}}}


def test_vals_and_avp_forms_versions_json_and_raw(
        gcp_fake: FakeSecretManager, tmp_path: Path, plaintext_scan: PlaintextScan) -> None:
    v1 = {"user": unique("u"), "pw": unique("pw-one")}
    v2 = {**v1, "pw": unique("pw-two")}
    raw = unique("raw-token")
    blob = b"\xff\xfe" + unique("b").encode()
    gcp_fake.put("proj-1", "db", json.dumps(v1), json.dumps(v2))
    gcp_fake.put("proj-1", "token", raw)
    gcp_fake.put("proj-1", "blob", blob)
    plaintext_scan.add(v1["pw"], v2["pw"], v1["user"], raw, b64(blob))
    app = write_app(tmp_path, [
        secret("vals", pw="ref+gcpsecrets://proj-1/db#pw",
                old="ref+gcpsecrets://proj-1/db?version=1#pw",
                token="ref+gcpsecrets://proj-1/token", blob="ref+gcpsecrets://proj-1/blob",
                dsn="u=ref+gcpsecrets://proj-1/db#user+;p=ref+gcpsecrets://proj-1/db#pw+;"),
        secret("avp", token="<path:projects/proj-1/secrets/token#token>",
                pw="<path:projects/proj-1/secrets/db/versions/1#pw>",
                latest="<path:projects/proj-1/secrets/db#pw>",
                pinned="<path:projects/proj-1/secrets/db#pw#2>"),
    ], _settings(gcp_fake.endpoint))
    proc = kiln("generate", app, tmp_path, {"AVP_TYPE": "gcpsecretmanager"})
    assert proc.returncode == 0, proc.stderr
    out = {o["metadata"]["name"]: o["stringData"] for o in docs(proc.stdout)}
    assert out["vals"] == {"pw": v2["pw"], "old": v1["pw"], "token": raw, "blob": b64(blob),
                           "dsn": f"u={v1['user']};p={v2['pw']};"}
    assert out["avp"] == {"token": raw, "pw": v1["pw"], "latest": v2["pw"], "pinned": v2["pw"]}
    # Reads are de-duplicated: db@latest, db@1, db@2, token, blob.
    assert gcp_fake.access_calls == 5


def test_not_found_and_permission_denied_are_all_reported(
        gcp_fake: FakeSecretManager, tmp_path: Path, plaintext_scan: PlaintextScan) -> None:
    value = unique("locked")
    gcp_fake.put("p", "locked", value)
    gcp_fake.put("p", "db", json.dumps({"pw": unique("x")}))
    gcp_fake.deny("projects/p/secrets/locked")
    plaintext_scan.add(value)
    app = write_app(tmp_path, [secret(
        "s", a="ref+gcpsecrets://p/locked", b="ref+gcpsecrets://p/missing#k",
        c="ref+gcpsecrets://p/db?version=9#pw", d="ref+gcpsecrets://p/db#nokey",
        e="ref+gcpsecrets://onlyproject#k")], _settings(gcp_fake.endpoint))
    proc = kiln("generate", app, tmp_path, {})
    assert_clean_failure(proc, "5 secret reference(s) could not be resolved")
    assert "permission denied while reading projects/p/secrets/locked" in proc.stderr
    assert "no secret version projects/p/secrets/missing/versions/latest" in proc.stderr
    assert "projects/p/secrets/db/versions/9" in proc.stderr
    assert "key 'nokey' not found" in proc.stderr
    assert "'onlyproject' is not projects/PROJECT/secrets/SECRET" in proc.stderr
    assert value not in proc.stderr


def test_unavailable_is_retried_then_succeeds(
        gcp_fake: FakeSecretManager, tmp_path: Path, plaintext_scan: PlaintextScan) -> None:
    value = unique("flaky")
    gcp_fake.put("p", "flaky", value)
    plaintext_scan.add(value)
    gcp_fake.fail_next(2)
    app = write_app(tmp_path, [secret("s", a="ref+gcpsecrets://p/flaky")],
                    _settings(gcp_fake.endpoint, retries=3))
    proc = kiln("generate", app, tmp_path, {}, "--debug")
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"] == {"a": value}
    assert gcp_fake.access_calls == 3
    assert proc.stderr.count("transient failure") == 2
    assert value not in proc.stderr
    gcp_fake.fail_next(5)
    failing = write_app(tmp_path, [secret("s", a="ref+gcpsecrets://p/flaky")],
                        _settings(gcp_fake.endpoint, retries=1), name="failing")
    assert_clean_failure(kiln("generate", failing, tmp_path, {}),
                         "Google Secret Manager failed while reading projects/p/secrets/flaky")


def test_unreachable_endpoint_is_one_clean_error(tmp_path: Path) -> None:
    app = write_app(tmp_path, [secret("s", a="ref+gcpsecrets://p/s#k")],
                    _settings(f"127.0.0.1:{free_port()}", retries=1, timeout=2))
    proc = kiln("generate", app, tmp_path, {})
    assert_clean_failure(proc, "Google Secret Manager failed while reading")


@pytest.mark.parametrize(("settings", "needle"), [
    ({"insecure": True}, "secrets.gcp.insecure needs an endpoint"),
    ({"endpoint": "http://x:1"}, "the Secret Manager endpoint is HOST:PORT"),
    ({"endpont": "x"}, "unknown key"),
])
def test_bad_gcp_settings(tmp_path: Path, settings: dict[str, Any], needle: str) -> None:
    app = write_app(tmp_path, [secret("s", a="ref+gcpsecrets://p/s#k")],
                    {"secrets": {"gcp": settings}})
    assert_clean_failure(kiln("generate", app, tmp_path, {}), needle)
