"""The Vault resolver against a real OpenBao dev server, through the real ``kiln`` CLI.

Expected values are computed in the test from what it wrote to the server (base64, sha256, JSON
done by Python's own libraries), never taken from kiln's output. Every test that resolves
secrets ends with the plaintext scan of its cache directories.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets as pysecrets
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import assert_clean_failure, run_kiln
from tests.integration.openbao import OpenBao, openbao  # noqa: F401
from tests.secrets_scan import PlaintextScan, plaintext_scan  # noqa: F401
from tests.servers import free_port

pytestmark = pytest.mark.integration


def _v(name: str) -> str:
    return f"{name}-{pysecrets.token_hex(6)}"


@dataclass
class VaultData:
    """What the session seeded on the server."""

    server: OpenBao
    user: str
    pw_v1: str
    pw_v2: str
    config_json: str
    db_user: str
    yaml_doc: str
    pem: str
    b64_value: str
    plain_b64_source: str
    kv1_token: str
    forbidden: str
    role_id: str
    secret_id: str
    up_user: str
    up_password: str

    def values(self) -> list[str]:
        """Every secret value stored (for the plaintext and stderr scans)."""
        return [self.pw_v1, self.pw_v2, self.config_json, self.db_user, self.yaml_doc,
                self.pem, self.b64_value, self.plain_b64_source, self.kv1_token,
                self.forbidden, self.secret_id, self.up_password, self.user]

    def env(self, **extra: str) -> dict[str, str]:
        """AVP-style environment for token auth, plus ``extra``."""
        env = {"AVP_TYPE": "vault", "AVP_AUTH_TYPE": "token", "VAULT_ADDR": self.server.addr,
               "VAULT_TOKEN": self.server.token}
        env.update(extra)
        return env


@pytest.fixture(scope="session")
def vault(openbao: OpenBao) -> VaultData:  # noqa: F811
    """KV v2 (``secret/``, two versions), KV v1 (``kv1/``), a read-only AppRole and user."""
    data = VaultData(
        server=openbao, user=_v("alice"), pw_v1=_v("pw-one"), pw_v2=_v("pw-two"),
        config_json="", db_user=_v("dbuser"), yaml_doc="", pem="", b64_value="",
        plain_b64_source=_v("decoded"), kv1_token=_v("kv1tok"), forbidden=_v("forbidden"),
        role_id="", secret_id="", up_user="kiln", up_password=_v("uppw"),
    )
    data.config_json = json.dumps({"db": {"user": data.db_user, "port": 5432}})
    data.yaml_doc = f"name: {data.db_user}\nreplicas: 3\n"
    data.pem = f"-----BEGIN KEY-----\n  {_v('line1')}\n\n  {_v('line2')}\n-----END KEY-----"
    data.b64_value = base64.b64encode(data.plain_b64_source.encode()).decode()
    openbao.kv2_put("secret", "app", {"user": data.user, "pw": data.pw_v1})
    openbao.kv2_put("secret", "app", {
        "user": data.user, "pw": data.pw_v2, "config": data.config_json, "doc": data.yaml_doc,
        "pem": data.pem, "encoded": data.b64_value, "replicas": "3",
    })
    for i in range(3):
        openbao.kv2_put("secret", f"many/p{i}", {f"k{j}": f"path{i}-key{j}" for j in range(10)})
    openbao.kv2_put("secret", "forbidden", {"pw": data.forbidden})
    openbao.enable_kv("kv1", 1)
    openbao.kv1_put("kv1", "app", {"token": data.kv1_token})
    openbao.put_policy("kiln-read", textwrap.dedent("""
        path "secret/data/app" { capabilities = ["read"] }
        path "secret/data/many/*" { capabilities = ["read"] }
        path "kv1/*" { capabilities = ["read"] }
    """))
    data.role_id, data.secret_id = openbao.approle("kiln", ["kiln-read"])
    openbao.userpass(data.up_user, data.up_password, ["kiln-read"])
    return data


@pytest.fixture(autouse=True)
def _no_ambient_vault(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for var in list(os.environ):
        if var.startswith(("VAULT_", "AVP_", "ARGOCD_ENV_", "BAO_")):
            monkeypatch.delenv(var)


def generate(stream: str, env: dict[str, str], *args: str,
             cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``kiln generate -`` on ``stream``."""
    extra = ["--cache-dir", str(cache)] if cache else []
    return run_kiln("generate", "-", *extra, *args, stdin=stream, env=env)


