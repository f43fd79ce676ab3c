"""External Secrets Operator resources through the real ``kiln`` CLI: keep (validate),
materialize (Vault on the OpenBao dev server, AWS on moto_server, GCP on the loopback gRPC
fake documented in :mod:`tests.integration.gcp_fake`) and convert, with a round trip.

Expected Secrets are computed here from what the test stored (Python's base64/json), following
ESO's documented behaviour; never taken from kiln's own output. Every test that resolves a
value ends with the plaintext scan of its cache directories.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import assert_clean_failure
from tests.integration.eso_helpers import (
    b64,
    by_kind,
    clear_ambient,
    docs,
    kiln,
    secret_values,
    unique,
    write_app,
)
from tests.integration.gcp_fake import FakeSecretManager, gcp_fake, gcp_fake_server
from tests.integration.moto_server import MotoServer, moto_server
from tests.integration.openbao import OpenBao, openbao
from tests.secrets_scan import PlaintextScan, plaintext_scan

__all__ = ["gcp_fake", "gcp_fake_server", "moto_server", "openbao", "plaintext_scan"]

pytestmark = pytest.mark.integration

ESO = "external-secrets.io/v1"


@pytest.fixture(autouse=True)
def _no_ambient(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_ambient(monkeypatch)


def deployment(secret: str) -> dict[str, Any]:
    """A Deployment reading every key of Secret ``secret`` as environment variables."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                     {"name": "web", "image": "nginx:1.27",
                      "envFrom": [{"secretRef": {"name": secret}}]}]}}},
    }


