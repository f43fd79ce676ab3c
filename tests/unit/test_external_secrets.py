"""Unit tests of the external_secrets plugin's pure parts: grammars, ESO value semantics,
schema checks, the Go-template subset and the conversion planner.

Expected values are computed here with Python's own libraries (base64, json, hashlib) or
taken from ESO's documented behaviour, never from kiln's output.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from kiln.core import placeholders as ph
from kiln.core import secrets
from kiln.core.errors import ConfigError, InputError, SecretError, SecretErrors
from kiln.plugins.external_secrets import convert, gotemplate, schema, stores
from kiln.plugins.external_secrets.aws import aws_grammar, region_of_arn, secret_mapping
from kiln.plugins.external_secrets.config import (
    BINARY,
    WHOLE,
    ExternalSecretsOptions,
    external_secrets_mode,
    parse_store_ref,
)
from kiln.plugins.external_secrets.gcp import gcp_grammar, payload_mapping, resource_read

# -- grammars -------------------------------------------------------------------------------------


def _secret(**string_data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "stringData": string_data}


def test_aws_uri_reads_are_deduplicated_by_name_version_and_stage() -> None:
    objs = [_secret(a="ref+awssecrets://app/db#user", b="ref+awssecrets://app/db#pw",
                    c="ref+awssecrets://app/db?version_stage=AWSPREVIOUS#pw",
                    d="ref+awssecrets://app/db?version_id=abc#pw",
                    e="ref+awssecrets://plain")]
    keys = ph.scan(objs, aws_grammar(False))
    assert len(keys) == 4
    assert [k.version for k in keys] == [None, None, "abc", None]


def test_aws_avp_placeholders_only_when_avp_type_says_so() -> None:
    objs = [_secret(a="<path:arn:aws:secretsmanager:eu-west-1:1:secret:db-AbC#pw#v1>")]
    assert not ph.wants(objs, aws_grammar(False))
    keys = ph.scan(objs, aws_grammar(True))
    assert keys == [secrets.ReadKey("arn:aws:secretsmanager:eu-west-1:1:secret:db-AbC", "v1")]
    assert region_of_arn(keys[0].path) == "eu-west-1"
    assert region_of_arn("plain/name") == ""


def test_aws_secret_mapping_json_plain_and_binary() -> None:
    data = secret_mapping("n", json.dumps({"u": "x", "n": {"a": 1}}), None)
    assert data["u"] == "x" and data[WHOLE] == json.dumps({"u": "x", "n": {"a": 1}})
    assert secret_mapping("n", "just text", None) == {WHOLE: "just text"}
    raw = b"\x00\xffbin"
    binary = secret_mapping("n", None, raw)
    assert binary[WHOLE] == base64.b64encode(raw).decode() and binary[BINARY] is True


def test_gcp_forms_map_to_one_read() -> None:
    grammar = gcp_grammar(True)
    objs = [_secret(a="ref+gcpsecrets://p1/db#pw",
                    b="<path:projects/p1/secrets/db#db>",
                    c="<path:projects/p1/secrets/db/versions/latest#pw>",
                    d="ref+gcpsecrets://p1/db?version=2#pw",
                    e="<path:projects/p1/secrets/db#pw#2>")]
    keys = ph.scan(objs, grammar)
    assert keys == [secrets.ReadKey("projects/p1/secrets/db", "latest"),
                    secrets.ReadKey("projects/p1/secrets/db", "2")]
    assert resource_read("not/a/resource", None).variant == "malformed"


def test_gcp_payload_mapping_addresses_raw_and_json() -> None:
    doc = payload_mapping("db", json.dumps({"pw": "x"}).encode())
    assert doc["pw"] == "x" and doc["db"] == doc[WHOLE] == json.dumps({"pw": "x"})
    blob = payload_mapping("b", b"\xff\xfe")
    assert blob[WHOLE] == base64.b64encode(b"\xff\xfe").decode() and blob[BINARY]


def test_whole_key_is_opt_in() -> None:
    """Without ``whole_key`` a URI with no #KEY is still an error (core behaviour kept)."""
    objs = [_secret(a="ref+vault://secret/app")]
    plain = ph.Grammar(schemes=frozenset({"vault"}))
    _, errors = ph.substitute(objs, plain, {})
    assert errors and "has no #KEY" in errors[0].message


