"""Trust levels end to end: repository and application input never choose where kiln's
credentials go, nor which local files it reads as credentials.

Every refusal is proved with a TCP listener the test starts on 127.0.0.1: the attacker's
"server". It records every connection and every byte; after kiln exits, it must have seen none.
The operator's opt-in is proved against the real OpenBao dev server, the SOPS rules with a real
age key and sops-encrypted file, and the source-root rule with a real git work tree and helm.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets as pysecrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import assert_clean_failure, run_kiln, tool
from tests.integration.openbao import OpenBao, openbao
from tests.integration.sops_helpers import new_age_key, sops_encrypt

__all__ = ["openbao"]

pytestmark = pytest.mark.integration

PLACEHOLDER_SECRET = ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: ns\n"
                      "stringData:\n  pw: <path:secret/data/trust#pw>\n")


class Listener:
    """A TCP server on a free loopback port that accepts, records and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.settimeout(1)
            try:
                while chunk := conn.recv(65536):
                    self.received += chunk
            except OSError:
                pass
            conn.close()  # no answer: a client that did connect fails, but we saw it

    def close(self) -> None:
        """Stop accepting and release the port."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def seeded(openbao: OpenBao) -> str:
    """The value stored at secret/data/trust#pw on the OpenBao dev server."""
    value = "pw-" + pysecrets.token_hex(8)
    openbao.kv2_put("secret", "trust", {"pw": value})
    return value


def app_with(root: Path, kiln_yaml: dict[str, Any] | None, manifest: str = PLACEHOLDER_SECRET,
             ) -> Path:
    app = root / "app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "secret.yaml").write_text(manifest)
    if kiln_yaml is not None:
        (app / "kiln.yaml").write_text(yaml.safe_dump(kiln_yaml))
    return app