def vault_store(server: OpenBao, name: str = "vault-backend") -> dict[str, Any]:
    """A SecretStore for the OpenBao dev server's KV v2 mount ``secret``."""
    return {"apiVersion": ESO, "kind": "SecretStore",
            "metadata": {"name": name, "namespace": "prod"},
            "spec": {"provider": {"vault": {
                "server": server.addr, "path": "secret", "version": "v2",
                "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}}}}}


def external_secret(name: str, spec: dict[str, Any], api: str = ESO) -> dict[str, Any]:
    """An ExternalSecret in namespace prod."""
    return {"apiVersion": api, "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": "prod"}, "spec": spec}


# -- keep ---------------------------------------------------------------------------------------


def test_keep_passes_external_secrets_through_untouched(tmp_path: Path,
                                                        openbao: OpenBao) -> None:
    manifests = [deployment("app-db"), vault_store(openbao), external_secret("app-db", {
        "refreshInterval": "1h",
        "secretStoreRef": {"name": "vault-backend", "kind": "SecretStore"},
        "target": {"name": "app-db", "template": {"data": {"url": "db://{{ .pw }}"}}},
        "data": [{"secretKey": "pw", "remoteRef": {"key": "app/db", "property": "pw"}}]},
        api="external-secrets.io/v1beta1")]
    app = write_app(tmp_path, manifests)
    proc = kiln("render", app, tmp_path, {})
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout) == manifests


@pytest.mark.parametrize(("spec", "needle"), [
    ({"data": [{"secretKey": "pw", "remoteRef": {"key": "k"}}]},
     "spec.secretStoreRef: missing"),
    ({"secretStoreRef": {"name": "s"}, "data": [{"secretKey": "pw", "remoteRef": {
        "key": "k", "propety": "pw"}}]}, "spec.data[0].remoteRef.propety: unknown field"),
    ({"secretStoreRef": {"name": "s"}, "target": {"creationPolicy": "Always"}},
     "creationPolicy: must be one of Owner, Orphan, Merge, None"),
])
def test_keep_rejects_invalid_external_secrets(tmp_path: Path, spec: dict[str, Any],
                                               needle: str) -> None:
    app = write_app(tmp_path, [external_secret("bad", spec)])
    proc = kiln("render", app, tmp_path, {})
    assert_clean_failure(proc, "ExternalSecret/prod/bad", needle)


def test_bad_mode_and_missing_store_are_config_errors(tmp_path: Path) -> None:
    app = write_app(tmp_path, [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                                "stringData": {"k": "<path:secret/data/a#k>"}}])
    bad = kiln("render", app, tmp_path, {}, "-O", "secrets.externalSecrets.mode=sync")
    assert_clean_failure(bad, "mode must be one of keep, materialize, convert")
    nostore = kiln("render", app, tmp_path, {}, "-O", "secrets.externalSecrets.mode=convert")
    assert_clean_failure(nostore, "convert mode needs a secret store")


# -- materialize --------------------------------------------------------------------------------


def test_materialize_vault_store_with_template(tmp_path: Path, openbao: OpenBao,
                                               plaintext_scan: PlaintextScan) -> None:
    path = unique("app/db")
    v1 = {"user": unique("dbadmin"), "pw": unique("pw-one")}
    hello = unique("hello")
    v2 = {**v1, "pw": unique("pw-two"), "cfg": json.dumps({"a": {"b": unique("deep")}}),
          "enc": b64(hello)}
    openbao.kv2_put("secret", path, v1)
    openbao.kv2_put("secret", path, v2)
    plaintext_scan.add(v1["pw"], v2["pw"], v1["user"], hello, v2["cfg"])
    es = external_secret("app-db", {
        "refreshInterval": "1h",
        "secretStoreRef": {"name": "vault-backend", "kind": "SecretStore"},
        "target": {"name": "app-db-secret", "creationPolicy": "Owner", "template": {
            "type": "kubernetes.io/basic-auth", "engineVersion": "v2",
            "metadata": {"labels": {"app": "web"}, "annotations": {"team": "db"}},
            "data": {
                "username": "{{ .user }}",
                "password": "{{ .password }}",
                "url": "postgres://{{ .user }}:{{ .password | upper }}@db/"
                       "{{ (.cfg | fromJson).a.b }}",
                "hello": "{{ .hello | b64enc }}",
            }}},
        "data": [
            {"secretKey": "password", "remoteRef": {"key": path, "property": "pw",
                                                    "version": "1"}},
            {"secretKey": "user", "remoteRef": {"key": f"secret/data/{path}",
                                                "property": "user"}},
            {"secretKey": "hello", "remoteRef": {"key": path, "property": "enc",
                                                 "decodingStrategy": "Base64"}},
        ],
        "dataFrom": [{"extract": {"key": path}}],
    })
    app = write_app(tmp_path, [deployment("app-db-secret"), vault_store(openbao), es])
    env = {"VAULT_TOKEN": openbao.token, "VAULT_ADDR": openbao.addr}  # the store's server
    proc = kiln("render", app, tmp_path, env, "-O", "secrets.externalSecrets.mode=materialize")
    assert proc.returncode == 0, proc.stderr
    out = docs(proc.stdout)
    assert [o["kind"] for o in out] == ["Deployment", "Secret"]
    assert out[0] == deployment("app-db-secret")
    secret = out[1]
    assert secret["metadata"] == {"name": "app-db-secret", "namespace": "prod",
                                  "labels": {"app": "web"}, "annotations": {"team": "db"}}
    assert secret["type"] == "kubernetes.io/basic-auth"
    deep = json.loads(v2["cfg"])["a"]["b"]
    assert secret_values(secret) == {
        "username": v1["user"].encode(),
        "password": v1["pw"].encode(),
        "url": f"postgres://{v1['user']}:{v1['pw'].upper()}@db/{deep}".encode(),
        "hello": b64(hello).encode(),
    }
    # A second render comes from the cache and reads the values again.
    again = kiln("render", app, tmp_path, env, "-O", "secrets.externalSecrets.mode=materialize")
    assert again.stdout == proc.stdout
    assert v1["pw"] not in (tmp_path / "app" / "manifests.yaml").read_text()


def test_materialize_aws_cluster_store_from_kiln_yaml(
        tmp_path: Path, moto_server: MotoServer, plaintext_scan: PlaintextScan) -> None:
    sm = moto_server.client()
    db, cert = unique("prod/db"), unique("prod/cert")
    v1 = {"user": unique("u"), "pw": unique("pw-one"), "blob": b64(b"\x00raw")}
    v2 = {**v1, "pw": unique("pw-two")}
    first = sm.create_secret(Name=db, SecretString=json.dumps(v1))["VersionId"]
    sm.put_secret_value(SecretId=db, SecretString=json.dumps(v2))
    pem = b"\x30\x82" + unique("der").encode()
    sm.create_secret(Name=cert, SecretBinary=pem)
    plaintext_scan.add(v1["pw"], v2["pw"], v1["user"], b64(pem))
    store = {"apiVersion": ESO, "kind": "ClusterSecretStore", "metadata": {"name": "aws"},
             "spec": {"provider": {"aws": {"service": "SecretsManager",
                                           "region": "us-east-1"}}}}
    ref = {"name": "aws", "kind": "ClusterSecretStore"}
    existing = {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "shared", "namespace": "prod"},
                "data": {"keep": b64("kept")}, "stringData": {"pw": "overwritten"}}
    manifests = [
        existing,
        external_secret("creds", {
            "secretStoreRef": ref,
            "target": {"template": {"mergePolicy": "Merge",
                                    "data": {"dsn": "{{ .user }}:{{ .pw }}"}}},
            "data": [
                {"secretKey": "previous", "remoteRef": {"key": db, "property": "pw",
                                                        "version": "AWSPREVIOUS"}},
                {"secretKey": "first", "remoteRef": {"key": db, "property": "pw",
                                                     "version": f"uuid/{first}"}},
                {"secretKey": "cert", "remoteRef": {"key": cert}},
                {"secretKey": "raw", "remoteRef": {"key": db, "property": "blob",
                                                   "decodingStrategy": "Auto"}},
            ],
            "dataFrom": [{"extract": {"key": db},
                          "rewrite": [{"regexp": {"source": "^(pw|user)$",
                                                  "target": "$1"}}]}]}),
        external_secret("merge-in", {
            "secretStoreRef": ref, "target": {"name": "shared", "creationPolicy": "Merge"},
            "data": [{"secretKey": "pw", "remoteRef": {"key": db, "property": "pw"}}]}),
        external_secret("nothing", {
            "secretStoreRef": ref, "target": {"creationPolicy": "None"},
            "data": [{"secretKey": "pw", "remoteRef": {"key": db, "property": "pw"}}]}),
    ]
    app = write_app(tmp_path, manifests, {"secrets": {"externalSecrets": {
        "mode": "materialize", "stores": [store]}}})
    proc = kiln("render", app, tmp_path, moto_server.env())
    assert proc.returncode == 0, proc.stderr
    out = {o["metadata"]["name"]: o for o in docs(proc.stdout)}
    assert set(out) == {"shared", "creds"}
    assert secret_values(out["creds"]) == {
        "previous": v1["pw"].encode(), "first": v1["pw"].encode(), "cert": pem,
        "raw": b"\x00raw", "user": v2["user"].encode(), "pw": v2["pw"].encode(),
        "blob": v2["blob"].encode(), "dsn": f"{v2['user']}:{v2['pw']}".encode()}
    assert out["creds"]["type"] == "Opaque"
    assert secret_values(out["shared"]) == {"keep": b"kept", "pw": v2["pw"].encode()}


