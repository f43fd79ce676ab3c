"""Two real backends in one stream: OpenBao (Vault API) and moto_server (AWS Secrets Manager).

Values are chosen by the test. A value read from one backend that looks like a reference of the
other is final: it is printed verbatim, never read, never reported as unresolved, and never
quoted on stderr (``--debug`` included).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import assert_clean_failure
from tests.integration.eso_helpers import clear_ambient, docs, kiln, secret, unique, write_app
from tests.integration.moto_server import MotoServer, moto_server
from tests.integration.openbao import OpenBao, openbao
from tests.secrets_scan import PlaintextScan, plaintext_scan

__all__ = ["moto_server", "openbao", "plaintext_scan"]

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_ambient(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_ambient(monkeypatch)


def _env(bao: OpenBao, moto: MotoServer, **extra: str) -> dict[str, str]:
    return moto.env(AVP_TYPE="vault", AVP_AUTH_TYPE="token", VAULT_ADDR=bao.addr,
                    VAULT_TOKEN=bao.token, **extra)


def test_value_read_from_aws_holding_vault_references_is_final(
        openbao: OpenBao, moto_server: MotoServer, tmp_path: Path,
        plaintext_scan: PlaintextScan) -> None:
    trap_path = unique("trap")
    openbao.kv2_put("secret", trap_path, {"k": unique("must-never-be-read")})
    trap = (f"{unique('pre')}<path:secret/data/{trap_path}#k>"
            f" ref+vault://secret/{trap_path}#k <path:secret/data/missing-{trap_path}#k>")
    name, real_path, real = unique("aws/app"), unique("app"), unique("vault-pw")
    moto_server.client().create_secret(Name=name, SecretString=json.dumps({"tpl": trap}))
    openbao.kv2_put("secret", real_path, {"pw": real})
    plaintext_scan.add(trap, real)
    app = write_app(tmp_path, [secret("s", tpl=f"ref+awssecrets://{name}#tpl",
                                      pw=f"<path:secret/data/{real_path}#pw>",
                                      both=f"<path:secret/data/{real_path}#pw>:"
                                           f"ref+awssecrets://{name}#tpl")])
    proc = kiln("generate", app, tmp_path, _env(openbao, moto_server), "--debug")
    assert proc.returncode == 0, proc.stderr
    (out,) = docs(proc.stdout)
    assert out["stringData"] == {"tpl": trap, "pw": real, "both": f"{real}:{trap}"}
    assert openbao.audit_requests(f"secret/data/{trap_path}") == []
    assert openbao.audit_requests(f"secret/data/missing-{trap_path}") == []
    assert openbao.audit_requests(f"secret/data/{real_path}") == [f"secret/data/{real_path}"]
    for part in (trap, trap_path, real):
        assert part not in proc.stderr
    # The same through a stream on stdin ('kiln generate -').
    stream = proc.stdout.replace(trap, f"ref+awssecrets://{name}#tpl")
    again = kiln("generate", "-", tmp_path, _env(openbao, moto_server), "--debug", stdin=stream)
    assert again.returncode == 0, again.stderr
    assert docs(again.stdout)[0]["stringData"]["tpl"] == trap
    assert trap_path not in again.stderr


def test_every_failed_reference_of_both_backends_is_reported_together(
        openbao: OpenBao, moto_server: MotoServer, tmp_path: Path,
        plaintext_scan: PlaintextScan) -> None:
    vpath, aname = unique("mixed"), unique("aws/mixed")
    vvalue, avalue = unique("v-ok"), unique("a-ok")
    openbao.kv2_put("secret", vpath, {"ok": vvalue})
    moto_server.client().create_secret(Name=aname, SecretString=json.dumps({"ok": avalue}))
    plaintext_scan.add(vvalue, avalue)
    refs = {
        "v_nokey": f"<path:secret/data/{vpath}#nokey>",
        "v_nopath": f"<path:secret/data/{vpath}-absent#ok>",
        "a_nokey": f"ref+awssecrets://{aname}#nokey",
        "a_nosecret": f"ref+awssecrets://{aname}-absent#ok",
    }
    stream = "\n---\n".join(json.dumps(o) for o in [
        secret("one", v_ok=f"<path:secret/data/{vpath}#ok>", v_nokey=refs["v_nokey"],
               a_nosecret=refs["a_nosecret"]),
        secret("two", a_ok=f"ref+awssecrets://{aname}#ok", a_nokey=refs["a_nokey"],
               v_nopath=refs["v_nopath"]),
    ])
    proc = kiln("generate", "-", tmp_path, _env(openbao, moto_server), stdin=stream)
    assert_clean_failure(proc, "4 secret reference(s) could not be resolved")
    plaintext_scan.expect_no_entries()  # a stream on stdin is never cached
    details = proc.stderr.strip().splitlines()[1:]
    for field, ref in refs.items():
        obj = "Secret/one" if field in ("v_nokey", "a_nosecret") else "Secret/two"
        assert any(line.startswith(f"  {obj}: stringData.{field}: {ref}:")
                   or f"{obj}: stringData.{field}: {ref}:" in line for line in details), (
            field, proc.stderr)
    assert vvalue not in proc.stderr and avalue not in proc.stderr
