"""Vault resolver configuration (AVP variables, precedence), URI paths, lazy hvac, and the
engine's collection of errors from several resolvers. No network: the resolvers in the engine
test are small in-memory stand-ins; real reads are in tests/integration/test_secrets_vault.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kiln.core import placeholders as ph
from kiln.core import secrets
from kiln.core.engine import Engine
from kiln.core.errors import ConfigError, SecretErrors, SecretNotFound
from kiln.core.hookspecs import hookimpl
from kiln.plugins.secrets_vault import vault_grammar
from kiln.plugins.secrets_vault.config import (
    VaultOptions,
    is_configured,
    load_settings,
    owns_placeholders,
)
from tests.helpers import REPO

BASE = {"VAULT_ADDR": "http://127.0.0.1:8200", "AVP_AUTH_TYPE": "token", "VAULT_TOKEN": "t"}


def test_argocd_env_wins_over_env_which_wins_over_kiln_yaml() -> None:
    opts = VaultOptions(address="http://file:1", kv_version="1", namespace="from-file")
    # The operator opts in to the application choosing the address (kiln.core.trust).
    env = {**BASE, "AVP_KV_VERSION": "2", "ARGOCD_ENV_AVP_KV_VERSION": "1",
           "ARGOCD_ENV_VAULT_ADDR": "http://argocd:2", "KILN_ALLOW_APP_SETTINGS": "VAULT_ADDR"}
    got = load_settings(env, opts)
    assert got.address == "http://argocd:2"
    assert got.kv_version == "1"
    assert got.namespace == "from-file"
    assert load_settings({"VAULT_TOKEN": "t"}, opts).address == "http://file:1"


def test_auth_types_and_their_required_variables() -> None:
    assert load_settings({**BASE, "AVP_AUTH_TYPE": "k8s", "AVP_K8S_ROLE": "r"}, None
                         ).auth_type == "kubernetes"
    cases = {
        "approle": "AVP_ROLE_ID and AVP_SECRET_ID",
        "userpass": "AVP_USERNAME and AVP_PASSWORD",
        "kubernetes": "AVP_K8S_ROLE",
        "github": "AVP_GITHUB_TOKEN",
    }
    for auth, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            load_settings({"VAULT_ADDR": "http://x:1", "AVP_AUTH_TYPE": auth}, None)
    with pytest.raises(ConfigError, match="unsupported AVP_AUTH_TYPE 'iam'"):
        load_settings({**BASE, "AVP_AUTH_TYPE": "iam"}, None)
    with pytest.raises(ConfigError, match="AVP_AUTH_TYPE not set"):
        load_settings({"VAULT_ADDR": "http://x:1"}, None)
    with pytest.raises(ConfigError, match="VAULT_ADDR"):
        load_settings({"VAULT_TOKEN": "t"}, None)
    with pytest.raises(ConfigError, match="AVP_KV_VERSION must be 1 or 2"):
        load_settings({**BASE, "AVP_KV_VERSION": "3"}, None)


def test_which_references_vault_owns() -> None:
    assert not is_configured({}, None)
    assert is_configured({"VAULT_ADDR": "http://x"}, None)
    assert is_configured({"AVP_TYPE": "vault"}, None)
    assert is_configured({}, VaultOptions())
    assert not is_configured({"AVP_TYPE": "awssecretsmanager"}, None)
    assert owns_placeholders({})
    assert not owns_placeholders({"AVP_TYPE": "gcpsecretmanager"})
    assert owns_placeholders({"AVP_TYPE": "x", "ARGOCD_ENV_AVP_TYPE": "vault"})


def test_uri_paths_follow_vals_and_annotations_pick_the_kv_version() -> None:
    grammar = vault_grammar(load_settings(BASE, None), True)
    # No AVP_KV_VERSION: the variant stays empty (the backend asks the mount).
    assert grammar.uri_read("secret/app", {"version": "3"}) == \
        secrets.ReadKey("secret/data/app", "3", "")
    assert grammar.uri_read("secret/data/app", {}) == secrets.ReadKey("secret/data/app", None, "")
    assert grammar.read_key("kv1/app", "4", {}) == secrets.ReadKey("kv1/app", "4", "")
    pinned = vault_grammar(load_settings({**BASE, "AVP_KV_VERSION": "2"}, None), True)
    assert pinned.uri_read("secret/app", {"version": "3"}) == \
        secrets.ReadKey("secret/data/app", "3", "2")
    assert grammar.uri_read("kv1/app", {"kv": "1", "version": "3"}) == \
        secrets.ReadKey("kv1/app", None, "1")
    assert grammar.read_key("kv1/app", "4", {ph.AVP_KV_VERSION: "1"}) == \
        secrets.ReadKey("kv1/app", None, "1")


def _cli_probe(tmp_path: Path, body: str) -> str:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "cm.yaml").write_text(body)
    script = textwrap.dedent(f"""
        import sys
        from kiln.core.engine import Engine
        e = Engine(cache_dir={str(tmp_path / 'c')!r}, env={{"VAULT_ADDR": "http://127.0.0.1:1",
                   "AVP_AUTH_TYPE": "token", "VAULT_TOKEN": "t"}})
        app = e.load_app({str(app)!r})
        for _ in range(2):
            e.render(app)
        print("hvac" in sys.modules, "requests" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_render_without_references_never_imports_hvac(tmp_path: Path) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '<not-a-ref>'}\n"
    assert _cli_probe(tmp_path, cm) == "False False"


class _Failing:
    """A resolver that owns every object and fails with one reference error."""

    order = 10
    options_type = None

    def __init__(self, name: str) -> None:
        self.name = name

    def wants(self, objects: Any, ctx: Any) -> bool:
        return True

    def resolve(self, objects: Any, ctx: Any) -> Any:
        raise SecretErrors([SecretNotFound(f"{self.name}: missing", source="Secret/x")])


class _TwoResolvers:
    @hookimpl
    def kiln_register_secret_resolvers(self, registry: Any) -> None:
        registry.add(_Failing("first"))
        registry.add(_Failing("second"))


def test_engine_collects_errors_from_every_resolver(tmp_path: Path) -> None:
    engine = Engine(cache_dir=tmp_path, env={}, plugins=[_TwoResolvers()], entry_points=False)
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}
    with pytest.raises(SecretErrors) as info:
        engine.resolve([obj])
    assert info.value.details() == ["Secret/x: first: missing", "Secret/x: second: missing"]
