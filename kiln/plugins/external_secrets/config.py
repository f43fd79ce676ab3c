"""Options and environment for the cloud resolvers and the ExternalSecret modes.

``secrets.aws``, ``secrets.gcp`` and ``secrets.externalSecrets`` sections of kiln.yaml; the
environment (``AWS_REGION``, ``AWS_ENDPOINT_URL``, ``AVP_TYPE``, with argocd-vault-plugin's
``ARGOCD_ENV_`` forms winning, even when empty) is read here too. Nothing here talks to the
network.

Trust (:mod:`kiln.core.trust`): endpoint overrides and credentials (``secrets.aws.endpointUrl``,
``secrets.gcp.endpoint``/``insecure``, ``AWS_ENDPOINT_URL*``, ``AWS_ACCESS_KEY_ID``...,
``AWS_PROFILE``, ``KILN_GCP_SECRETMANAGER_ENDPOINT*``) are the operator's: from kiln.yaml or an
``ARGOCD_ENV_`` form they are refused unless the operator allows their names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from kiln.core.app import Options
from kiln.core.errors import ConfigError
from kiln.core.trust import Allowlist, Guard, env_text

WHOLE = "(whole secret)"
"""The key under which a backend stores a secret's raw value (``ref+...://NAME`` without #)."""

BINARY = "(binary)"
"""Set (True) in a backend's mapping when :data:`WHOLE` is a base64-encoded binary value."""

MODES = ("keep", "materialize", "convert")
STORE_KINDS = ("SecretStore", "ClusterSecretStore")


GUARDED_ENV: Mapping[str, Guard] = MappingProxyType({
    name: Guard.ROUTE for name in (
        "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "KILN_GCP_SECRETMANAGER_ENDPOINT", "KILN_GCP_SECRETMANAGER_ENDPOINT_INSECURE")
})
"""The variables only the operator sets (their ``ARGOCD_ENV_`` forms need its allowlist)."""


def env_value(env: Mapping[str, str], name: str, allow: Allowlist | None = None) -> str:
    """The value of ``name`` in ``env``: ``ARGOCD_ENV_<name>`` wins when present (even empty,
    as in argocd-vault-plugin); '' when unset. A guarded name's ``ARGOCD_ENV_`` form raises
    TrustError unless the operator allows it."""
    return env_text(env, name, GUARDED_ENV.get(name), allow)


def avp_type(env: Mapping[str, str]) -> str:
    """argocd-vault-plugin's ``AVP_TYPE`` ('' when unset)."""
    return env_value(env, "AVP_TYPE")


def path_validation(env: Mapping[str, str]) -> re.Pattern[str] | None:
    """argocd-vault-plugin's ``AVP_PATH_VALIDATION`` (every placeholder path must match)."""
    text = env_value(env, "AVP_PATH_VALIDATION")
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        raise ConfigError(f"AVP_PATH_VALIDATION is not a valid regular expression: "
                          f"{exc}") from None


class AwsOptions(Options, frozen=True):
    """The ``secrets.aws`` section: region and endpoint override (the operator's), read
    limits."""

    guarded = MappingProxyType({"endpointUrl": Guard.ROUTE})

    region: str = ""
    endpoint_url: str = ""
    timeout: float | None = None
    concurrency: int | None = None
    retries: int | None = None


class GcpOptions(Options, frozen=True):
    """The ``secrets.gcp`` section: an endpoint override (``insecure`` for a plaintext
    loopback test server with anonymous credentials; both the operator's), read limits."""

    guarded = MappingProxyType({"endpoint": Guard.ROUTE, "insecure": Guard.ROUTE})

    endpoint: str = ""
    insecure: bool = False
    timeout: float | None = None
    concurrency: int | None = None
    retries: int | None = None


class ExternalSecretsOptions(Options, frozen=True):
    """The ``secrets.externalSecrets`` section.

    ``mode``: keep (validate ExternalSecrets, pass them through), materialize (turn them into
    the Secrets ESO would create) or convert (turn Secrets holding references into
    ExternalSecrets). ``secret_store``: ``NAME[:KIND]`` the converted ExternalSecrets point at.
    ``stores``: SecretStore/ClusterSecretStore manifests used by materialize when the render
    does not contain them.
    """

    mode: str = ""
    secret_store: str = ""
    stores: list[dict[str, Any]] = []


@dataclass(frozen=True)
class ReadLimits:
    """Concurrency, per-attempt timeout (seconds) and retries for one backend."""

    concurrency: int = 8
    timeout: float = 30.0
    retries: int = 3


def limits(opts: AwsOptions | GcpOptions, timeout: float, concurrency: int) -> ReadLimits:
    """Merge a section's limits with the context's defaults."""
    return ReadLimits(
        concurrency=opts.concurrency if opts.concurrency is not None else concurrency,
        timeout=opts.timeout if opts.timeout is not None else timeout,
        retries=opts.retries if opts.retries is not None else 3,
    )


def external_secrets_mode(opts: ExternalSecretsOptions, env: Mapping[str, str]) -> str:
    """The effective mode: kiln.yaml / -O, else ``KILN_EXTERNAL_SECRETS``, else keep."""
    mode = opts.mode or env_value(env, "KILN_EXTERNAL_SECRETS") or "keep"
    if mode == "materialise":
        mode = "materialize"
    if mode not in MODES:
        raise ConfigError(f"secrets.externalSecrets.mode must be one of {', '.join(MODES)}, "
                          f"got {mode!r}")
    return mode


_STORE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def parse_store_ref(text: str) -> tuple[str, str]:
    """Parse ``NAME[:KIND]`` (KIND SecretStore by default) into (name, kind)."""
    name, _, kind = text.strip().partition(":")
    kind = kind or "SecretStore"
    if not name:
        raise ConfigError("convert mode needs a secret store: set "
                          "secrets.externalSecrets.secretStore (NAME[:KIND])")
    if not _STORE_NAME.match(name) or len(name) > 253:
        raise ConfigError(f"secret store name {name!r} is not a valid Kubernetes name")
    if kind not in STORE_KINDS:
        raise ConfigError(f"secret store kind must be SecretStore or ClusterSecretStore, "
                          f"got {kind!r}")
    return name, kind
