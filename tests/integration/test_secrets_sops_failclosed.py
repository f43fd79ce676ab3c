"""SOPS fails closed: a document without its MAC, or with an edited ``type:`` annotation.

The oracle is the real ``sops`` binary: it refuses every document these tests refuse (exit code
non-zero; for a missing MAC "File has no MAC"), and with ``--ignore-mac`` its output is what
kiln must print with ``--sops-ignore-mac``.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import assert_clean_failure, run_kiln, tool
from tests.integration.argo_yaml import argo_objects
from tests.integration.sops_helpers import AgeKey, new_age_key, sops_decrypt, sops_encrypt, sops_env

pytestmark = pytest.mark.integration

PLAIN = b"""apiVersion: v1
kind: Secret
metadata:
  name: fc
stringData:
  password: fail-closed-S3cr3t
  count: 5
  at: 2024-05-06T07:08:09Z
"""
VALUES = ["fail-closed-S3cr3t"]
DATA_ONLY = ["--encrypted-regex", "^(data|stringData)$"]


@pytest.fixture(scope="module")
def key() -> AgeKey:
    return new_age_key()


@pytest.fixture
def env(key: AgeKey) -> dict[str, str]:
    return sops_env(key)


@pytest.fixture
def encrypted(tmp_path: Path, key: AgeKey) -> bytes:
    return sops_encrypt(PLAIN, "yaml", tmp_path, "--age", key.recipient, *DATA_ONLY)


def _sops(data: bytes, fmt: str, env: dict[str, str], *args: str
          ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([tool("sops"), "decrypt", "--input-type", fmt, "--output-type", fmt,
                           *args], input=data, capture_output=True, env=env, timeout=60,
                          check=False)


def _app(tmp_path: Path, content: bytes) -> Path:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "s.yaml").write_bytes(content)
    return app


def _render(app: Path, tmp_path: Path, env: dict[str, str], *args: str
            ) -> subprocess.CompletedProcess[str]:
    return run_kiln("render", str(app), "--cache-dir", str(tmp_path / "cache"), *args, env=env)


def _no_mac(enc: bytes, how: str) -> bytes:
    if how == "removed":
        out = re.sub(rb"\n    mac: [^\n]*", b"", enc)
    else:
        out = re.sub(rb"(\n    mac: )[^\n]*", rb"\1''", enc)
    assert out != enc
    return out


@pytest.mark.parametrize("how", ["removed", "empty"])
def test_whole_object_without_mac_is_refused_unless_ignored(
        tmp_path: Path, env: dict[str, str], encrypted: bytes, how: str) -> None:
    doc = _no_mac(encrypted, how)
    ref = _sops(doc, "yaml", env)
    assert ref.returncode != 0 and b"File has no MAC" in ref.stderr
    app = _app(tmp_path, doc)
    for command in ("render", "generate"):
        proc = run_kiln(command, str(app), "--cache-dir", str(tmp_path / "cache"), env=env)
        assert_clean_failure(proc, "Secret/fc", "no MAC", "--sops-ignore-mac")
        assert len(proc.stderr.strip().splitlines()) == 1
        assert "ENC[" not in proc.stderr
    # A stream on stdin too.
    proc = run_kiln("generate", "-", env=env, stdin=doc.decode())
    assert_clean_failure(proc, "Secret/fc", "no MAC")
    ok = _render(app, tmp_path, env, "--sops-ignore-mac")
    assert ok.returncode == 0, ok.stderr
    expected = json.loads(sops_decrypt(_json_form(doc), "json", env, "--ignore-mac"))
    (got,) = argo_objects(ok.stdout)  # what Argo CD reads (a timestamp is a string)
    assert got == {k: v for k, v in expected.items() if k != "sops"}


def _json_form(doc: bytes) -> bytes:
    """The same document as JSON (sops' JSON output keeps timestamps as strings, like kiln)."""
    loaded = yaml.safe_load(doc)
    return json.dumps(loaded, default=str).encode()


@pytest.mark.parametrize("how", ["removed", "empty"])
def test_secret_value_document_without_mac_is_refused(
        tmp_path: Path, key: AgeKey, env: dict[str, str], how: str) -> None:
    inner = sops_encrypt(b"TOKEN=fail-closed-S3cr3t\n", "dotenv", tmp_path, "--age",
                         key.recipient)
    stripped = re.sub(rb"\nsops_mac=[^\n]*", b"", inner) if how == "removed" else \
        re.sub(rb"(\nsops_mac=)[^\n]*", rb"\1", inner)
    assert stripped != inner
    assert _sops(stripped, "dotenv", env).returncode != 0
    manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "val"},
                "data": {"app.env": base64.b64encode(stripped).decode()}}
    app = _app(tmp_path, yaml.safe_dump(manifest).encode())
    proc = _render(app, tmp_path, env)
    assert_clean_failure(proc, "Secret/val data.app.env", "no MAC")
    ok = _render(app, tmp_path, env, "--sops-ignore-mac")
    assert ok.returncode == 0, ok.stderr
    (got,) = [d for d in yaml.safe_load_all(ok.stdout) if d]
    assert base64.b64decode(got["data"]["app.env"]) == sops_decrypt(
        stripped, "dotenv", env, "--ignore-mac")