def generate_app(stream: str, env: dict[str, str], tmp_path: Path, *args: str
                 ) -> subprocess.CompletedProcess[str]:
    """Run ``kiln generate APP`` on ``stream`` laid out as a directory app, cached in the
    test's ``kiln-cache`` (so the plaintext scan has an entry to read)."""
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "manifests.yaml").write_text(stream)
    return run_kiln("generate", str(app), "--cache-dir", str(tmp_path / "kiln-cache"), *args,
                    env=env)


def docs(text: str) -> list[dict[str, Any]]:
    """Parse a YAML stream."""
    return [d for d in yaml.safe_load_all(text) if d]


def assert_quiet(stderr: str, vault: VaultData) -> None:
    """No secret value (or its base64) in ``stderr``."""
    for value in vault.values():
        for form in (value, base64.b64encode(value.encode()).decode()):
            assert form not in stderr, "secret value leaked to stderr"


# -- every form -----------------------------------------------------------------------------------

ALL_FORMS = """\
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: prod
  annotations:
    avp.kubernetes.io/path: secret/data/app
    team: <user>
  labels:
    owner: <user>
stringData:
  generic: <pw>
  spliced: "user=<user>;pw=<pw>"
  inline: <path:secret/data/app#pw>
  inline_v1: <path:secret/data/app#pw#1>
  uri: ref+vault://secret/app#pw
  uri_v1: ref+vault://secret/app?version=1#pw
  uri_data: ref+vault://secret/data/app#user
  b64enc: <pw | base64encode>
  b64dec: <encoded | base64decode>
  jsonpath: <path:secret/data/app#config | jsonPath {.db.user}>
  sha: <path:secret/data/app#pw | sha256sum>
  chain: <config | jsonPath {.db.user} | base64encode>
  indented: <pem | indent 4>
  list:
  - <user>
  - plain
  <user>: map keys are never substituted
data:
  embedded: {embedded}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    avp.kubernetes.io/path: secret/data/app
spec:
  replicas: <replicas | jsonParse>
  template:
    metadata:
      annotations:
        config: <path:secret/data/app#config | jsonParse>
        doc: <doc | yamlParse>
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  port: <path:secret/data/app#config | jsonPath {.db.port}>
  parsed: <path:secret/data/app#replicas | jsonParse>
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: things.example.com
spec:
  description: "set <KEY> to the key name"
"""


