"""Trust levels (kiln.core.trust): the precedence rule, the allowlist, the origin of every
setting, and the guarded keys each plugin declares. No network; the end-to-end proofs (nothing
reaches a listener) are in tests/integration/test_trust_levels.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.core import trust
from kiln.core.engine import Engine
from kiln.core.errors import ConfigError
from kiln.core.trust import Allowlist, Guard, Level, Origin, TrustError
from kiln.plugins.external_secrets import config as es_config
from kiln.plugins.external_secrets.stores import check_vault_store
from kiln.plugins.secrets_vault import config as vault_config

REPO = Origin(Level.REPOSITORY, "/r/app/kiln.yaml")
APPLICATION = Origin(Level.APPLICATION, "ARGOCD_ENV_VAULT_ADDR")
OPERATOR = Origin(Level.OPERATOR, "command line")

# -- precedence --------------------------------------------------------------------------------

env_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                   max_size=12)


@settings(max_examples=200, deadline=None)
@given(prefixed=st.none() | env_text, plain=st.none() | env_text)
def test_argocd_env_form_wins_whenever_present_even_empty(prefixed: str | None,
                                                          plain: str | None) -> None:
    env = {}
    if prefixed is not None:
        env["ARGOCD_ENV_X"] = prefixed
    if plain is not None:
        env["X"] = plain
    value, var = trust.env_lookup(env, "X")
    # AVP's rule: viper.Set(ARGOCD_ENV_ form) overrides the plain variable, empty or not.
    if prefixed is not None:
        assert (value, var) == (prefixed.strip(), "ARGOCD_ENV_X")
    elif plain is not None:
        assert (value, var) == (plain.strip(), "X")
    else:
        assert (value, var) == (None, None)


def test_empty_avp_type_means_the_same_to_every_resolver() -> None:
    # ARGOCD_ENV_AVP_TYPE="" overrides AVP_TYPE: Vault claims the placeholders, AWS does not.
    env = {"AVP_TYPE": "awssecretsmanager", "ARGOCD_ENV_AVP_TYPE": ""}
    assert vault_config.owns_placeholders(env) is True
    assert es_config.avp_type(env) == ""
    env = {"AVP_TYPE": "vault", "ARGOCD_ENV_AVP_TYPE": "awssecretsmanager"}
    assert vault_config.owns_placeholders(env) is False
    assert es_config.avp_type(env) == "awssecretsmanager"


# -- booleans ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", " true ", "True"])
def test_parse_bool_true(text: str) -> None:
    assert trust.parse_bool(text, name="V") is True


@pytest.mark.parametrize("text", ["0", "f", "F", "False", "FALSE", "false"])
def test_parse_bool_false(text: str) -> None:
    assert trust.parse_bool(text, name="V") is False


def test_parse_bool_refuses_words_go_refuses() -> None:
    for text in ("yes", "on", "no", "off", "2"):
        with pytest.raises(ConfigError, match="V must be true or false"):
            trust.parse_bool(text, name="V")


def test_parse_bool_empty_is_the_default() -> None:
    assert trust.parse_bool("  ", name="V", default=True) is True
    assert trust.parse_bool("", name="V") is False


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=10))
def test_parse_bool_answers_or_names_the_setting(text: str) -> None:
    # Go's strconv.ParseBool vocabulary, which Vault's client reads VAULT_SKIP_VERIFY with.
    words = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False,
             "": False}
    expected = words.get(text.strip().lower())
    if expected is None:
        with pytest.raises(ConfigError, match="VAULT_SKIP_VERIFY must be true or false"):
            trust.parse_bool(text, name="VAULT_SKIP_VERIFY")
    else:
        assert trust.parse_bool(text, name="VAULT_SKIP_VERIFY") is expected


# -- the allowlist -----------------------------------------------------------------------------

def test_allowlist_from_variable_and_file(tmp_path: Path) -> None:
    listed = tmp_path / "allow.txt"
    listed.write_text("# AVP compatibility\nVAULT_ADDR AVP_AUTH_TYPE\nsecrets.vault.address  "
                      "# kiln.yaml\n")
    allow = Allowlist.from_env({"KILN_ALLOW_APP_SETTINGS": "VAULT_TOKEN, AWS_PROFILE,,",
                                "KILN_ALLOW_APP_SETTINGS_FILE": str(listed)})
    assert allow.names == {"VAULT_TOKEN", "AWS_PROFILE", "VAULT_ADDR", "AVP_AUTH_TYPE",
                           "secrets.vault.address"}


name_st = st.text(st.sampled_from("ABCXYZ_.abcxyz019"), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(names=st.lists(name_st, max_size=6),
       seps=st.lists(st.sampled_from([",", " ", "\n", ", ", "\t", " # note\n"]), min_size=6,
                     max_size=6))
def test_allowlist_reads_back_every_name_whatever_the_separators(names: list[str],
                                                                 seps: list[str]) -> None:
    text = "".join(n + sep for n, sep in zip(names, seps, strict=False))
    assert Allowlist.from_env({"KILN_ALLOW_APP_SETTINGS": text}).names == set(names)


def test_the_application_cannot_allow_itself() -> None:
    allow = Allowlist.from_env({"ARGOCD_ENV_KILN_ALLOW_APP_SETTINGS": "VAULT_ADDR",
                                "ARGOCD_ENV_KILN_ALLOW_APP_SETTINGS_FILE": "/etc/passwd"})
    assert allow.names == frozenset()
    env = {"ARGOCD_ENV_VAULT_ADDR": "http://x:1",
           "ARGOCD_ENV_KILN_ALLOW_APP_SETTINGS": "VAULT_ADDR"}
    with pytest.raises(TrustError):
        trust.env_setting(env, "VAULT_ADDR", Guard.ROUTE)


def test_unreadable_allow_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(ConfigError) as info:
        Allowlist.from_env({"KILN_ALLOW_APP_SETTINGS_FILE": str(missing)})
    assert str(missing) in info.value.one_line()
    assert "KILN_ALLOW_APP_SETTINGS_FILE" in info.value.one_line()


# -- the check ---------------------------------------------------------------------------------

def test_operator_level_always_passes() -> None:
    trust.check("secrets.vault.k8sTokenPath", Guard.FILE, OPERATOR, Allowlist())


def test_route_below_operator_needs_the_allowlist() -> None:
    with pytest.raises(TrustError) as info:
        trust.check("secrets.vault.address", Guard.ROUTE, REPO, Allowlist())
    line = info.value.one_line()
    assert line.startswith("/r/app/kiln.yaml: secrets.vault.address ")
    assert "repository level" in line and "KILN_ALLOW_APP_SETTINGS=secrets.vault.address" in line
    trust.check("secrets.vault.address", Guard.ROUTE, REPO,
                Allowlist(frozenset({"secrets.vault.address"})))


def test_file_paths_never_come_from_the_repository() -> None:
    everything = Allowlist(frozenset({"secrets.vault.k8sTokenPath", "AVP_K8S_TOKEN_PATH"}))
    with pytest.raises(TrustError, match="never taken from the repository level"):
        trust.check("secrets.vault.k8sTokenPath", Guard.FILE, REPO, everything)
    # The application level may, once the operator names it.
    trust.check("AVP_K8S_TOKEN_PATH", Guard.FILE,
                Origin(Level.APPLICATION, "ARGOCD_ENV_AVP_K8S_TOKEN_PATH"), everything)
    with pytest.raises(TrustError, match="application level"):
        trust.check("AVP_K8S_TOKEN_PATH", Guard.FILE,
                    Origin(Level.APPLICATION, "ARGOCD_ENV_AVP_K8S_TOKEN_PATH"), Allowlist())


def test_guarded_env_form_is_refused_plain_form_is_not() -> None:
    assert trust.env_setting({"VAULT_ADDR": "http://op:1"}, "VAULT_ADDR", Guard.ROUTE) \
        == "http://op:1"
    with pytest.raises(TrustError) as info:
        trust.env_setting({"ARGOCD_ENV_VAULT_ADDR": ""}, "VAULT_ADDR", Guard.ROUTE)
    line = info.value.one_line()
    assert line.startswith("ARGOCD_ENV_VAULT_ADDR: VAULT_ADDR ") and "application" in line
    allowed = {"ARGOCD_ENV_VAULT_ADDR": " http://app:2 ", "KILN_ALLOW_APP_SETTINGS": "VAULT_ADDR"}
    assert trust.env_setting(allowed, "VAULT_ADDR", Guard.ROUTE) == "http://app:2"
    # Unguarded names take the ARGOCD_ENV_ form freely.
    assert trust.env_setting({"ARGOCD_ENV_AVP_KV_VERSION": "1"}, "AVP_KV_VERSION") == "1"


def test_vault_settings_refuse_every_guarded_argocd_env_form() -> None:
    base = {"VAULT_ADDR": "http://op:1", "VAULT_TOKEN": "t"}
    for var in vault_config.GUARDED_ENV:
        with pytest.raises(TrustError, match=f"^{var} "):
            vault_config.load_settings({**base, f"ARGOCD_ENV_{var}": "x"}, None)
    got = vault_config.load_settings({**base, "ARGOCD_ENV_AVP_KV_VERSION": "1"}, None)
    assert got.kv_version == "1" and got.address == "http://op:1"


def test_aws_settings_refuse_an_application_endpoint() -> None:
    from kiln.plugins.external_secrets.aws import load_settings

    with pytest.raises(TrustError, match="AWS_ENDPOINT_URL"):
        load_settings({"ARGOCD_ENV_AWS_ENDPOINT_URL": "http://evil:1"}, None)
    with pytest.raises(TrustError, match="AWS_PROFILE"):
        load_settings({"ARGOCD_ENV_AWS_PROFILE": "admin"}, None)
    # The region is what to read, not where credentials go.
    assert load_settings({"ARGOCD_ENV_AWS_REGION": "eu-west-3"}, None).region == "eu-west-3"


def test_vault_store_must_name_the_operators_server() -> None:
    store = Origin(Level.REPOSITORY, "SecretStore/prod/vault")
    spec = {"server": "http://op:8200/", "path": "secret"}
    check_vault_store(spec, store, {"VAULT_ADDR": "http://op:8200"})
    with pytest.raises(TrustError) as info:
        check_vault_store({**spec, "server": "http://evil:1"}, store,
                          {"VAULT_ADDR": "http://op:8200"})
    assert info.value.one_line().startswith("SecretStore/prod/vault: spec.provider.vault.server")
    check_vault_store({**spec, "server": "http://evil:1"}, store,
                      {"KILN_ALLOW_APP_SETTINGS": "spec.provider.vault.server"})
    with pytest.raises(TrustError, match=r"spec\.provider\.vault\.namespace"):
        check_vault_store({**spec, "namespace": "other"}, store,
                          {"VAULT_ADDR": "http://op:8200", "VAULT_NAMESPACE": "team"})
    check_vault_store({**spec, "server": "http://evil:1"}, OPERATOR, {})


# -- merging layers ----------------------------------------------------------------------------

leaf = st.integers(0, 3) | st.sampled_from(["a", "b"]) | st.lists(st.integers(0, 2), max_size=2)
tree = st.recursive(leaf, lambda inner: st.dictionaries(st.sampled_from("xyz"), inner,
                                                        max_size=3), max_leaves=6)
layer = st.dictionaries(st.sampled_from("xyz"), tree, max_size=3)


def _leaves(data: Any, prefix: str = "") -> dict[str, Any]:
    if not prefix and data == {}:
        return {}
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_leaves(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


@settings(max_examples=200, deadline=None)
@given(st.lists(layer, min_size=1, max_size=3))
def test_every_leaf_is_credited_to_the_layer_it_came_from(layers: list[dict[str, Any]]) -> None:
    origins_in = [Origin(Level(i + 1), f"layer{i}") for i in range(len(layers))]
    merged, origins = trust.merge_layers(zip(origins_in, layers, strict=True))
    leaves = _leaves(merged)
    assert set(origins) == set(leaves)
    for path, origin in origins.items():
        index = origins_in.index(origin)
        source = _leaves(layers[index])
        # The value really is that layer's, and no later layer set this path, a parent or a
        # child (an empty mapping merges into a section, setting nothing).
        assert source.get(path) == leaves[path]
        for later in layers[index + 1:]:
            assert all(not (p == path or path.startswith(p + ".") or p.startswith(path + "."))
                       for p, v in _leaves(later).items() if v != {})


def test_merge_keeps_sections_and_credits_each_key() -> None:
    merged, origins = trust.merge_layers([
        (REPO, {"secrets": {"vault": {"address": "http://r:1", "kvVersion": "2"}}}),
        (APPLICATION, {"secrets": {"vault": {}}, "namespace": None}),
        (OPERATOR, {"secrets": {"vault": {"address": "http://o:1"}}}),
    ])
    assert merged == {"secrets": {"vault": {"address": "http://o:1", "kvVersion": "2"}}}
    assert origins == {"secrets.vault.address": OPERATOR, "secrets.vault.kvVersion": REPO}


# -- declarations and loading ------------------------------------------------------------------

def test_every_declared_key_is_a_real_option(tmp_path: Path) -> None:
    engine = Engine(cache_dir=tmp_path / "c", entry_points=False, env={})
    declared = 0
    for registry in (engine.plugins.renderers, engine.plugins.resolvers):
        for name in registry:
            cls = registry.get(name).options_type
            if cls is None:
                continue
            encoded = {f.encode_name for f in msgspec.structs.fields(cls)}
            for key in trust.guarded_fields(cls):
                assert key in encoded, (name, key)
                declared += 1
    assert declared >= 20  # vault, sops, aws, gcp and helm declare theirs


def _engine(tmp_path: Path, **env: str) -> Engine:
    return Engine(cache_dir=tmp_path / "c", entry_points=False, env=env)


def _app(tmp_path: Path, kiln_yaml: str) -> Path:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "kiln.yaml").write_text(kiln_yaml)
    return app


@pytest.mark.parametrize(("kiln_yaml", "key"), [
    ("secrets:\n  vault:\n    address: http://evil:1\n", "secrets.vault.address"),
    ("secrets:\n  vault:\n    namespace: other\n", "secrets.vault.namespace"),
    ("secrets:\n  aws:\n    endpointUrl: http://evil:1\n", "secrets.aws.endpointUrl"),
    ("secrets:\n  gcp:\n    endpoint: evil:1\n", "secrets.gcp.endpoint"),
    ("helm:\n  password: $VAULT_TOKEN\n", "helm.password"),
])
def test_guarded_kiln_yaml_keys_are_refused_then_allowed(tmp_path: Path, kiln_yaml: str,
                                                         key: str) -> None:
    app = _app(tmp_path, kiln_yaml)
    with pytest.raises(TrustError) as info:
        _engine(tmp_path).load_app(app)
    line = info.value.one_line()
    assert line.startswith(f"{app / 'kiln.yaml'}: {key} ") and "repository level" in line
    loaded = _engine(tmp_path, KILN_ALLOW_APP_SETTINGS=key).load_app(app)
    assert loaded.origins[key].level is Level.REPOSITORY


@pytest.mark.parametrize(("kiln_yaml", "key"), [
    ("secrets:\n  vault:\n    k8sTokenPath: /etc/age/key.txt\n", "secrets.vault.k8sTokenPath"),
    ("secrets:\n  vault:\n    caCert: /etc/shadow\n", "secrets.vault.caCert"),
    ("secrets:\n  sops:\n    ageKeyFile: /home/op/keys.txt\n", "secrets.sops.ageKeyFile"),
    ("secrets:\n  sops:\n    keySecretFile: keys.yaml\n", "secrets.sops.keySecretFile"),
])
def test_credential_file_paths_never_come_from_kiln_yaml(tmp_path: Path, kiln_yaml: str,
                                                         key: str) -> None:
    app = _app(tmp_path, kiln_yaml)
    with pytest.raises(TrustError, match=f"{key} names a local file read as a credential: "
                                         "never taken from the repository level"):
        _engine(tmp_path, KILN_ALLOW_APP_SETTINGS=key).load_app(app)


def test_flags_are_operator_level_and_override_kiln_yaml(tmp_path: Path) -> None:
    app = _app(tmp_path, "secrets:\n  vault:\n    kvVersion: '1'\n")
    loaded = _engine(tmp_path).load_app(app, {"secrets": {"vault": {
        "address": "http://op:1", "k8sTokenPath": "/var/run/token"}}})
    assert loaded.origins["secrets.vault.address"].level is Level.OPERATOR
    assert loaded.origins["secrets.vault.kvVersion"].level is Level.REPOSITORY


def test_cmp_parameters_are_application_level(tmp_path: Path) -> None:
    app = _app(tmp_path, "")
    with pytest.raises(TrustError) as info:
        _engine(tmp_path).load_app(app, app_settings={"helm": {"passCredentials": True}})
    line = info.value.one_line()
    assert line.startswith("ARGOCD_APP_PARAMETERS: helm.passCredentials ")
    assert "application level" in line
    loaded = _engine(tmp_path, KILN_ALLOW_APP_SETTINGS="helm.passCredentials").load_app(
        app, app_settings={"helm": {"passCredentials": True}})
    assert loaded.origins["helm.passCredentials"].level is Level.APPLICATION