def kiln(command: str, target: str, tmp_path: Path, env: dict[str, str], *args: str,
         stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_kiln(command, target, "--cache-dir", str(tmp_path / "cache"), *args, env=env,
                    stdin=stdin)


def assert_untouched(server: Listener, *secrets: str) -> None:
    assert server.connections == 0, server.received[:200]
    for value in secrets:
        assert value.encode() not in server.received


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


# -- repository level: kiln.yaml ----------------------------------------------------------------

def test_kiln_yaml_vault_address_gets_nothing(tmp_path: Path, listener: Listener,
                                              openbao: OpenBao) -> None:
    # The capture the issue describes: a committed kiln.yaml reads a file outside the source
    # root (here an age key) and posts it as a JWT to a server of its author's choosing.
    outside = tmp_path / "operator" / "age.txt"
    outside.parent.mkdir()
    age_secret = new_age_key().identity
    outside.write_text(age_secret + "\n")
    app = app_with(tmp_path / "repo", {"secrets": {"vault": {
        "address": listener.url, "authType": "kubernetes", "k8sRole": "r",
        "k8sTokenPath": str(outside)}}})
    env = {"VAULT_TOKEN": openbao.token, "VAULT_ADDR": openbao.addr}
    for command in ("render", "generate"):
        proc = kiln(command, str(app), tmp_path, env)
        assert_clean_failure(proc, "secrets.vault.address", "kiln.yaml", "repository level")
        assert len(proc.stderr.strip().splitlines()) == 1
        assert age_secret not in proc.stderr and openbao.token not in proc.stderr
    assert_untouched(listener, age_secret, openbao.token)


def test_kiln_yaml_token_path_is_refused_even_when_allowed(tmp_path: Path,
                                                           listener: Listener) -> None:
    outside = tmp_path / "operator" / "age.txt"
    outside.parent.mkdir()
    age_secret = new_age_key().identity
    outside.write_text(age_secret + "\n")
    app = app_with(tmp_path / "repo", {"secrets": {"vault": {
        "address": listener.url, "authType": "kubernetes", "k8sRole": "r",
        "k8sTokenPath": str(outside)}}})
    allow_all = ",".join(f"secrets.vault.{k}" for k in
                         ("address", "authType", "k8sRole", "k8sTokenPath"))
    proc = kiln("generate", str(app), tmp_path, {"KILN_ALLOW_APP_SETTINGS": allow_all})
    assert_clean_failure(proc, "secrets.vault.k8sTokenPath",
                         "never taken from the repository level")
    assert age_secret not in proc.stderr
    assert_untouched(listener, age_secret)


def test_kiln_yaml_address_allowed_by_the_operator_reaches_openbao(
        tmp_path: Path, openbao: OpenBao, seeded: str) -> None:
    app = app_with(tmp_path / "repo", {"secrets": {"vault": {"address": openbao.addr}}})
    env = {"VAULT_TOKEN": openbao.token, "AVP_AUTH_TYPE": "token"}
    refused = kiln("generate", str(app), tmp_path, env)
    assert_clean_failure(refused, "secrets.vault.address", "kiln.yaml")
    allow = tmp_path / "allow.txt"
    allow.write_text("# repositories here may name our Vault\nsecrets.vault.address\n")
    proc = kiln("generate", str(app), tmp_path, {**env, "KILN_ALLOW_APP_SETTINGS_FILE": str(allow)})
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"]["pw"] == seeded


# -- application level: ARGOCD_ENV_* --------------------------------------------------------------

def test_argocd_env_vault_addr_gets_nothing(tmp_path: Path, listener: Listener,
                                            openbao: OpenBao) -> None:
    env = {"AVP_TYPE": "vault", "AVP_AUTH_TYPE": "token", "VAULT_ADDR": openbao.addr,
           "VAULT_TOKEN": openbao.token, "ARGOCD_ENV_VAULT_ADDR": listener.url}
    app = app_with(tmp_path / "repo", None)
    for target in (str(app), "-"):
        proc = kiln("generate", target, tmp_path, env, stdin=PLACEHOLDER_SECRET)
        assert_clean_failure(proc, "ARGOCD_ENV_VAULT_ADDR", "application level",
                             "KILN_ALLOW_APP_SETTINGS=VAULT_ADDR")
        assert openbao.token not in proc.stderr
    assert_untouched(listener, openbao.token)


def test_argocd_env_auth_and_token_path_are_refused(tmp_path: Path, listener: Listener,
                                                    openbao: OpenBao) -> None:
    env = {"AVP_TYPE": "vault", "VAULT_ADDR": listener.url, "AVP_AUTH_TYPE": "token",
           "VAULT_TOKEN": openbao.token}
    for var, value in (("AVP_AUTH_TYPE", "kubernetes"), ("AVP_K8S_TOKEN_PATH", "/etc/hostname"),
                       ("VAULT_SKIP_VERIFY", "true"), ("AVP_PATH_VALIDATION", ".*")):
        proc = kiln("generate", "-", tmp_path, {**env, f"ARGOCD_ENV_{var}": value},
                    stdin=PLACEHOLDER_SECRET)
        assert_clean_failure(proc, f"ARGOCD_ENV_{var}: {var} ", "application level")
    assert_untouched(listener, openbao.token)


def test_allowlisted_argocd_env_vault_addr_works_against_openbao(
        tmp_path: Path, listener: Listener, openbao: OpenBao, seeded: str) -> None:
    # AVP's setup: the Application names the address in plugin.env. The operator's own
    # VAULT_ADDR points at the listener, so a success proves the ARGOCD_ENV_ form won.
    env = {"AVP_TYPE": "vault", "AVP_AUTH_TYPE": "token", "VAULT_TOKEN": openbao.token,
           "VAULT_ADDR": listener.url, "ARGOCD_ENV_VAULT_ADDR": openbao.addr,
           "KILN_ALLOW_APP_SETTINGS": "VAULT_ADDR"}
    app = app_with(tmp_path / "repo", None)
    proc = kiln("generate", str(app), tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"]["pw"] == seeded
    assert_untouched(listener, openbao.token)


def test_empty_argocd_env_avp_type_is_empty_for_every_resolver(
        tmp_path: Path, openbao: OpenBao, seeded: str) -> None:
    # ARGOCD_ENV_AVP_TYPE="" overrides AVP_TYPE (AVP's rule): placeholders go to Vault only,
    # not to both Vault and AWS.
    env = {"AVP_TYPE": "awssecretsmanager", "ARGOCD_ENV_AVP_TYPE": "", "AVP_AUTH_TYPE": "token",
           "VAULT_ADDR": openbao.addr, "VAULT_TOKEN": openbao.token}
    proc = kiln("generate", "-", tmp_path, env, stdin=PLACEHOLDER_SECRET)
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"]["pw"] == seeded


# -- SOPS ----------------------------------------------------------------------------------------

def test_sops_age_key_file_from_kiln_yaml_is_refused(tmp_path: Path) -> None:
    key = new_age_key()
    key_file = tmp_path / "operator" / "keys.txt"
    key_file.parent.mkdir()
    key_file.write_text(key.identity + "\n")
    plain_value = "v-" + pysecrets.token_hex(6)
    plain = (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n"
             f"  pw: {plain_value}\n").encode()
    enc = sops_encrypt(plain, "yaml", tmp_path, "--age", key.recipient,
                       "--encrypted-regex", "^(data|stringData)$")
    app = tmp_path / "repo" / "app"
    app.mkdir(parents=True)
    (app / "s.yaml").write_bytes(enc)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "no-config"),
           "KILN_ALLOW_APP_SETTINGS": "secrets.sops.ageKeyFile"}
    (app / "kiln.yaml").write_text(f"secrets:\n  sops:\n    ageKeyFile: {key_file}\n")
    proc = kiln("render", str(app), tmp_path, env)
    assert_clean_failure(proc, "secrets.sops.ageKeyFile", "kiln.yaml",
                         "never taken from the repository level")
    assert plain_value not in proc.stderr and key.identity not in proc.stderr
    # The operator names the same file with a flag: it decrypts.
    (app / "kiln.yaml").unlink()
    proc = kiln("render", str(app), tmp_path, env, "-O", f"secrets.sops.ageKeyFile={key_file}")
    assert proc.returncode == 0, proc.stderr
    assert docs(proc.stdout)[0]["stringData"]["pw"] == plain_value