def test_every_placeholder_form_and_modifier(vault: VaultData, tmp_path: Path,
                                             plaintext_scan: PlaintextScan) -> None:  # noqa: F811
    plaintext_scan.add(*vault.values())
    embedded = base64.b64encode(b"password=<pw>\nuser=<path:secret/data/app#user>").decode()
    stream = ALL_FORMS.replace("{embedded}", embedded)
    proc = generate(stream, vault.env(), cache=tmp_path / "kiln-cache")
    assert proc.returncode == 0, proc.stderr
    # The same stream as a directory app: rendered (and cached), then resolved alike.
    app = generate_app(stream, vault.env(), tmp_path)
    assert app.returncode == 0, app.stderr
    assert docs(app.stdout) == docs(proc.stdout)
    secret, deploy, cm, crd = docs(proc.stdout)
    sd = secret["stringData"]
    assert sd["generic"] == vault.pw_v2
    assert sd["spliced"] == f"user={vault.user};pw={vault.pw_v2}"
    assert sd["inline"] == vault.pw_v2
    assert sd["inline_v1"] == vault.pw_v1
    assert sd["uri"] == vault.pw_v2
    assert sd["uri_v1"] == vault.pw_v1
    assert sd["uri_data"] == vault.user
    assert sd["b64enc"] == base64.b64encode(vault.pw_v2.encode()).decode()
    assert sd["b64dec"] == vault.plain_b64_source
    assert sd["jsonpath"] == vault.db_user
    assert sd["sha"] == hashlib.sha256(vault.pw_v2.encode()).hexdigest()
    assert sd["chain"] == base64.b64encode(vault.db_user.encode()).decode()
    pem_lines = [line.strip() for line in vault.pem.split("\n")]
    assert sd["indented"] == "\n".join([pem_lines[0]] + ["    " + x for x in pem_lines[1:] if x])
    assert sd["list"] == [vault.user, "plain"]
    assert sd["<user>"] == "map keys are never substituted"
    assert secret["metadata"]["labels"]["owner"] == vault.user
    assert secret["metadata"]["annotations"]["team"] == vault.user
    assert secret["metadata"]["annotations"]["avp.kubernetes.io/path"] == "secret/data/app"
    decoded = base64.b64decode(secret["data"]["embedded"]).decode()
    assert decoded == f"password={vault.pw_v2}\nuser={vault.user}"
    assert deploy["spec"]["replicas"] == 3
    annotations = deploy["spec"]["template"]["metadata"]["annotations"]
    assert annotations["config"] == json.loads(vault.config_json)
    assert annotations["doc"] == yaml.safe_load(vault.yaml_doc)
    assert cm["data"] == {"port": "5432", "parsed": "3"}
    assert crd["spec"]["description"] == "set <KEY> to the key name"
    assert_quiet(proc.stderr, vault)


def test_output_keeps_key_order_and_strip_annotations(vault: VaultData) -> None:
    stream = textwrap.dedent("""\
        kind: Secret
        apiVersion: v1
        metadata:
          name: s
          annotations:
            zz: keep
            avp.kubernetes.io/path: secret/data/app
        stringData:
          zeta: <user>
          alpha: <pw>
    """)
    proc = generate(stream, vault.env())
    assert proc.returncode == 0, proc.stderr
    (obj,) = docs(proc.stdout)
    assert list(obj) == ["kind", "apiVersion", "metadata", "stringData"]
    assert list(obj["stringData"]) == ["zeta", "alpha"]
    assert "avp.kubernetes.io/path" in obj["metadata"]["annotations"]
    stripped = generate(stream, vault.env(), "--strip-annotations")
    assert stripped.returncode == 0, stripped.stderr
    (obj,) = docs(stripped.stdout)
    assert obj["metadata"]["annotations"] == {"zz": "keep"}


def test_kv_v1_by_annotation_and_by_env(vault: VaultData) -> None:
    annotated = textwrap.dedent("""\
        apiVersion: v1
        kind: Secret
        metadata:
          name: s
          annotations:
            avp.kubernetes.io/path: kv1/app
            avp.kubernetes.io/kv-version: "1"
            avp.kubernetes.io/secret-version: "7"
        stringData:
          a: <token>
          b: <path:kv1/app#token>
    """)
    proc = generate(annotated, vault.env())
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"] == {"a": vault.kv1_token, "b": vault.kv1_token}
    plain = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n" \
            "  a: <path:kv1/app#token>\n"
    proc = generate(plain, vault.env(AVP_KV_VERSION="1"))
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"] == {"a": vault.kv1_token}
    # Without the KV version kiln asks the mount (tests/integration/test_secrets_vault_kv.py);
    # a v1 path read as v2 because AVP_KV_VERSION says so fails with AVP's hint.
    proc = generate(plain, vault.env(AVP_KV_VERSION="2"))
    assert_clean_failure(proc, "Secret/s", "stringData.a", "KV v2")


def test_secret_version_annotation(vault: VaultData) -> None:
    stream = textwrap.dedent("""\
        apiVersion: v1
        kind: Secret
        metadata:
          name: s
          annotations:
            avp.kubernetes.io/path: secret/data/app
            avp.kubernetes.io/secret-version: "1"
        stringData:
          old: <pw>
          latest: <path:secret/data/app#pw>
    """)
    proc = generate(stream, vault.env())
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"] == {"old": vault.pw_v1, "latest": vault.pw_v2}


