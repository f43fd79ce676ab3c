"""The AWS Secrets Manager resolver against a real moto_server, through the real ``kiln`` CLI.

moto (PyPI ``moto[server]``) serves the Secrets Manager API on 127.0.0.1; boto3 reaches it with
``AWS_ENDPOINT_URL`` and fake static credentials. Expected values are what the test stored
(base64 by Python's own library). Every test that resolves ends with the plaintext scan.
"""

from __future__ import annotations

import json
from pathlib import Path

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
from tests.integration.moto_server import MotoServer, moto_server, start_moto, stop_moto
from tests.secrets_scan import PlaintextScan, plaintext_scan
from tests.servers import free_port

__all__ = ["moto_server", "plaintext_scan"]

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_ambient(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_ambient(monkeypatch)


def test_vals_and_avp_forms_versions_stages_plain_and_binary(
        moto_server: MotoServer, tmp_path: Path, plaintext_scan: PlaintextScan) -> None:
    sm = moto_server.client()
    db, plain, binary = unique("app/db"), unique("plain"), unique("bin")
    v1 = {"user": unique("admin"), "pw": unique("pw-one"), "nested": {"port": 5432}}
    v2 = {**v1, "pw": unique("pw-two")}
    first = sm.create_secret(Name=db, SecretString=json.dumps(v1))["VersionId"]
    sm.put_secret_value(SecretId=db, SecretString=json.dumps(v2))
    text = unique("just-a-string")
    blob = b"\x00\xff" + unique("bin").encode()
    db_arn = sm.describe_secret(SecretId=db)["ARN"]
    sm.create_secret(Name=plain, SecretString=text)
    arn = sm.create_secret(Name=binary, SecretBinary=blob)["ARN"]
    plaintext_scan.add(v1["pw"], v2["pw"], v1["user"], text, b64(blob))
    app = write_app(tmp_path, [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}},
        secret("vals",
                current=f"ref+awssecrets://{db}#pw",
                previous=f"ref+awssecrets://{db}?version_stage=AWSPREVIOUS#pw",
                by_id=f"ref+awssecrets://{db}?version_id={first}#pw",
                nested=f"ref+awssecrets://{db}#/nested/port",
                whole=f"ref+awssecrets://{plain}",
                url=f"postgres://ref+awssecrets://{db}#user+@db"),
        secret("avp", user=f"<path:{db}#user>", old=f"<path:{db}#pw#{first}>",
                by_arn=f"<path:{db_arn}#pw>", binary=f"ref+awssecrets://{arn}"),
    ])
    proc = kiln("generate", app, tmp_path, moto_server.env(AVP_TYPE="awssecretsmanager"))
    assert proc.returncode == 0, proc.stderr
    out = {o["metadata"]["name"]: o for o in docs(proc.stdout)}
    # AVP's rule: a non-string value (the port) replaces the whole field.
    assert out["vals"]["stringData"] == {
        "current": v2["pw"], "previous": v1["pw"], "by_id": v1["pw"], "nested": 5432,
        "whole": text, "url": f"postgres://{v1['user']}@db"}
    assert out["avp"]["stringData"] == {"user": v1["user"], "old": v1["pw"],
                                        "by_arn": v2["pw"], "binary": b64(blob)}
    assert out["web"]["kind"] == "Deployment"
    # Second run: manifests come from the cache, secrets are read again (never cached).
    again = kiln("generate", app, tmp_path, moto_server.env(AVP_TYPE="awssecretsmanager"),
                 "--debug")
    assert again.returncode == 0, again.stderr
    assert again.stdout == proc.stdout
    assert "aws-secretsmanager: 6 read(s)" in again.stderr  # 3 db reads, plain, binary, ARN
    for value in plaintext_scan.values:
        assert value not in again.stderr


def test_missing_secret_key_and_version_are_all_reported(
        moto_server: MotoServer, tmp_path: Path, plaintext_scan: PlaintextScan) -> None:
    sm = moto_server.client()
    db = unique("app/db")
    value = unique("pw")
    sm.create_secret(Name=db, SecretString=json.dumps({"pw": value}))
    plaintext_scan.add(value)
    app = write_app(tmp_path, [secret(
        "s", ok=f"ref+awssecrets://{db}#pw", nokey=f"ref+awssecrets://{db}#nope",
        nosecret="ref+awssecrets://does-not-exist#pw",
        noversion=f"ref+awssecrets://{db}?version_stage=AWSPREVIOUS#pw")])
    proc = kiln("generate", app, tmp_path, moto_server.env())
    assert_clean_failure(proc, "3 secret reference(s) could not be resolved")
    assert "key 'nope' not found" in proc.stderr
    assert "no secret does-not-exist in AWS Secrets Manager" in proc.stderr
    assert "stage AWSPREVIOUS" in proc.stderr
    assert value not in proc.stderr


def test_access_denied_and_bad_credentials(tmp_path: Path,
                                           plaintext_scan: PlaintextScan) -> None:
    """moto enforces IAM after INITIAL_NO_AUTH_ACTION_COUNT unauthenticated actions."""
    server = start_moto(tmp_path, env={"INITIAL_NO_AUTH_ACTION_COUNT": "4"})
    try:
        iam = server.client("iam")
        iam.create_user(UserName="kiln")
        key = iam.create_access_key(UserName="kiln")["AccessKey"]
        iam.put_user_policy(UserName="kiln", PolicyName="list-only", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "secretsmanager:ListSecrets",
                           "Resource": "*"}]}))
        value = unique("forbidden")
        server.client().create_secret(Name="locked", SecretString=json.dumps({"pw": value}))
        plaintext_scan.add(value, key["SecretAccessKey"])
        app = write_app(tmp_path, [secret("s", pw="ref+awssecrets://locked#pw")])
        denied = kiln("generate", app, tmp_path, server.env(
            AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"]))
        assert_clean_failure(denied, "permission denied while reading locked")
        unknown = kiln("generate", app, tmp_path, server.env())
        assert_clean_failure(unknown, "AWS refused the credentials")
        for proc in (denied, unknown):
            assert value not in proc.stderr and key["SecretAccessKey"] not in proc.stderr
    finally:
        stop_moto(server)


def test_unreachable_endpoint_is_one_clean_error(tmp_path: Path) -> None:
    app = write_app(tmp_path, [secret("s", pw="ref+awssecrets://x#pw")],
                    {"secrets": {"aws": {"retries": 1, "timeout": 2}}})
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    proc = kiln("generate", app, tmp_path, env)
    assert_clean_failure(proc, "cannot reach AWS Secrets Manager")


def test_missing_region_is_reported(tmp_path: Path) -> None:
    app = write_app(tmp_path, [secret("s", pw="ref+awssecrets://x#pw")])
    proc = kiln("generate", app, tmp_path, {"AWS_ACCESS_KEY_ID": "testing",
                                            "AWS_SECRET_ACCESS_KEY": "testing"})
    assert_clean_failure(proc, "no AWS region", "AWS_REGION")


def test_bad_endpoint_setting_is_a_config_error(tmp_path: Path) -> None:
    app = write_app(tmp_path, [secret("s", pw="ref+awssecrets://x#pw")])
    proc = kiln("generate", app, tmp_path, {"AWS_ENDPOINT_URL": "localhost:1",
                                            "AWS_REGION": "us-east-1"})
    assert_clean_failure(proc, "AWS_ENDPOINT_URL must start with http")