# -- ESO value semantics --------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "mount", "kv", "expected"), [
    ("app/db", "secret", "2", "secret/data/app/db"),
    ("secret/app/db", "secret", "2", "secret/data/app/db"),
    ("secret/data/app/db", "secret", "2", "secret/data/app/db"),
    ("app/db", "kv", "1", "kv/app/db"),
    ("secret/app/db", None, "2", "secret/data/app/db"),
    ("secret/data/app/db", None, "2", "secret/data/app/db"),
    ("kv/app", None, "1", "kv/app"),
])
def test_vault_path_follows_eso(key: str, mount: str | None, kv: str, expected: str) -> None:
    assert stores.vault_path(key, mount, kv) == expected


def test_gjson_paths_and_strings() -> None:
    doc = {"a": {"b": [10, {"c": "x"}]}, "dotted.key": "d", "n": None, "t": True}
    assert stores.gjson_get(doc, "a.b.1.c") == (True, "x")
    assert stores.gjson_get(doc, "dotted.key") == (True, "d")
    assert stores.gjson_get(doc, "dotted\\.key") == (True, "d")
    assert stores.gjson_get(doc, "a.zz") == (False, None)
    assert stores.gjson_string({"k": 1}) == '{"k":1}'
    assert stores.gjson_string(None) == "" and stores.gjson_string(True) == "true"


def test_decoding_strategies() -> None:
    raw = b"\xfb\xff binary?"
    std, url = base64.b64encode(raw), base64.urlsafe_b64encode(raw).rstrip(b"=")
    assert stores.decode(std, "Base64") == raw
    assert stores.decode(url, "Base64URL") == raw
    assert stores.decode(std, "Auto") == raw and stores.decode(url, "Auto") == raw
    assert stores.decode(b"not base64!", "Auto") == b"not base64!"
    assert stores.decode(std, "None") == std
    with pytest.raises(SecretError, match="not valid Base64"):
        stores.decode(b"***", "Base64")


def test_store_value_and_extract_per_provider() -> None:
    vault = stores.Store("SecretStore/v", "vault", {"path": "secret"}, None, None)  # type: ignore[arg-type]
    data = {"user": "u", "n": {"x": 1}}
    assert vault.value(data, {"key": "k", "property": "user"}) == b"u"
    assert json.loads(vault.value(data, {"key": "k"})) == data
    assert vault.extract(data, {"key": "k"}) == {"user": b"u", "n": b'{"x":1}'}
    aws = stores.Store("SecretStore/a", "aws", {}, None, None)  # type: ignore[arg-type]
    mapping = secret_mapping("k", json.dumps({"pw": "p", "deep": {"a": "b"}}), None)
    assert aws.value(mapping, {"key": "k", "property": "deep.a"}) == b"b"
    assert aws.value(secret_mapping("k", None, b"\x00\x01"), {"key": "k"}) == b"\x00\x01"
    with pytest.raises(SecretError, match="not a JSON object"):
        aws.extract(secret_mapping("k", "text", None), {"key": "k"})
    with pytest.raises(SecretError, match="property 'nope' not found"):
        aws.value(mapping, {"key": "k", "property": "nope"})


def test_store_read_keys_follow_each_provider() -> None:
    aws = stores.Store("s", "aws", {"region": "eu-west-1"}, None, None)  # type: ignore[arg-type]
    assert aws.read_key({"key": "db", "version": "uuid/123"}).version == "123"
    assert aws.read_key({"key": "db", "version": "AWSPREVIOUS"}).variant.endswith(
        "AWSPREVIOUS")
    gcp = stores.Store("s", "gcpsm", {"projectID": "p1"}, None, None)  # type: ignore[arg-type]
    assert gcp.read_key({"key": "db"}) == secrets.ReadKey("projects/p1/secrets/db", "latest")
    assert gcp.read_key({"key": "db", "version": "3"}).version == "3"
    vault = stores.Store("s", "vault", {"path": "secret", "version": "v1"}, None, None)  # type: ignore[arg-type]
    assert vault.read_key({"key": "a", "version": "2"}) == secrets.ReadKey("secret/a", None, "1")