def test_remove_missing_and_its_limits(vault: VaultData) -> None:
    secret = textwrap.dedent("""\
        apiVersion: v1
        kind: Secret
        metadata:
          name: s
          annotations:
            avp.kubernetes.io/path: secret/data/app
            avp.kubernetes.io/remove-missing: "true"
        stringData:
          present: <pw>
          absent: <no-such-key>
          inline_absent: <path:secret/data/app#nope>
    """)
    proc = generate(secret, vault.env())
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"] == {"present": vault.pw_v2}
    deployment = secret.replace("kind: Secret", "kind: Deployment").replace("v1\n", "apps/v1\n", 1)
    proc = generate(deployment, vault.env())
    assert_clean_failure(proc, "remove-missing", "Secret or ConfigMap")


def test_ignore_leaves_object_and_never_reads(vault: VaultData) -> None:
    stream = textwrap.dedent("""\
        apiVersion: v1
        kind: Secret
        metadata:
          name: ignored
          annotations:
            avp.kubernetes.io/path: secret/data/many/p2
            avp.kubernetes.io/ignore: "true"
        stringData:
          a: <k1>
          b: <path:secret/data/many/p2#k2>
    """)
    before = len(vault.server.audit_requests("secret/data/many/p2"))
    proc = generate(stream, vault.env())
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"] == {"a": "<k1>", "b": "<path:secret/data/many/p2#k2>"}
    assert len(vault.server.audit_requests("secret/data/many/p2")) == before


def test_one_read_per_path(vault: VaultData) -> None:
    """30 placeholders over 3 paths (inline, generic and URI forms) cost exactly 3 reads."""
    objects = []
    for n in range(10):
        lines = [f"  k{j}_{i}: <path:secret/data/many/p{i}#k{j}>"
                 for i in range(3) for j in range(3)]
        body = "\n".join(lines)
        objects.append(f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s{n}\n"
                       f"stringData:\n{body}\n")
    objects.append("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n"
                   "    avp.kubernetes.io/path: secret/data/many/p0\ndata:\n  a: <k9>\n"
                   "  b: ref+vault://secret/many/p1#k8\n")
    before = len(vault.server.audit_requests("secret/data/many/"))
    proc = generate("---\n".join(objects), vault.env())
    assert proc.returncode == 0, proc.stderr
    out = docs(proc.stdout)
    assert out[3]["stringData"]["k2_1"] == "path1-key2"
    assert out[-1]["data"] == {"a": "path0-key9", "b": "path1-key8"}
    reads = vault.server.audit_requests("secret/data/many/")[before:]
    assert sorted(reads) == ["secret/data/many/p0", "secret/data/many/p1", "secret/data/many/p2"]


# -- configuration and auth --------------------------------------------------------------------

SIMPLE = "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns}\n" \
         "stringData:\n  pw: <path:secret/data/app#pw>\n"


def test_argocd_env_forms_win(vault: VaultData) -> None:
    # The token is guarded (kiln.core.trust): its ARGOCD_ENV_ form needs the operator's opt-in.
    env = vault.env(VAULT_TOKEN="wrong-token", ARGOCD_ENV_VAULT_TOKEN=vault.server.token,
                    AVP_TYPE="awssecretsmanager", ARGOCD_ENV_AVP_TYPE="vault",
                    KILN_ALLOW_APP_SETTINGS="VAULT_TOKEN")
    proc = generate(SIMPLE, env)
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"]["pw"] == vault.pw_v2


def test_other_avp_type_leaves_placeholders_to_its_backend(vault: VaultData) -> None:
    proc = generate(SIMPLE, vault.env(AVP_TYPE="azurekeyvault"))
    assert_clean_failure(proc, "no secrets backend")


