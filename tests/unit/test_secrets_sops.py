"""Unit tests of the SOPS resolver's pieces: value cipher, MAC input, selectors, formats."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.core.context import SecretContext
from kiln.core.redact import Redactor
from kiln.core.sops_format import format_for_name, looks_encrypted
from kiln.plugins.secrets_sops.api import Decryptor
from kiln.plugins.secrets_sops.cipher import CipherError, decrypt_value, go_float, mac_bytes
from kiln.plugins.secrets_sops.errors import SopsError
from kiln.plugins.secrets_sops.formats import go_time_text, load, unflatten
from kiln.plugins.secrets_sops.keys import KeyRing, age_identities_in
from kiln.plugins.secrets_sops.resolver import SopsResolver
from kiln.plugins.secrets_sops.tree import Selector, parse_metadata
from tests.helpers import REPO


def _enc(plain: bytes, key: bytes, aad: str, kind: str = "str") -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    iv = os.urandom(32)
    out = AESGCM(key).encrypt(iv, plain, aad.encode())
    b64 = base64.b64encode
    return (f"ENC[AES256_GCM,data:{b64(out[:-16]).decode()},iv:{b64(iv).decode()},"
            f"tag:{b64(out[-16:]).decode()},type:{kind}]")


@pytest.mark.parametrize(("value", "text"), [
    (1.5, "1.5"), (1.0, "1"), (100.0, "100"), (1e20, "100000000000000000000"),
    (0.1, "0.1"), (-2.25, "-2.25"), (1e-7, "0.0000001"), (float("inf"), "+Inf"),
])
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


def test_mac_bytes_follow_sops() -> None:
    assert mac_bytes(True) == b"True"
    assert mac_bytes(False) == b"False"
    assert mac_bytes(42) == b"42"
    assert mac_bytes("héllo") == "héllo".encode()


def test_decrypt_value_types_and_tamper() -> None:
    key = os.urandom(32)
    assert decrypt_value(_enc(b"hunter2", key, "a:b:"), key, "a:b:") == "hunter2"
    assert decrypt_value(_enc(b"5", key, "n:", "int"), key, "n:") == 5
    assert decrypt_value(_enc(b"True", key, "b:", "bool"), key, "b:") is True
    assert decrypt_value(_enc(b"1", key, "f:", "float"), key, "f:") == 1
    assert decrypt_value(_enc(b"1.5", key, "f:", "float"), key, "f:") == 1.5
    assert decrypt_value("", key, "x:") == ""
    token = _enc(b"hunter2", key, "a:b:")
    with pytest.raises(CipherError, match="authentication"):
        decrypt_value(token, key, "a:c:")  # moved to another path
    with pytest.raises(CipherError, match="format"):
        decrypt_value("ENC[nope]", key, "a:")


def test_go_time_text() -> None:
    import datetime as dt

    assert go_time_text(dt.date(2024, 1, 2)) == "2024-01-02T00:00:00Z"
    tz = dt.timezone(dt.timedelta(hours=2))
    assert go_time_text(dt.datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=tz)) == \
        "2024-01-02T03:04:05.5+02:00"


def test_unflatten_metadata() -> None:
    flat = {"age__list_0__map_recipient": "age1x", "age__list_0__map_enc": "E",
            "age__list_1__map_recipient": "age1y", "lastmodified": "t", "mac": "m"}
    assert unflatten(flat) == {"age": [{"recipient": "age1x", "enc": "E"},
                                       {"recipient": "age1y"}], "lastmodified": "t", "mac": "m"}


def test_format_for_name_is_flux_like() -> None:
    assert format_for_name("a.yaml") == format_for_name("b.YML") == "yaml"
    assert format_for_name("c.json") == format_for_name(".dockerconfigjson") == "json"
    assert format_for_name("d.env") == "dotenv"
    assert format_for_name("e.ini") == "ini"
    assert format_for_name("cert.pem") == "binary"


def test_markers() -> None:
    assert looks_encrypted(b"x: 1\nsops:\n    mac: ENC[AES")
    assert looks_encrypted(b'{"sops": {"mac": "ENC[AES')
    assert looks_encrypted(b"sops_mac=ENC[AES")
    assert looks_encrypted(b"[sops]\nmac = x")
    assert not looks_encrypted(b"password: plain")


def _meta(**selectors: Any) -> Any:
    return parse_metadata({"age": [{"recipient": "age1x", "enc": "E"}], "lastmodified": "t",
                           "mac": "m", **selectors})


def test_selectors() -> None:
    default = Selector(_meta())
    assert default.encrypted(("a", "b"))
    assert not default.encrypted(("a_unencrypted", "b"))
    regex = Selector(_meta(encrypted_regex="^(data|stringData)$"))
    assert regex.encrypted(("stringData", "password"))
    assert not regex.encrypted(("metadata", "name"))
    unregex = Selector(_meta(unencrypted_regex="^metadata$"))
    assert not unregex.encrypted(("metadata", "name"))
    assert unregex.encrypted(("data", "x"))
    suffix = Selector(_meta(encrypted_suffix="_secret"))
    assert suffix.encrypted(("db_secret", "x"))
    assert not suffix.encrypted(("db", "x"))
    with pytest.raises(Exception, match="more than one"):
        _meta(encrypted_regex="a", unencrypted_regex="b")


def test_age_identities_in_skips_comments() -> None:
    text = "# created: now\n# public key: age1x\nAGE-SECRET-KEY-1ABC\n\n"
    assert age_identities_in(text) == ["AGE-SECRET-KEY-1ABC"]


def test_oversize_is_refused_before_parsing() -> None:
    dec = Decryptor(KeyRing())
    with pytest.raises(SopsError, match="5242880-byte limit") as info:
        dec.decrypt_bytes(b"x" * ((5 << 20) + 1), name="big.yaml")
    assert info.value.source == "big.yaml"


def test_not_a_sops_document() -> None:
    with pytest.raises(SopsError, match="not a valid SOPS yaml document"):
        Decryptor(KeyRing()).decrypt_bytes(b"a: b\n", name="plain.yaml")


def test_dotenv_load_keeps_comments_apart() -> None:
    doc = load(b"A=1\n#c\nsops_mac=m\nsops_lastmodified=t\n", "dotenv")
    assert doc.branches == [{"A": "1"}]
    assert doc.comments == {1: "c"}
    assert doc.metadata == {"mac": "m", "lastmodified": "t"}


def test_yaml_scalars_resolve_like_yaml_1_2() -> None:
    doc = load(b"a: yes\nb: on\nc: 0o17\nd: 2024-01-01\ne: 1.50\nsops: {mac: m}\n", "yaml")
    assert doc.branches == [{"a": "yes", "b": "on", "c": 15, "d": "2024-01-01T00:00:00Z",
                             "e": 1.5}]


def _ctx() -> SecretContext:
    return SecretContext(app=None, env={}, redactor=Redactor())


def test_wants_is_cheap_and_flux_like() -> None:
    r = SopsResolver()
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "data": {"k": base64.b64encode(b"plain").decode()}}
    assert not r.wants([secret], _ctx())
    enc_val = base64.b64encode(b"a: ENC[x]\nsops:\n    mac: ENC[y]\n").decode()
    assert r.wants([{**secret, "data": {"k.yaml": enc_val}}], _ctx())
    whole = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
             "sops": {"mac": "ENC[x]"}}
    assert r.wants([whole], _ctx())
    disabled = {**whole, "metadata": {"name": "c", "annotations": {
        "kustomize.toolkit.fluxcd.io/decrypt": "Disabled"}}}
    assert not r.wants([disabled], _ctx())
    # A sops map without its MAC is still SOPS (it is refused when decrypted: fail closed).
    assert r.wants([{**whole, "sops": {"version": "3"}}], _ctx())
    assert not r.wants([{**whole, "sops": {"note": "not sops metadata"}}], _ctx())


def test_plugin_import_is_lazy() -> None:
    code = ("import sys, kiln.plugins.secrets_sops as p; p.SopsResolver().wants([], None); "
            "heavy = [m for m in ('pyrage', 'cryptography', 'boto3', 'botocore') "
            "if m in sys.modules]; assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert proc.returncode == 0, proc.stderr


def test_keyring_sources(tmp_path: Any) -> None:
    from kiln.core.errors import ConfigError
    from kiln.plugins.secrets_sops.keys import load_keyring

    manifest = tmp_path / "keys.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: k}\n"
        "data:\n  a.agekey: " + base64.b64encode(b"AGE-SECRET-KEY-1FROMSECRET\n").decode() + "\n"
        "stringData:\n  sops.aws-kms: |\n    aws_access_key_id: AKIDTEST\n"
        "    aws_secret_access_key: secret\n  ignored.txt: x\n")
    ring = load_keyring({"SOPS_AGE_KEY": "AGE-SECRET-KEY-1FROMENV", "HOME": str(tmp_path)},
                        age_keys=["AGE-SECRET-KEY-1INLINE"], key_secret_file="keys.yaml",
                        base=tmp_path)
    assert ring.age_identities == ["AGE-SECRET-KEY-1INLINE", "AGE-SECRET-KEY-1FROMSECRET",
                                   "AGE-SECRET-KEY-1FROMENV"]
    assert ring.aws_credentials["AWS_ACCESS_KEY_ID"] == "AKIDTEST"
    assert "AGE-SECRET-KEY" not in repr(ring)
    with pytest.raises(ConfigError, match="cannot read"):
        load_keyring({}, age_key_file="missing.txt", base=tmp_path)


@settings(max_examples=200, deadline=None)
@given(kind=st.one_of(st.sampled_from(["str", "bytes", "int", "float", "bool", "time",
                                       "comment"]), st.text(max_size=12)),
       plain=st.binary(max_size=40))
def test_any_type_annotation_decrypts_or_raises_cipher_error(kind: str, plain: bytes) -> None:
    """The ``type:`` field is not authenticated: whatever it says, the result is a value or a
    CipherError, never another exception (an edited annotation is a clean error)."""
    from kiln.plugins.secrets_sops.cipher import _typed

    try:
        value = _typed(plain, kind)
    except CipherError:
        return
    assert kind in ("str", "int", "float", "bool", "time", "comment")
    if kind == "str":
        assert value == plain.decode("utf-8")