def test_materialize_gcp_store(tmp_path: Path, gcp_fake: FakeSecretManager,
                               plaintext_scan: PlaintextScan) -> None:
    v1 = {"token": unique("t1")}
    v2 = {"token": unique("t2"), "nested": {"k": unique("n")}}
    raw = unique("raw")
    gcp_fake.put("proj", "api", json.dumps(v1), json.dumps(v2))
    gcp_fake.put("proj", "raw", raw)
    plaintext_scan.add(v1["token"], v2["token"], raw)
    store = {"apiVersion": ESO, "kind": "SecretStore",
             "metadata": {"name": "gcp", "namespace": "prod"},
             "spec": {"provider": {"gcpsm": {"projectID": "proj"}}}}
    es = external_secret("api", {
        "secretStoreRef": {"name": "gcp"},
        "data": [
            {"secretKey": "token", "remoteRef": {"key": "api", "property": "token"}},
            {"secretKey": "old", "remoteRef": {"key": "api", "property": "token",
                                               "version": "1"}},
            {"secretKey": "nested", "remoteRef": {"key": "api", "property": "nested.k"}},
            {"secretKey": "raw", "remoteRef": {"key": "raw"}},
        ]})
    app = write_app(tmp_path, [store, es], {"secrets": {
        "gcp": {"endpoint": gcp_fake.endpoint, "insecure": True},
        "externalSecrets": {"mode": "materialize"}}})
    allow = {"KILN_ALLOW_APP_SETTINGS": "secrets.gcp.endpoint,secrets.gcp.insecure"}
    proc = kiln("render", app, tmp_path, allow)
    assert proc.returncode == 0, proc.stderr
    (secret,) = docs(proc.stdout)
    assert secret_values(secret) == {"token": v2["token"].encode(),
                                     "old": v1["token"].encode(),
                                     "nested": v2["nested"]["k"].encode(), "raw": raw.encode()}
    assert gcp_fake.access_calls == 3  # api@latest, api@1, raw@latest


