"""Where the Vault resolver's settings come from, in argocd-vault-plugin's precedence order.

Lowest first: the ``secrets.vault`` section of kiln.yaml, then the process environment
(``AVP_*``, ``VAULT_*``), then the same names prefixed ``ARGOCD_ENV_`` (what Argo CD hands a
config-management plugin; they win, as in AVP, even when empty). Nothing here talks to the
network.

Trust (:mod:`kiln.core.trust`): every setting that says where the token goes, how kiln logs in
or which file it reads as a credential is the operator's. From kiln.yaml (repository level) or
an ``ARGOCD_ENV_`` form (application level) it is refused unless the operator allows its name
(``KILN_ALLOW_APP_SETTINGS=VAULT_ADDR,secrets.vault.address``); the token and CA file paths are
never taken from kiln.yaml.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

import msgspec

from kiln.core.app import Options
from kiln.core.errors import ConfigError
from kiln.core.trust import Allowlist, Guard, env_lookup, env_setting, parse_bool

ROUTE, FILE, POLICY = Guard.ROUTE, Guard.FILE, Guard.POLICY
AUTH_TYPES = ("token", "approle", "userpass", "kubernetes", "k8s", "github")
DEFAULT_K8S_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class VaultOptions(Options, frozen=True):
    """The ``secrets.vault`` section of kiln.yaml (every key mirrors an AVP variable).

    Credentials (``token``, ``secretId``, ``password``, ``githubToken``) are accepted for
    parity with AVP's config file, but belong in the environment, not in git. ``guarded`` keys
    are the operator's (see the module docstring).
    """

    guarded = MappingProxyType({
        "address": ROUTE, "authType": ROUTE, "token": ROUTE, "roleId": ROUTE,
        "secretId": ROUTE, "username": ROUTE, "password": ROUTE, "k8sRole": ROUTE,
        "k8sMountPath": ROUTE, "k8sTokenPath": FILE, "mountPath": ROUTE,
        "githubToken": ROUTE, "pathValidation": POLICY, "namespace": ROUTE,
        "skipVerify": ROUTE, "caCert": FILE,
    })

    address: str = ""
    auth_type: str = ""
    token: str = ""
    role_id: str = ""
    secret_id: str = ""
    username: str = ""
    password: str = ""
    k8s_role: str = ""
    k8s_mount_path: str = ""
    k8s_token_path: str = ""
    mount_path: str = ""
    github_token: str = ""
    kv_version: str = ""
    path_validation: str = ""
    namespace: str = ""
    skip_verify: bool | None = None
    ca_cert: str = ""
    timeout: float | None = None
    concurrency: int | None = None
    retries: int | None = None


# (settings field, environment variable)
ENV_NAMES: tuple[tuple[str, str], ...] = (
    ("address", "VAULT_ADDR"),
    ("auth_type", "AVP_AUTH_TYPE"),
    ("token", "VAULT_TOKEN"),
    ("role_id", "AVP_ROLE_ID"),
    ("secret_id", "AVP_SECRET_ID"),
    ("username", "AVP_USERNAME"),
    ("password", "AVP_PASSWORD"),
    ("k8s_role", "AVP_K8S_ROLE"),
    ("k8s_mount_path", "AVP_K8S_MOUNT_PATH"),
    ("k8s_token_path", "AVP_K8S_TOKEN_PATH"),
    ("mount_path", "AVP_MOUNT_PATH"),
    ("github_token", "AVP_GITHUB_TOKEN"),
    ("kv_version", "AVP_KV_VERSION"),
    ("path_validation", "AVP_PATH_VALIDATION"),
    ("namespace", "VAULT_NAMESPACE"),
    ("skip_verify", "VAULT_SKIP_VERIFY"),
    ("ca_cert", "VAULT_CACERT"),
)
SECRET_FIELDS = ("token", "secret_id", "password", "github_token")
GUARDED_ENV: Mapping[str, Guard] = MappingProxyType({
    "VAULT_ADDR": ROUTE, "AVP_AUTH_TYPE": ROUTE, "VAULT_TOKEN": ROUTE, "AVP_ROLE_ID": ROUTE,
    "AVP_SECRET_ID": ROUTE, "AVP_USERNAME": ROUTE, "AVP_PASSWORD": ROUTE,
    "AVP_K8S_ROLE": ROUTE, "AVP_K8S_MOUNT_PATH": ROUTE, "AVP_K8S_TOKEN_PATH": FILE,
    "AVP_MOUNT_PATH": ROUTE, "AVP_GITHUB_TOKEN": ROUTE, "AVP_PATH_VALIDATION": POLICY,
    "VAULT_NAMESPACE": ROUTE, "VAULT_SKIP_VERIFY": ROUTE, "VAULT_CACERT": FILE,
})
"""The variables only the operator sets (their ``ARGOCD_ENV_`` forms need its allowlist)."""


def avp_env(env: Mapping[str, str], name: str) -> str | None:
    """The value of AVP variable ``name``: ``ARGOCD_ENV_<name>`` wins over ``<name>`` (even
    when empty, as in AVP). No trust check: for deciding, never for connecting."""
    return env_lookup(env, name)[0]


class VaultSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The effective Vault configuration for one run.

    ``avp`` tells whether AVP placeholders are this resolver's (``AVP_TYPE=vault``, or no
    ``AVP_TYPE`` at all while Vault is configured).
    """

    address: str
    auth_type: str
    avp: bool
    token: str = ""
    role_id: str = ""
    secret_id: str = ""
    username: str = ""
    password: str = ""
    k8s_role: str = ""
    k8s_mount_path: str = ""
    k8s_token_path: str = ""
    mount_path: str = ""
    github_token: str = ""
    kv_version: str = ""
    """``1`` or ``2`` when AVP_KV_VERSION (or ``kvVersion``) sets it; ``""``: ask the mount."""
    path_validation: re.Pattern[str] | None = None
    namespace: str = ""
    skip_verify: bool = False
    ca_cert: str = ""
    timeout: float = 30.0
    concurrency: int = 8
    retries: int = 3

    def credentials(self) -> list[str]:
        """Every credential value set (registered with the redactor before use)."""
        return [v for v in (getattr(self, f) for f in SECRET_FIELDS) if v]