def test_sops_vault_transit_key_naming_another_server_gets_nothing(
        tmp_path: Path, listener: Listener, openbao: OpenBao) -> None:
    # A committed SOPS file names its hc_vault key's server; sops would send VAULT_TOKEN there.
    env = {"VAULT_ADDR": openbao.addr, "VAULT_TOKEN": openbao.token,
           "BAO_ADDR": openbao.addr, "BAO_TOKEN": openbao.token, "SOPS_DISABLE_VERSION_CHECK": "1"}
    with contextlib.suppress(OSError):  # enabled already by an earlier test of this session
        openbao.api("POST", "sys/mounts/transit", {"type": "transit"})
    openbao.api("POST", "transit/keys/trust", {})
    plain = b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  pw: v-transit\n"
    enc = sops_encrypt(plain, "yaml", tmp_path, "--hc-vault-transit",
                       f"{openbao.addr}/v1/transit/keys/trust", "--encrypted-regex",
                       "^stringData$", env={**os.environ, **env})
    app = tmp_path / "repo" / "app"
    app.mkdir(parents=True)
    (app / "s.yaml").write_bytes(enc)
    ok = kiln("render", str(app), tmp_path, env)
    assert ok.returncode == 0, ok.stderr
    assert docs(ok.stdout)[0]["stringData"]["pw"] == "v-transit"
    (app / "s.yaml").write_bytes(enc.replace(openbao.addr.encode(), listener.url.encode()))
    proc = kiln("render", str(app), tmp_path / "other", env)
    assert_clean_failure(proc, "Secret/s", "sops.hc_vault.vault_address", "repository level")
    assert openbao.token not in proc.stderr
    assert_untouched(listener, openbao.token)


# -- External Secrets: a SecretStore in the repository ------------------------------------------