EDITS = [("count", "int", "bytes"), ("count", "int", "garbage"), ("password", "str", "int"),
         ("password", "str", "time"), ("password", "str", "comment"),
         ("password", "str", "bool"), ("password", "str", "float"), ("at", "time", "bytes")]


@pytest.mark.parametrize(("field", "old", "new"), EDITS,
                         ids=[f"{f}-{o}-to-{n}" for f, o, n in EDITS])
def test_edited_type_annotation_is_a_clean_error(
        tmp_path: Path, env: dict[str, str], encrypted: bytes, field: str, old: str,
        new: str) -> None:
    lines = encrypted.split(b"\n")
    index = next(i for i, ln in enumerate(lines) if ln.strip().startswith(f"{field}:".encode()))
    assert lines[index].endswith(f",type:{old}]".encode())
    lines[index] = lines[index][:-len(f"{old}]")] + f"{new}]".encode()
    doc = b"\n".join(lines)
    assert _sops(doc, "yaml", env).returncode != 0, "sops refuses the edited file too"
    for ignore in ((), ("--sops-ignore-mac",)):
        proc = _render(_app(tmp_path, doc), tmp_path, env, *ignore)
        assert_clean_failure(proc, "Secret/fc", f"stringData:{field}")
        assert len(proc.stderr.strip().splitlines()) == 1
        assert "internal error" not in proc.stderr
        for value in VALUES:
            assert value not in proc.stderr


@pytest.mark.parametrize("new", ["bytes", "int", "time", "comment", "garbage"])
def test_edited_type_in_a_binary_envelope_names_the_key(
        tmp_path: Path, key: AgeKey, env: dict[str, str], new: str) -> None:
    inner = sops_encrypt(b"fail-closed-S3cr3t", "binary", tmp_path, "--age", key.recipient)
    edited = inner.replace(b",type:str]", f",type:{new}]".encode(), 1)
    assert edited != inner
    assert _sops(edited, "binary", env).returncode != 0
    manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bin"},
                "data": {"blob": base64.b64encode(edited).decode()}}
    proc = _render(_app(tmp_path, yaml.safe_dump(manifest).encode()), tmp_path, env)
    assert_clean_failure(proc, "Secret/bin data.blob")
    assert "fail-closed-S3cr3t" not in proc.stderr


def test_timestamp_values_decrypt_like_sops(tmp_path: Path, env: dict[str, str],
                                            encrypted: bytes) -> None:
    proc = _render(_app(tmp_path, encrypted), tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    (got,) = argo_objects(proc.stdout)  # what Argo CD reads (a timestamp is a string)
    expected: dict[str, Any] = json.loads(sops_decrypt(_json_form(encrypted), "json", env))
    assert got == {k: v for k, v in expected.items() if k != "sops"}
    assert got["stringData"]["at"] == "2024-05-06T07:08:09Z"


def test_decrypted_value_that_looks_like_a_reference_is_final(tmp_path: Path, key: AgeKey,
                                                              env: dict[str, str]) -> None:
    """No Vault is configured: before, ``kiln generate`` reported the decrypted text as an
    unresolved reference, quoting the secret in its error."""
    value = "tpl-<path:secret/data/inside-a-secret#k>-ref+vault://secret/x#y"
    plain = (b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: looks\nstringData:\n"
             b"  v: '" + value.encode() + b"'\n")
    enc = sops_encrypt(plain, "yaml", tmp_path, "--age", key.recipient, *DATA_ONLY)
    app = _app(tmp_path, enc)
    proc = run_kiln("generate", str(app), "--cache-dir", str(tmp_path / "cache"), "--debug",
                    env=env)
    assert proc.returncode == 0, proc.stderr
    (got,) = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert got["stringData"]["v"] == value
    assert "inside-a-secret" not in proc.stderr
    ref = yaml.safe_load(sops_decrypt(enc, "yaml", env))
    assert ref["stringData"]["v"] == value