def test_store_provider_checks() -> None:
    base = {"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": {"name": "s"}}
    with pytest.raises(SecretError, match="not supported by kiln"):
        stores.provider_of({**base, "spec": {"provider": {"azurekv": {}}}})
    with pytest.raises(SecretError, match="only SecretsManager"):
        stores.provider_of({**base, "spec": {"provider": {"aws": {"service":
                                                                   "ParameterStore"}}}})
    with pytest.raises(SecretError, match="projectID"):
        stores.provider_of({**base, "spec": {"provider": {"gcpsm": {}}}})


# -- schema ---------------------------------------------------------------------------------------


def _es(spec: dict[str, Any], api: str = "external-secrets.io/v1") -> dict[str, Any]:
    return {"apiVersion": api, "kind": "ExternalSecret", "metadata": {"name": "e"},
            "spec": spec}


GOOD_SPEC: dict[str, Any] = {
    "refreshInterval": "1h",
    "secretStoreRef": {"name": "vault", "kind": "ClusterSecretStore"},
    "target": {"name": "out", "creationPolicy": "Owner", "deletionPolicy": "Retain",
               "template": {"type": "Opaque", "engineVersion": "v2", "mergePolicy": "Merge",
                            "metadata": {"labels": {"a": "b"}}, "data": {"k": "{{ .x }}"}}},
    "data": [{"secretKey": "x", "remoteRef": {"key": "k", "property": "p", "version": "1",
                                              "decodingStrategy": "Base64URL"}}],
    "dataFrom": [{"extract": {"key": "k"}, "rewrite": [{"regexp": {"source": "a",
                                                                    "target": "b"}}]}],
}


@pytest.mark.parametrize("api", ["external-secrets.io/v1", "external-secrets.io/v1beta1"])
def test_valid_external_secret_passes(api: str) -> None:
    assert schema.problems(_es(GOOD_SPEC, api)) == []


@pytest.mark.parametrize(("change", "needle"), [
    ({"secretStoreRef": None}, "spec.secretStoreRef: missing"),
    ({"target": {"creationPolicy": "Always"}}, "spec.target.creationPolicy: must be one of"),
    ({"data": [{"secretKey": "x", "remoteRef": {"key": "k", "decodingStrategy": "Hex"}}]},
     "decodingStrategy: must be one of"),
    ({"data": [{"secretKey": "x", "remoteRef": {"key": "k", "propertyy": "p"}}]},
     "spec.data[0].remoteRef.propertyy: unknown field"),
    ({"data": [{"remoteRef": {"key": "k"}}]}, "spec.data[0].secretKey: required field"),
    ({"data": [{"secretKey": "bad key", "remoteRef": {"key": "k"}}]}, "not a valid Secret key"),
    ({"target": {"template": {"engineVersion": "v1"}}}, "engineVersion: must be one of v2"),
    ({"target": {"template": {"mergePolicy": "Append"}}}, "mergePolicy: must be one of"),
    ({"target": {"template": {"data": {"k": 1}}}}, "template.data: must be a map of strings"),
    ({"dataFrom": [{}]}, "needs extract, find or sourceRef"),
    ({"extra": True}, "spec.extra: unknown field"),
])
def test_schema_problems_are_named(change: dict[str, Any], needle: str) -> None:
    spec = {**GOOD_SPEC, **change}
    found = schema.problems(_es({k: v for k, v in spec.items() if v is not None}))
    assert any(needle in p for p in found), found


def test_engine_v1_only_in_v1beta1() -> None:
    spec = {**GOOD_SPEC, "target": {"template": {"engineVersion": "v1"}}}
    assert schema.problems(_es(spec, "external-secrets.io/v1beta1")) == []
    assert schema.problems(_es(spec)) == ["spec.target.template.engineVersion: must be one of v2"]


def test_validate_raises_one_input_error_for_all() -> None:
    objs = [_es({"data": [{"secretKey": "x", "remoteRef": {"key": "k"}}]}),
            _es({**GOOD_SPEC, "bogus": 1})]
    with pytest.raises(InputError) as info:
        schema.validate(objs)
    assert info.value.source == "ExternalSecret/e"
    assert "secretStoreRef" in info.value.message and "and 1 more" in info.value.message


# -- Go templates ---------------------------------------------------------------------------------