def test_materialize_reports_every_problem(tmp_path: Path, openbao: OpenBao,
                                           plaintext_scan: PlaintextScan) -> None:
    path = unique("app/err")
    value = unique("pw")
    openbao.kv2_put("secret", path, {"pw": value})
    plaintext_scan.add(value)
    app = write_app(tmp_path, [vault_store(openbao), external_secret("a", {
        "secretStoreRef": {"name": "vault-backend"},
        "target": {"template": {"data": {"x": "{{ .nope }}"}}},
        "data": [{"secretKey": "pw", "remoteRef": {"key": path, "property": "pw"}}]}),
        external_secret("b", {
            "secretStoreRef": {"name": "missing-store"},
            "data": [{"secretKey": "pw", "remoteRef": {"key": path}}]}),
        external_secret("c", {
            "secretStoreRef": {"name": "vault-backend"},
            "data": [{"secretKey": "pw", "remoteRef": {"key": path, "property": "nokey"}},
                     {"secretKey": "gone", "remoteRef": {"key": unique("app/none")}}]})])
    proc = kiln("render", app, tmp_path, {"VAULT_TOKEN": openbao.token,
                                          "VAULT_ADDR": openbao.addr},
                "-O", "secrets.externalSecrets.mode=materialize")
    assert_clean_failure(proc, "4 secret reference(s) could not be resolved")
    for needle in ("ExternalSecret/prod/a: spec.target.template.data.x: map has no entry",
                   "ExternalSecret/prod/b: spec.data[0]: SecretStore 'missing-store'",
                   "ExternalSecret/prod/c: spec.data[0]: property 'nokey' not found",
                   "ExternalSecret/prod/c: spec.data[1]: nothing found"):
        assert needle in proc.stderr, proc.stderr
    assert value not in proc.stderr


def test_materialize_bad_store_settings(tmp_path: Path) -> None:
    es = external_secret("a", {"secretStoreRef": {"name": "s"},
                               "data": [{"secretKey": "k", "remoteRef": {"key": "k"}}]})
    app = write_app(tmp_path, [es], {"secrets": {"externalSecrets": {
        "mode": "materialize", "stores": [{"kind": "ConfigMap"}]}}})
    assert_clean_failure(kiln("render", app, tmp_path, {}),
                         "secrets.externalSecrets.stores[0] is not an external-secrets.io")
    store = {"apiVersion": ESO, "kind": "SecretStore", "metadata": {"name": "s"},
             "spec": {"provider": {"azurekv": {"vaultUrl": "https://x"}}}}
    app = write_app(tmp_path, [store, es], {"secrets": {"externalSecrets": {
        "mode": "materialize"}}}, name="azure")
    assert_clean_failure(kiln("render", app, tmp_path, {}), "ExternalSecret/prod/a",
                         "provider 'azurekv' is not supported by kiln")


