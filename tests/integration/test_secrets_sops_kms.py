"""AWS KMS-wrapped SOPS documents, against a real moto_server on 127.0.0.1.

moto stands in for AWS KMS (no real AWS is reachable here). sops encrypts with ``--kms`` through
``AWS_ENDPOINT_URL``; kiln unwraps the data key in-process with boto3 and must agree with
``sops decrypt``.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from tests.helpers import assert_clean_failure, run_kiln
from tests.integration.moto_server import MotoServer, moto_server
from tests.integration.sops_helpers import (
    new_age_key,
    sops_decrypt,
    sops_encrypt,
    sops_env,
)
from tests.secrets_scan import assert_no_plaintext
from tests.servers import free_port

pytestmark = pytest.mark.integration
__all__ = ["moto_server"]

PLAIN = b"""\
apiVersion: v1
kind: Secret
metadata:
  name: kms-secret
stringData:
  password: kms-protected-password
  url: postgres://user:kms-db-pass@db/app
"""


@pytest.fixture
def kms_key(moto_server: MotoServer) -> str:
    return str(moto_server.client("kms").create_key()["KeyMetadata"]["Arn"])


def test_kms_whole_object_matches_sops(tmp_path: Path, moto_server: MotoServer,
                                       kms_key: str) -> None:
    env = sops_env(extra=moto_server.env())
    enc = sops_encrypt(PLAIN, "yaml", tmp_path, "--kms", kms_key, "--encrypted-regex",
                       "^stringData$", env=env)
    assert b"kms-protected" not in enc
    app = tmp_path / "app"
    app.mkdir()
    (app / "s.yaml").write_bytes(enc)
    cache = tmp_path / "cache"
    proc = run_kiln("render", str(app), "--cache-dir", str(cache), env=env)
    assert proc.returncode == 0, proc.stderr
    expected = yaml.safe_load(sops_decrypt(enc, "yaml", env))
    assert yaml.safe_load(proc.stdout) == expected
    assert assert_no_plaintext([cache], ["kms-protected-password", "kms-db-pass"]) > 0


def test_kms_per_key_and_context(tmp_path: Path, moto_server: MotoServer, kms_key: str) -> None:
    env = sops_env(extra=moto_server.env())
    enc = sops_encrypt(b"TOKEN=kms-dotenv-token\n", "dotenv", tmp_path, "--kms", kms_key,
                       "--encryption-context", "team:payments", env=env)
    from kiln.plugins.secrets_sops.api import Decryptor

    plain = Decryptor.for_app(None, env).decrypt_bytes(enc, name="t.env")
    assert plain == sops_decrypt(enc, "dotenv", env) == b"TOKEN=kms-dotenv-token\n"
    app = tmp_path / "app"
    app.mkdir()
    (app / "s.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k"},
        "data": {"t.env": base64.b64encode(enc).decode()}}))
    proc = run_kiln("render", str(app), "--no-cache", env=env)
    assert proc.returncode == 0, proc.stderr
    assert base64.b64decode(yaml.safe_load(proc.stdout)["data"]["t.env"]) == plain


def test_kms_unreachable_lists_the_key(tmp_path: Path, moto_server: MotoServer,
                                               kms_key: str) -> None:
    env = sops_env(extra=moto_server.env())
    enc = sops_encrypt(PLAIN, "yaml", tmp_path, "--kms", kms_key, env=env)
    app = tmp_path / "app"
    app.mkdir()
    (app / "s.yaml").write_bytes(enc)
    closed = f"http://127.0.0.1:{free_port()}"  # a loopback port nobody listens on
    proc = run_kiln("render", str(app), "--no-cache", env={**env, "AWS_ENDPOINT_URL": closed})
    assert_clean_failure(proc, "no available key", kms_key)


def test_age_and_kms_recipients_either_works(tmp_path: Path, moto_server: MotoServer,
                                             kms_key: str) -> None:
    age = new_age_key()
    env = sops_env(age, extra=moto_server.env())
    enc = sops_encrypt(PLAIN, "yaml", tmp_path, "--kms", kms_key, "--age", age.recipient,
                       env=env)
    from kiln.plugins.secrets_sops.api import Decryptor

    want = yaml.safe_load(sops_decrypt(enc, "yaml", env))
    only_kms = sops_env(extra=moto_server.env())
    for e in (env, only_kms):
        got = yaml.safe_load(Decryptor.for_app(None, e).decrypt_bytes(enc, name="s.yaml"))
        assert got == want