def test_template_functions_match_python_equivalents() -> None:
    data = {"user": "Alice", "cfg": json.dumps({"db": {"port": 5432}}), "pad": "  x  ",
            "dash-key": "v"}
    r = gotemplate.render
    assert r("{{ .user | b64enc }}", data) == base64.b64encode(b"Alice").decode()
    assert r("{{ .user | b64enc | b64dec }}", data) == "Alice"
    assert r("{{ .user | upper }}/{{ .user | lower }}", data) == "ALICE/alice"
    assert r("[{{ .pad | trim }}]", data) == "[x]"
    assert r("{{ (.cfg | fromJson).db.port }}", data) == "5432"
    assert json.loads(r("{{ .cfg | fromJson | toJson }}", data)) == json.loads(data["cfg"])
    assert r("{{ .user | toJson }}", data) == json.dumps("Alice")
    assert r('{{ index . "dash-key" }}', data) == "v"
    assert r("{{ .user | sha256sum }}", data) == hashlib.sha256(b"Alice").hexdigest()
    assert r("a  {{- .user -}}  b", data) == "aAliceb"
    assert r("{{/* note */}}x", data) == "x"
    assert r('{{ "lit}}eral" }}', data) == "lit}}eral"


@pytest.mark.parametrize(("template", "needle"), [
    ("{{ .missing }}", "no entry for key 'missing'"),
    ("{{ if .user }}x{{ end }}", "'if' actions are not supported"),
    ("{{ range . }}{{ end }}", "'range' actions are not supported"),
    ("{{ $x := 1 }}", "variables"),
    ("{{ .user | nosuch }}", 'function "nosuch" not defined'),
    ("{{ .user ", "unclosed action"),
    ("{{ .user | b64dec }}", "not valid base64"),
])
def test_template_errors_never_show_values(template: str, needle: str) -> None:
    with pytest.raises(gotemplate.TemplateError) as info:
        gotemplate.render(template, {"user": "Secret-Value-123"})
    assert needle in str(info.value)
    assert "Secret-Value-123" not in str(info.value)


@pytest.mark.parametrize("text", ["plain", "a {{ b }} c", 'q "x" }} \\ {{'])
def test_escape_literal_round_trips(text: str) -> None:
    assert gotemplate.render(gotemplate.escape_literal(text), {}) == text


# -- conversion -----------------------------------------------------------------------------------


STORE = ("vault-backend", "ClusterSecretStore")


def test_convert_whole_value_references_become_data_entries() -> None:
    secret = {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
        "metadata": {"name": "db", "namespace": "prod", "labels": {"app": "web"},
                     "annotations": {"avp.kubernetes.io/path": "secret/data/db", "x": "y"}},
        "stringData": {"username": "<user>", "password": "<path:secret/data/db#pw#3>"},
        "data": {"token": base64.b64encode(b"ref+vault://secret/tok#value").decode()},
    }
    es, errors = convert.convert_secret(secret, STORE, {})
    assert errors == []
    assert es["metadata"] == {"name": "db", "namespace": "prod", "labels": {"app": "web"}}
    spec = es["spec"]
    assert spec["secretStoreRef"] == {"name": "vault-backend", "kind": "ClusterSecretStore"}
    assert spec["target"]["template"] == {
        "engineVersion": "v2", "type": "kubernetes.io/basic-auth",
        "metadata": {"labels": {"app": "web"}, "annotations": {"x": "y"}}}
    assert spec["data"] == [
        {"secretKey": "token", "remoteRef": {"key": "secret/tok", "property": "value"}},
        {"secretKey": "username", "remoteRef": {"key": "secret/data/db", "property": "user"}},
        {"secretKey": "password", "remoteRef": {"key": "secret/data/db", "property": "pw",
                                                "version": "3"}},
    ]
    assert schema.problems(es) == []


def test_convert_text_around_references_uses_a_template() -> None:
    secret = _secret(url="postgres://<path:secret/data/db#user>:<path:secret/data/db#pw | "
                         "base64encode>@db:5432/{{ app }}",
                     plain="literal", again="<path:secret/data/db#user>")
    es, errors = convert.convert_secret(secret, STORE, {})
    assert errors == []
    spec = es["spec"]
    assert spec["data"] == [
        {"secretKey": "ref0", "remoteRef": {"key": "secret/data/db", "property": "user"}},
        {"secretKey": "ref1", "remoteRef": {"key": "secret/data/db", "property": "pw"}},
    ]
    tdata = spec["target"]["template"]["data"]
    values = {"ref0": "U", "ref1": "P"}
    assert gotemplate.render(tdata["url"], values) == \
        f"postgres://U:{base64.b64encode(b'P').decode()}@db:5432/{{{{ app }}}}"
    assert gotemplate.render(tdata["plain"], values) == "literal"
    assert gotemplate.render(tdata["again"], values) == "U"
    assert schema.problems(es) == []