def test_materialize_vault_store_with_the_vault_plugin_disabled(tmp_path: Path, openbao: OpenBao,
                                                                plaintext_scan: PlaintextScan
                                                                ) -> None:
    """A Vault store is read through the Vault resolver's backend: with that plugin disabled,
    materialising it is one clear error, and nothing is read from the server."""
    path = unique("app/off")
    value = unique("pw")
    openbao.kv2_put("secret", path, {"pw": value})
    plaintext_scan.add(value)
    app = write_app(tmp_path, [vault_store(openbao), external_secret("a", {
        "secretStoreRef": {"name": "vault-backend"},
        "data": [{"secretKey": "pw", "remoteRef": {"key": path, "property": "pw"}}]})])
    env = {"VAULT_TOKEN": openbao.token, "VAULT_ADDR": openbao.addr}
    enabled = kiln("render", app, tmp_path, env, "-O", "secrets.externalSecrets.mode=materialize")
    assert enabled.returncode == 0, enabled.stderr
    assert secret_values(docs(enabled.stdout)[0]) == {"pw": value.encode()}
    proc = kiln("render", app, tmp_path, {**env, "KILN_DISABLE_PLUGINS": "secrets_vault"},
                "-O", "secrets.externalSecrets.mode=materialize")
    assert_clean_failure(proc, "ExternalSecret/prod/a",
                         "no enabled resolver provides a 'vault' backend",
                         "KILN_DISABLE_PLUGINS")
    assert value not in proc.stderr


# -- convert ------------------------------------------------------------------------------------


def avp_secret(path: str) -> dict[str, Any]:
    """An argocd-vault-plugin style Secret: generic and inline placeholders, text around one,
    a modifier, a base64 data value holding a placeholder, and a literal key."""
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
        "metadata": {"name": "app-db", "namespace": "prod", "labels": {"app": "web"},
                     "annotations": {"avp.kubernetes.io/path": f"secret/data/{path}",
                                     "owner": "team-db"}},
        "stringData": {
            "username": "<user>",
            "password": f"<path:secret/data/{path}#pw#1>",
            "url": f"postgres://<user>:<path:secret/data/{path}#pw | base64encode>@db:5432",
            "mode": "production",
        },
        "data": {"token": b64(f"<path:secret/data/{path}#token>")},
    }


def test_convert_realistic_app_carries_no_secret(tmp_path: Path) -> None:
    path = "app/db"
    app = write_app(tmp_path, [deployment("app-db"), avp_secret(path)])
    proc = kiln("render", app, tmp_path, {}, "-O", "secrets.externalSecrets.mode=convert",
                "-O", "secrets.externalSecrets.secretStore=vault-backend:ClusterSecretStore")
    assert proc.returncode == 0, proc.stderr
    out = docs(proc.stdout)
    assert out[0] == deployment("app-db")
    es = out[1]
    assert es["apiVersion"] == ESO and es["kind"] == "ExternalSecret"
    assert es["metadata"] == {"name": "app-db", "namespace": "prod", "labels": {"app": "web"}}
    spec = es["spec"]
    assert spec["secretStoreRef"] == {"name": "vault-backend", "kind": "ClusterSecretStore"}
    remote = {d["secretKey"]: d["remoteRef"] for d in spec["data"]}
    assert sorted(remote.values(), key=json.dumps) == sorted([
        {"key": f"secret/data/{path}", "property": "user"},
        {"key": f"secret/data/{path}", "property": "pw", "version": "1"},
        {"key": f"secret/data/{path}", "property": "pw"},
        {"key": f"secret/data/{path}", "property": "token"}], key=json.dumps)
    template = spec["target"]["template"]
    assert template["type"] == "kubernetes.io/basic-auth"
    assert template["metadata"] == {"labels": {"app": "web"}, "annotations": {"owner": "team-db"}}
    assert set(template["data"]) == {"username", "password", "url", "mode", "token"}
    assert template["data"]["mode"] == "production"
    assert "avp.kubernetes.io" not in proc.stdout and "<path:" not in proc.stdout
    # The converted stream is itself valid in keep mode.
    again = kiln("generate", "-", tmp_path, {}, stdin=proc.stdout)
    assert again.returncode == 0, again.stderr