def test_approle_login_read_only_policy(vault: VaultData) -> None:
    env = vault.env(AVP_AUTH_TYPE="approle", AVP_ROLE_ID=vault.role_id,
                    AVP_SECRET_ID=vault.secret_id)
    del env["VAULT_TOKEN"]
    proc = generate(SIMPLE, env)
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"]["pw"] == vault.pw_v2
    denied = SIMPLE.replace("secret/data/app#pw", "secret/data/forbidden#pw")
    proc = generate(denied, env)
    assert_clean_failure(proc, "Secret/ns/s", "stringData.pw", "permission denied")
    assert_quiet(proc.stderr, vault)


def test_userpass_login(vault: VaultData) -> None:
    env = vault.env(AVP_AUTH_TYPE="userpass", AVP_USERNAME=vault.up_user,
                    AVP_PASSWORD=vault.up_password)
    del env["VAULT_TOKEN"]
    proc = generate(SIMPLE, env)
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"]["pw"] == vault.pw_v2
    env["AVP_PASSWORD"] = "not-the-password"
    proc = generate(SIMPLE, env)
    assert_clean_failure(proc, "userpass")


def test_kubernetes_login_sends_the_service_account_token(vault: VaultData,
                                                          tmp_path: Path) -> None:
    """The server has the kubernetes method enabled but no cluster to review tokens with, so
    the login must reach it (mount path honoured) and fail cleanly with the server's answer."""
    vault.server.enable_auth("kubernetes", "k8s-test")
    jwt = tmp_path / "token"
    jwt.write_text("eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n")
    env = vault.env(AVP_AUTH_TYPE="k8s", AVP_K8S_ROLE="kiln", AVP_K8S_MOUNT_PATH="auth/k8s-test",
                    AVP_K8S_TOKEN_PATH=str(jwt))
    proc = generate(SIMPLE, env)
    assert_clean_failure(proc, "logging in with kubernetes at auth/k8s-test")
    env["AVP_K8S_TOKEN_PATH"] = str(tmp_path / "missing")
    proc = generate(SIMPLE, env)
    assert_clean_failure(proc, "AVP_K8S_TOKEN_PATH")