def test_convert_aws_and_gcp_references() -> None:
    aws, errors = convert.convert_secret(_secret(
        a="ref+awssecrets://app/db?version_stage=AWSPREVIOUS#pw",
        b="ref+awssecrets://app/db?version_id=v-1#/nested/key", c="ref+awssecrets://plain"),
        STORE, {})
    assert errors == []
    assert [d["remoteRef"] for d in aws["spec"]["data"]] == [
        {"key": "app/db", "property": "pw", "version": "AWSPREVIOUS"},
        {"key": "app/db", "property": "nested.key", "version": "uuid/v-1"},
        {"key": "plain"}]
    gcp, errors = convert.convert_secret(_secret(
        a="<path:projects/p1/secrets/db#db>", b="<path:projects/p1/secrets/db/versions/4#pw>"),
        STORE, {"AVP_TYPE": "gcpsecretmanager"})
    assert errors == []
    assert [d["remoteRef"] for d in gcp["spec"]["data"]] == [
        {"key": "db"}, {"key": "db", "property": "pw", "version": "4"}]


@pytest.mark.parametrize(("value", "env", "needle"), [
    ("<path:secret/data/db#pw | sha256sum | indent 2>", {}, "modifier 'indent'"),
    ("<path:secret/data/db#cfg | jsonPath {.a}>", {}, "modifier 'jsonPath'"),
    ("ref+awssecrets://db?region=eu-west-1#pw", {}, "?region="),
    ("ref+sops://file.yaml#/pw", {}, "ref+sops://"),
    ("<path:secret/data/db#pw>", {"AVP_TYPE": "azurekeyvault"}, "AVP_TYPE 'azurekeyvault'"),
    ("<path:secret/data/a#x> ref+awssecrets://b#y", {}, "mixes vault and aws"),
])
def test_convert_reports_what_eso_cannot_express(value: str, env: dict[str, str],
                                                 needle: str) -> None:
    with pytest.raises(SecretErrors) as info:
        convert.convert([_secret(k=value)], STORE, env)
    assert any(needle in e.one_line() for e in info.value.errors), info.value.details()


def test_convert_reports_references_outside_secrets_and_keeps_ignored() -> None:
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"template": {"spec": {"containers": [
                  {"name": "c", "env": [{"name": "PW", "value": "<path:secret/data/a#pw>"}]}]}}}}
    with pytest.raises(SecretErrors) as info:
        convert.convert([deploy], STORE, {})
    assert "only Secret values" in info.value.errors[0].one_line()
    assert "containers[0].env[0].value" in info.value.errors[0].one_line()
    ignored = _secret(k="<path:secret/data/a#pw>")
    ignored["metadata"]["annotations"] = {"avp.kubernetes.io/ignore": "true"}
    plain = _secret(k="nothing here")
    assert convert.convert([ignored, plain], STORE, {}) == [ignored, plain]


# -- configuration --------------------------------------------------------------------------------


def test_modes_and_store_refs() -> None:
    assert external_secrets_mode(ExternalSecretsOptions(), {}) == "keep"
    assert external_secrets_mode(ExternalSecretsOptions(),
                                 {"KILN_EXTERNAL_SECRETS": "materialise"}) == "materialize"
    assert external_secrets_mode(ExternalSecretsOptions(mode="convert"),
                                 {"KILN_EXTERNAL_SECRETS": "keep"}) == "convert"
    with pytest.raises(ConfigError, match="must be one of keep, materialize, convert"):
        external_secrets_mode(ExternalSecretsOptions(mode="sync"), {})
    assert parse_store_ref("vault") == ("vault", "SecretStore")
    assert parse_store_ref("vault:ClusterSecretStore") == ("vault", "ClusterSecretStore")
    for bad, needle in (("", "needs a secret store"), ("Bad_Name", "not a valid"),
                        ("v:Store", "SecretStore or ClusterSecretStore")):
        with pytest.raises(ConfigError, match=needle):
            parse_store_ref(bad)