def test_secret_store_naming_another_vault_gets_nothing(tmp_path: Path, listener: Listener,
                                                        openbao: OpenBao, seeded: str) -> None:
    def store(server: str) -> dict[str, Any]:
        return {"apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
                "metadata": {"name": "vault", "namespace": "prod"},
                "spec": {"provider": {"vault": {"server": server, "path": "secret",
                                                "version": "v2"}}}}

    es = {"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
          "metadata": {"name": "db", "namespace": "prod"},
          "spec": {"secretStoreRef": {"name": "vault"}, "target": {"name": "db"},
                   "data": [{"secretKey": "pw", "remoteRef": {"key": "trust",
                                                              "property": "pw"}}]}}
    env = {"VAULT_TOKEN": openbao.token, "VAULT_ADDR": openbao.addr}
    app = app_with(tmp_path / "repo", None, yaml.safe_dump_all([store(listener.url), es]))
    proc = kiln("render", str(app), tmp_path, env, "--external-secrets", "materialize")
    assert_clean_failure(proc, "SecretStore/prod/vault", "spec.provider.vault.server",
                         "repository level")
    assert openbao.token not in proc.stderr
    assert_untouched(listener, openbao.token)
    # The operator's own server: materialised from OpenBao.
    (app / "secret.yaml").write_text(yaml.safe_dump_all([store(openbao.addr), es]))
    proc = kiln("render", str(app), tmp_path, env, "--external-secrets", "materialize")
    assert proc.returncode == 0, proc.stderr
    (secret,) = docs(proc.stdout)
    got = secret.get("stringData", {}).get("pw") or base64.b64decode(secret["data"]["pw"]).decode()
    assert got == seeded


# -- Helm repository credentials ------------------------------------------------------------------

def test_kiln_yaml_helm_password_from_the_environment_gets_nothing(
        tmp_path: Path, listener: Listener) -> None:
    token = "op-" + pysecrets.token_hex(8)
    app = app_with(tmp_path / "repo", {"helm": {
        "repoURL": listener.url, "chart": "x", "version": "1.0.0", "username": "u",
        "password": "$VAULT_TOKEN"}}, manifest="")
    (app / "secret.yaml").unlink()
    proc = kiln("render", str(app), tmp_path, {"VAULT_TOKEN": token})
    assert_clean_failure(proc, "helm.username", "kiln.yaml", "repository level")
    assert_untouched(listener, token)


def test_operator_helm_credentials_never_go_to_a_kiln_yaml_repository(
        tmp_path: Path, listener: Listener) -> None:
    password = "op-" + pysecrets.token_hex(8)
    app = app_with(tmp_path / "repo", {"helm": {
        "repoURL": listener.url, "chart": "x", "version": "1.0.0"}})
    (app / "secret.yaml").unlink()
    env = {"KILN_HELM_USERNAME": "operator", "KILN_HELM_PASSWORD": password}
    proc = kiln("render", str(app), tmp_path, env)
    assert_clean_failure(proc, "helm.repoURL", "kiln.yaml", "repository level",
                         "KILN_ALLOW_APP_SETTINGS=helm.repoURL")
    assert password not in proc.stderr
    assert_untouched(listener, password)


# -- one source root for render and generate ------------------------------------------------------

def test_generate_and_render_share_the_git_work_tree_as_source_root(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    chart = repo / "apps" / "web"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n"
        "  color: {{ .Values.color | quote }}\n")
    (repo / "envs").mkdir()
    color = "c-" + pysecrets.token_hex(4)
    (repo / "envs" / "prod.yaml").write_text(f"color: {color}\n")
    subprocess.run([tool("git"), "init", "-q", str(repo)], check=True)
    args = ("-f", "../../envs/prod.yaml")
    rendered = kiln("render", str(chart), tmp_path, {}, *args)
    generated = kiln("generate", str(chart), tmp_path, {}, *args)
    assert rendered.returncode == 0, rendered.stderr
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout == rendered.stdout
    assert docs(generated.stdout)[0]["data"]["color"] == color
    # Outside the work tree stays refused, for both.
    (tmp_path / "outside.yaml").write_text("color: x\n")
    for command in ("render", "generate"):
        proc = kiln(command, str(chart), tmp_path, {}, "-f", "../../../outside.yaml")
        assert_clean_failure(proc, "outside.yaml")