def test_kiln_yaml_section_configures_vault(vault: VaultData, tmp_path: Path,
                                            plaintext_scan: PlaintextScan) -> None:  # noqa: F811
    plaintext_scan.add(*vault.values())
    app = tmp_path / "app"
    app.mkdir()
    (app / "kiln.yaml").write_text(f"secrets:\n  vault:\n    address: {vault.server.addr}\n"
                                   "    authType: token\n    kvVersion: '2'\n")
    (app / "secret.yaml").write_text(SIMPLE)
    # kiln.yaml is repository level: the operator opts in to its address and auth method.
    env = {"VAULT_TOKEN": vault.server.token,
           "KILN_ALLOW_APP_SETTINGS": "secrets.vault.address, secrets.vault.authType"}
    proc = run_kiln("render", str(app), "--cache-dir", str(tmp_path / "kiln-cache"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"]["pw"] == vault.pw_v2


# -- render, cache, redaction --------------------------------------------------------------------

def test_render_resolves_after_the_cache_and_no_secrets_skips(
        vault: VaultData, tmp_path: Path, plaintext_scan: PlaintextScan) -> None:  # noqa: F811
    plaintext_scan.add(*vault.values())
    app = tmp_path / "app"
    app.mkdir()
    embedded = base64.b64encode(b"<path:secret/data/app#pw>").decode()
    (app / "secret.yaml").write_text(SIMPLE + f"data:\n  e: {embedded}\n")
    cache = tmp_path / "kiln-cache"
    for _ in range(2):  # miss, then hit: both resolve, neither stores a value
        proc = run_kiln("render", str(app), "--cache-dir", str(cache), env=vault.env())
        assert proc.returncode == 0, proc.stderr
        obj = docs(proc.stdout)[0]
        assert obj["stringData"]["pw"] == vault.pw_v2
        assert base64.b64decode(obj["data"]["e"]).decode() == vault.pw_v2
    assert any(cache.rglob("*")), "the cache was not written"
    raw = run_kiln("render", str(app), "--cache-dir", str(cache), "--no-secrets", env=vault.env())
    assert raw.returncode == 0, raw.stderr
    assert docs(raw.stdout)[0]["stringData"]["pw"] == "<path:secret/data/app#pw>"
    gen = run_kiln("generate", str(app), "--cache-dir", str(cache), env=vault.env())
    assert gen.returncode == 0, gen.stderr
    assert docs(gen.stdout)[0]["stringData"]["pw"] == vault.pw_v2


def test_debug_logging_never_shows_a_value(vault: VaultData, tmp_path: Path,
                                           plaintext_scan: PlaintextScan) -> None:  # noqa: F811
    plaintext_scan.add(*vault.values())
    stream = ALL_FORMS.replace("{embedded}", base64.b64encode(b"<pw>").decode())
    proc = generate(stream, vault.env(), "--debug", cache=tmp_path / "kiln-cache")
    assert proc.returncode == 0, proc.stderr
    assert "DEBUG" in proc.stderr
    assert_quiet(proc.stderr, vault)
    for attempt in ("rendered", "cache hit"):
        app = generate_app(stream, vault.env(), tmp_path, "--debug")
        assert app.returncode == 0, app.stderr
        assert attempt in app.stderr
        assert_quiet(app.stderr, vault)
    # A failing run with --debug prints a traceback: still no value, no template text.
    bad = stream + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: bad}\n" \
                   "stringData:\n  x: \"prefix-text <path:secret/data/app#missing>\"\n"
    proc = generate(bad, vault.env(), "--debug")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "Traceback" in proc.stderr
    assert "prefix-text" not in proc.stderr
    assert_quiet(proc.stderr, vault)


# -- failures -----------------------------------------------------------------------------

def test_server_down_names_vault_addr(vault: VaultData) -> None:
    env = vault.env(VAULT_ADDR=f"http://127.0.0.1:{free_port()}")
    proc = generate(SIMPLE, env)
    assert_clean_failure(proc, "VAULT_ADDR", "cannot reach")


def test_collected_errors_one_summary_and_a_list(vault: VaultData) -> None:
    stream = textwrap.dedent("""\
        apiVersion: v1
        kind: Secret
        metadata:
          name: s
          namespace: ns
          annotations:
            avp.kubernetes.io/path: secret/data/app
        stringData:
          missing_key: "text around <nokey> the placeholder"
          missing_path: <path:secret/data/nothing-here#pw>
          bad_modifier: <pw | frobnicate>
          bad_indent: <pw | indent x>
          malformed: <path:secret/data/app>
          traversal: <path:secret/data/../forbidden#pw>
          bad_json: <pw | jsonParse>
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: other}
        data:
          x: <path:secret/data/app#absent>
    """)
    proc = generate(stream, vault.env())
    assert_clean_failure(proc, "8 secret reference(s) could not be resolved")
    lines = proc.stderr.strip().splitlines()
    details = lines[1:]
    assert len(details) == 8, proc.stderr
    for field in ("missing_key", "missing_path", "bad_modifier", "bad_indent", "malformed",
                  "traversal", "bad_json"):
        assert any(f"Secret/ns/s: stringData.{field}: " in line for line in details), field
    assert any("ConfigMap/other: data.x: <path:secret/data/app#absent>" in line
               for line in details)
    assert "text around" not in proc.stderr
    assert_quiet(proc.stderr, vault)


def test_path_validation_is_enforced(vault: VaultData) -> None:
    env = vault.env(AVP_PATH_VALIDATION=r"^secret/data/many/[a-z0-9]+$")
    proc = generate(SIMPLE, env)
    assert_clean_failure(proc, "AVP_PATH_VALIDATION")
    ok = SIMPLE.replace("secret/data/app#pw", "secret/data/many/p0#k0")
    proc = generate(ok, env)
    assert proc.returncode == 0, proc.stderr
    proc = generate(SIMPLE, vault.env(AVP_PATH_VALIDATION="(unclosed"))
    assert_clean_failure(proc, "AVP_PATH_VALIDATION is not a valid regular expression")


def test_missing_configuration_is_a_clean_error(vault: VaultData) -> None:
    proc = generate(SIMPLE, {"AVP_TYPE": "vault", "VAULT_TOKEN": "x"})
    assert_clean_failure(proc, "VAULT_ADDR")
    proc = generate(SIMPLE, {"AVP_TYPE": "vault", "VAULT_ADDR": vault.server.addr,
                             "AVP_AUTH_TYPE": "approle"})
    assert_clean_failure(proc, "AVP_ROLE_ID and AVP_SECRET_ID")
    proc = generate(SIMPLE, {})
    assert_clean_failure(proc, "no secrets backend")


def test_sealed_server_is_retried_then_reported(tmp_path: Path) -> None:
    """A sealed server answers 503 (transient): kiln retries with backoff (0.2 + 0.4 + 0.8 s),
    then fails cleanly. Uses its own server, since sealing is not undone."""
    import time

    from tests.integration.openbao import start_openbao, stop_openbao

    server = start_openbao(tmp_path / "sealed")
    try:
        server.api("PUT", "sys/seal")
        env = {"AVP_TYPE": "vault", "AVP_AUTH_TYPE": "token", "VAULT_ADDR": server.addr,
               "VAULT_TOKEN": server.token}
        started = time.monotonic()
        proc = generate(SIMPLE, env)
        elapsed = time.monotonic() - started
        assert_clean_failure(proc, "VAULT_ADDR", "VaultDown")
        assert elapsed >= 1.4, elapsed
    finally:
        stop_openbao(server)


def test_tls_verification_cacert_and_skip_verify(tmp_path: Path) -> None:
    """A TLS dev server with its own CA: unverifiable without VAULT_CACERT (a final error,
    not retried), fine with it, and fine with VAULT_SKIP_VERIFY."""
    from tests.integration.openbao import start_openbao, stop_openbao

    server = start_openbao(tmp_path / "tls", tls=True)
    try:
        value = _v("tls-secret")
        server.kv2_put("secret", "app", {"pw": value})
        env = {"AVP_TYPE": "vault", "AVP_AUTH_TYPE": "token", "VAULT_ADDR": server.addr,
               "VAULT_TOKEN": server.token, "SSL_CERT_FILE": "", "REQUESTS_CA_BUNDLE": ""}
        proc = generate(SIMPLE, env)
        assert_clean_failure(proc, "VAULT_CACERT")
        assert server.ca_cert is not None
        for extra in ({"VAULT_CACERT": str(server.ca_cert)}, {"VAULT_SKIP_VERIFY": "true"}):
            proc = generate(SIMPLE, {**env, **extra})
            assert proc.returncode == 0, proc.stderr
            assert docs(proc.stdout)[0]["stringData"]["pw"] == value
    finally:
        stop_openbao(server)


def test_github_login_reaches_its_mount(vault: VaultData) -> None:
    """OpenBao ships no github auth method (its plugin catalog lacks it) and the method needs
    GitHub itself to verify a token, so this only checks that the login goes to the github
    mount and the server's refusal is reported cleanly, with the token never echoed."""
    env = vault.env(AVP_AUTH_TYPE="github", AVP_GITHUB_TOKEN="ghp_kilnTestTokenValue")
    del env["VAULT_TOKEN"]
    proc = generate(SIMPLE, env)
    assert_clean_failure(proc, "logging in with github at auth/github")
    assert "ghp_kilnTestTokenValue" not in proc.stderr


def test_generate_reads_a_file_and_rejects_bad_streams(vault: VaultData, tmp_path: Path) -> None:
    manifest = tmp_path / "secret.yaml"
    manifest.write_text(SIMPLE)
    proc = run_kiln("generate", str(manifest), env=vault.env())
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"]["pw"] == vault.pw_v2
    proc = generate("kind: [unclosed\n", vault.env())
    assert_clean_failure(proc, "<stdin>", "malformed YAML")
    proc = generate("apiVersion: v1\nmetadata: {name: x}\n", vault.env())
    assert_clean_failure(proc, "<stdin>", "no kind")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    proc = run_kiln("generate", str(binary), env=vault.env())
    assert_clean_failure(proc, str(binary), "not UTF-8")