# -- settings and laziness ------------------------------------------------------------------------


def test_aws_settings_take_credentials_from_kiln_environment() -> None:
    from kiln.plugins.external_secrets.aws import load_settings

    s = load_settings({"ARGOCD_ENV_AWS_REGION": "eu-west-3", "AWS_REGION": "us-east-1",
                       "AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "sekrit",
                       "AWS_SESSION_TOKEN": "tok"}, None)
    assert s.region == "eu-west-3"
    assert s.session_args() == {"aws_access_key_id": "AKIA1",
                                "aws_secret_access_key": "sekrit", "aws_session_token": "tok"}
    assert s.credentials() == ["sekrit", "tok"]
    assert load_settings({"AWS_PROFILE": "dev"}, None).session_args() == {"profile_name": "dev"}
    with pytest.raises(ConfigError, match="must start with http"):
        load_settings({"AWS_ENDPOINT_URL": "localhost:4566"}, None)


def test_plugin_import_does_not_import_cloud_sdks() -> None:
    import subprocess
    import sys

    code = ("import sys, kiln.plugins.external_secrets as p; "
            "from kiln.core.plugins import Plugins; Plugins({}, entry_points=False).resolvers; "
            "heavy = [m for m in ('boto3', 'botocore', 'google.cloud', 'grpc', 'hvac') "
            "if m in sys.modules]; print(heavy)")
    from tests.helpers import REPO

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO, env={"PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "[]"


def test_resolvers_are_registered_in_order() -> None:
    from kiln.core.plugins import Plugins

    resolvers = Plugins({}, entry_points=False).resolvers
    order = {r.name: r.order for r in resolvers.ordered()}
    assert order["externalSecrets"] < order["vault"] == order["aws"] == order["gcp"] \
        < order["externalSecretsMaterialize"]


def test_convert_drops_versions_on_kv_v1() -> None:
    secret = _secret(a="<path:kv1/app#token#3>", b="ref+vault://kv1/app?kv=1&version=2#token")
    secret["metadata"]["annotations"] = {"avp.kubernetes.io/kv-version": "1"}
    es, errors = convert.convert_secret(secret, STORE, {})
    assert errors == []
    assert [d["remoteRef"] for d in es["spec"]["data"]] == [
        {"key": "kv1/app", "property": "token"}, {"key": "kv1/app", "property": "token"}]
    es, _ = convert.convert_secret(_secret(a="<path:kv1/app#token#3>"), STORE,
                                   {"AVP_KV_VERSION": "1"})
    assert es["spec"]["data"][0]["remoteRef"] == {"key": "kv1/app", "property": "token"}


def test_convert_checks_the_store_serves_the_references() -> None:
    aws_store = {"apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
                 "metadata": {"name": "vault-backend"},
                 "spec": {"provider": {"aws": {"service": "SecretsManager"}}}}
    with pytest.raises(SecretErrors) as info:
        convert.convert([_secret(k="<path:secret/data/a#pw>")], STORE, {}, [aws_store])
    assert "has provider aws, but the converted references need vault" in \
        info.value.errors[0].one_line()
    with pytest.raises(SecretErrors) as info:
        convert.convert([_secret(k="<path:secret/data/a#pw>"),
                         _secret(k="ref+gcpsecrets://p/s#k")], STORE, {})
    assert "read gcp and vault references" in info.value.errors[0].one_line()
    converted = convert.convert([_secret(k="ref+awssecrets://db#pw"), aws_store], STORE, {})
    assert converted[0]["kind"] == "ExternalSecret" and converted[1] == aws_store


def test_avp_path_validation_applies_to_cloud_placeholders() -> None:
    import re

    from kiln.plugins.external_secrets.config import path_validation

    pattern = path_validation({"AVP_PATH_VALIDATION": r"^prod/"})
    assert isinstance(pattern, re.Pattern)
    grammar = aws_grammar(True, pattern)
    _, errors = ph.substitute([_secret(a="<path:dev/db#pw>")], grammar, {})
    assert "disallowed by AVP_PATH_VALIDATION" in errors[0].message
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        path_validation({"AVP_PATH_VALIDATION": "("})