def test_convert_example_app(tmp_path: Path) -> None:
    from tests.helpers import EXAMPLES

    proc = kiln("render", EXAMPLES / "external-secrets-convert", tmp_path, {})
    assert proc.returncode == 0, proc.stderr
    out = docs(proc.stdout)
    assert [o["kind"] for o in out] == ["Deployment", "ExternalSecret"]
    assert "<" not in json.dumps(out[1]) and "avp.kubernetes.io" not in proc.stdout
    assert {d["remoteRef"]["property"] for d in out[1]["spec"]["data"]} == {"user",
                                                                            "password"}


def test_convert_reports_what_eso_cannot_express(tmp_path: Path) -> None:
    secret = avp_secret("app/db")
    secret["stringData"]["cfg"] = "<path:secret/data/app/db#cfg | jsonPath {.a}>"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
          "data": {"k": "<path:secret/data/app/db#user>"}}
    app = write_app(tmp_path, [secret, cm])
    proc = kiln("render", app, tmp_path, {}, "-O", "secrets.externalSecrets.mode=convert",
                "-O", "secrets.externalSecrets.secretStore=vault-backend")
    assert_clean_failure(proc, "2 secret reference(s) could not be resolved")
    assert "stringData.cfg: <path:secret/data/app/db#cfg | jsonPath {.a}>: modifier " \
           "'jsonPath' has no External Secrets template equivalent" in proc.stderr
    assert "ConfigMap/c: data.k: <path:secret/data/app/db#user>: only Secret values" \
        in proc.stderr


def test_round_trip_convert_then_materialize_equals_resolving(
        tmp_path: Path, openbao: OpenBao, plaintext_scan: PlaintextScan) -> None:
    path = unique("rt/db")
    v1 = {"user": unique("u"), "pw": unique("pw-one"), "token": unique("tok1")}
    v2 = {**v1, "pw": unique("pw-two"), "token": unique("tok2")}
    openbao.kv2_put("secret", path, v1)
    openbao.kv2_put("secret", path, v2)
    plaintext_scan.add(v1["pw"], v2["pw"], v1["user"], v1["token"], v2["token"])
    app = write_app(tmp_path, [deployment("app-db"), vault_store(openbao), avp_secret(path)])
    avp_env = {"AVP_TYPE": "vault", "VAULT_ADDR": openbao.addr, "VAULT_TOKEN": openbao.token}
    resolved = kiln("generate", app, tmp_path, avp_env)
    assert resolved.returncode == 0, resolved.stderr
    (direct,) = by_kind(docs(resolved.stdout), "Secret")

    converted = kiln("render", app, tmp_path, {}, "-O", "secrets.externalSecrets.mode=convert",
                     "-O", "secrets.externalSecrets.secretStore=vault-backend")
    assert converted.returncode == 0, converted.stderr
    for value in plaintext_scan.values:
        assert value not in converted.stdout
    materialized = kiln("generate", "-", tmp_path, {"VAULT_TOKEN": openbao.token,
                                                     "VAULT_ADDR": openbao.addr,
                                                     "KILN_EXTERNAL_SECRETS": "materialize"},
                        stdin=converted.stdout)
    assert materialized.returncode == 0, materialized.stderr
    # The flag does the same for a stream as the variable (no app, so no kiln.yaml).
    by_flag = kiln("generate", "-", tmp_path, {"VAULT_TOKEN": openbao.token,
                                               "VAULT_ADDR": openbao.addr},
                   "--external-secrets", "materialize", stdin=converted.stdout)
    assert by_flag.returncode == 0, by_flag.stderr
    assert by_flag.stdout == materialized.stdout
    out = docs(materialized.stdout)
    assert [o["kind"] for o in out] == ["Deployment", "Secret"]
    secret = out[1]
    assert secret_values(secret) == secret_values(direct)
    assert secret_values(direct)["password"] == v1["pw"].encode()  # sanity: real values
    assert secret["type"] == direct["type"]
    assert secret["metadata"]["labels"] == direct["metadata"]["labels"]
    assert secret["metadata"]["annotations"] == {"owner": "team-db"}
    assert yaml.safe_dump(secret_values(secret))  # plain data, no references left