def is_configured(env: Mapping[str, str], options: VaultOptions | None) -> bool:
    """Cheap check: is Vault in use at all (AVP_TYPE=vault, VAULT_ADDR, or secrets.vault)?"""
    avp_type = avp_env(env, "AVP_TYPE")
    if avp_type:
        return avp_type == "vault" or bool(avp_env(env, "VAULT_ADDR")) or options is not None
    return bool(avp_env(env, "VAULT_ADDR")) or options is not None


def owns_placeholders(env: Mapping[str, str]) -> bool:
    """AVP placeholders are Vault's unless AVP_TYPE names another backend."""
    avp_type = avp_env(env, "AVP_TYPE")
    return not avp_type or avp_type == "vault"


def load_settings(env: Mapping[str, str], options: VaultOptions | None,
                  *, timeout: float = 30.0, concurrency: int = 8) -> VaultSettings:
    """Merge kiln.yaml, the environment and ``ARGOCD_ENV_*``; validate; raise ConfigError.

    A guarded variable's ``ARGOCD_ENV_`` form raises TrustError (before anything is contacted)
    unless the operator allows it; kiln.yaml's guarded keys were checked when the app loaded.
    """
    opts = options or VaultOptions()
    allow = Allowlist.from_env(env)
    values: dict[str, str] = {}
    for name, var in ENV_NAMES:
        from_file = getattr(opts, name)
        if isinstance(from_file, bool):
            from_file = "true" if from_file else "false"
        value = env_setting(env, var, GUARDED_ENV.get(var), allow)
        chosen = value if value is not None else (from_file or "")
        values[name] = chosen
    if not values["address"]:
        raise ConfigError("Vault address not set: set VAULT_ADDR (or secrets.vault.address)")
    if not re.match(r"^https?://", values["address"]):
        raise ConfigError(f"VAULT_ADDR must start with http:// or https://, got "
                          f"{values['address']!r}")
    auth = values["auth_type"] or ("token" if values["token"] else "")
    if not auth:
        raise ConfigError("AVP_AUTH_TYPE not set (one of: token, approle, userpass, "
                          "kubernetes, github)")
    if auth not in AUTH_TYPES:
        raise ConfigError(f"unsupported AVP_AUTH_TYPE {auth!r} (one of: token, approle, "
                          "userpass, kubernetes, github)")
    auth = "kubernetes" if auth == "k8s" else auth
    required = {
        "token": ("token",), "approle": ("role_id", "secret_id"),
        "userpass": ("username", "password"), "kubernetes": ("k8s_role",),
        "github": ("github_token",),
    }[auth]
    names = dict(ENV_NAMES)
    missing = [names[f] for f in required if not values[f]]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} must be set for {auth} authentication")
    kv = values["kv_version"]
    if kv not in ("", "1", "2"):
        raise ConfigError(f"AVP_KV_VERSION must be 1 or 2, got {kv!r}")
    pattern = None
    if values["path_validation"]:
        try:
            pattern = re.compile(values["path_validation"])
        except re.error as exc:
            raise ConfigError(f"AVP_PATH_VALIDATION is not a valid regular expression: "
                              f"{exc}") from None
    return VaultSettings(
        address=values["address"].rstrip("/"),
        auth_type=auth,
        avp=owns_placeholders(env),
        token=values["token"],
        role_id=values["role_id"],
        secret_id=values["secret_id"],
        username=values["username"],
        password=values["password"],
        k8s_role=values["k8s_role"],
        k8s_mount_path=values["k8s_mount_path"],
        k8s_token_path=values["k8s_token_path"] or DEFAULT_K8S_TOKEN_PATH,
        mount_path=values["mount_path"],
        github_token=values["github_token"],
        kv_version=kv,
        path_validation=pattern,
        namespace=values["namespace"],
        skip_verify=parse_bool(values["skip_verify"], name="VAULT_SKIP_VERIFY"),
        ca_cert=values["ca_cert"],
        timeout=opts.timeout if opts.timeout is not None else timeout,
        concurrency=opts.concurrency if opts.concurrency is not None else concurrency,
        retries=opts.retries if opts.retries is not None else 3,
    )
