"""AWS Secrets Manager: ``ref+awssecrets://`` URIs and ``AVP_TYPE=awssecretsmanager`` placeholders.

One ``GetSecretValue`` per distinct (secret, version, stage, region), through the shared
pipeline of :mod:`kiln.core.secrets`. A JSON-object ``SecretString`` is addressed by key (vals'
``#/a/b`` walks nested values); without a key (``ref+awssecrets://NAME``) the whole string is
used; a ``SecretBinary`` is returned base64-encoded. boto3 is imported lazily, only when a
stream holds AWS references, and uses the standard credential chain; ``AWS_REGION`` (or an
ARN's region, or ``?region=``) picks the region and ``AWS_ENDPOINT_URL`` the endpoint.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kiln.core import placeholders, secrets
from kiln.core.errors import ConfigError, SecretBackendUnavailable, SecretError, SecretNotFound
from kiln.core.secrets import ReadKey, TransientBackendError
from kiln.plugins.external_secrets.cloud import CloudResolver, json_object_keys
from kiln.plugins.external_secrets.config import (
    BINARY,
    WHOLE,
    AwsOptions,
    ReadLimits,
    env_value,
    limits,
)

if TYPE_CHECKING:
    from kiln.core.context import SecretContext

log = logging.getLogger("kiln.secrets.aws")

AVP_TYPE = "awssecretsmanager"
SCHEME = "awssecrets"
STAGE_PREFIX = "stage="
TRANSIENT_CODES = frozenset({"InternalServiceError", "InternalFailure", "ServiceUnavailable",
                             "ThrottlingException", "Throttling", "RequestTimeout"})
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException"})
DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"})
CREDENTIAL_CODES = frozenset({"UnrecognizedClientException", "InvalidClientTokenId",
                              "InvalidSignatureException", "SignatureDoesNotMatch",
                              "ExpiredTokenException"})


@dataclass(frozen=True)
class AwsSettings:
    """Region (may be empty when every path is an ARN), endpoint override and read limits."""

    region: str
    endpoint_url: str
    limits: ReadLimits
    access_key_id: str = ""
    secret_access_key: str = ""
    session_token: str = ""
    profile: str = ""

    def credentials(self) -> list[str]:
        """The credential values set in the environment (registered with the redactor)."""
        return [v for v in (self.secret_access_key, self.session_token) if v]

    def session_args(self) -> dict[str, str]:
        """boto3 Session arguments: static keys / profile from kiln's environment; the rest
        of the standard chain (shared files, SSO, instance roles) is botocore's."""
        args: dict[str, str] = {}
        if self.access_key_id and self.secret_access_key:
            args["aws_access_key_id"] = self.access_key_id
            args["aws_secret_access_key"] = self.secret_access_key
            if self.session_token:
                args["aws_session_token"] = self.session_token
        elif self.profile:
            args["profile_name"] = self.profile
        return args


def load_settings(env: Mapping[str, str], opts: AwsOptions | None, *, timeout: float = 30.0,
                  concurrency: int = 8) -> AwsSettings:
    """Merge ``secrets.aws`` with ``AWS_REGION``/``AWS_DEFAULT_REGION``/``AWS_ENDPOINT_URL``
    (the environment wins, ``ARGOCD_ENV_`` forms first)."""
    o = opts or AwsOptions()
    region = env_value(env, "AWS_REGION") or env_value(env, "AWS_DEFAULT_REGION") or o.region
    endpoint = env_value(env, "AWS_ENDPOINT_URL_SECRETS_MANAGER") or env_value(
        env, "AWS_ENDPOINT_URL") or o.endpoint_url
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"AWS_ENDPOINT_URL must start with http:// or https://, got "
                          f"{endpoint!r}")
    return AwsSettings(region, endpoint, limits(o, timeout, concurrency),
                       access_key_id=env_value(env, "AWS_ACCESS_KEY_ID"),
                       secret_access_key=env_value(env, "AWS_SECRET_ACCESS_KEY"),
                       session_token=env_value(env, "AWS_SESSION_TOKEN"),
                       profile=env_value(env, "AWS_PROFILE"))


def region_of_arn(path: str) -> str:
    """The region of a Secrets Manager ARN ('' when ``path`` is a plain name)."""
    parts = path.split(":")
    if len(parts) >= 7 and parts[0] == "arn" and parts[2] == "secretsmanager":
        return parts[3]
    return ""


def variant(region: str = "", stage: str = "") -> str:
    """Encode the read's region override and version stage into ``ReadKey.variant``."""
    return f"{region}|{STAGE_PREFIX}{stage}" if (region or stage) else ""


def _unvariant(text: str) -> tuple[str, str]:
    if not text:
        return "", ""
    region, _, stage = text.partition("|")
    return region, stage.removeprefix(STAGE_PREFIX)


def aws_grammar(avp: bool, validation: re.Pattern[str] | None = None) -> placeholders.Grammar:
    """AVP placeholders (``<path:NAME#KEY#VERSION_ID>``) when ``avp``; always
    ``ref+awssecrets://NAME[?region=R&version_stage=S&version_id=I][#KEY]``."""

    def uri_read(path: str, query: Mapping[str, str]) -> ReadKey:
        return ReadKey(path, query.get("version_id") or None,
                       variant(query.get("region", ""), query.get("version_stage", "")))

    return placeholders.Grammar(avp=avp, schemes=frozenset({SCHEME}), path_validation=validation,
                           uri_read=uri_read,
                           whole_key=WHOLE)


def secret_mapping(name: str, string: str | None, binary: bytes | None) -> dict[str, Any]:
    """The mapping one secret is addressed through: its JSON keys (when it is a JSON object)
    and :data:`WHOLE` (the string, or the binary base64-encoded)."""
    if string is not None:
        whole = string
        text: str | None = string
    elif binary is not None:
        whole = base64.b64encode(binary).decode()
        try:
            text = binary.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    else:
        raise SecretNotFound(f"secret {name} has neither SecretString nor SecretBinary")
    out = json_object_keys(text)
    out[WHOLE] = whole
    if string is None:
        out[BINARY] = True
    return out


class AwsBackend:
    """A :class:`kiln.core.secrets.Backend` over boto3; ``calls`` counts GetSecretValue calls."""

    name = "aws-secretsmanager"

    def __init__(self, settings: AwsSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._session: Any = None

    def prepare(self) -> None:
        """Import boto3 and build the default region's client (local work, no network)."""
        self.open()
        if self.settings.region:
            self._client(self.settings.region)

    def open(self) -> None:
        """Create the boto3 session (the credential chain is consulted on the first call)."""
        with self._lock:
            self._ensure_session()

    def _ensure_session(self) -> None:
        if self._session is None:
            import boto3
            import botocore.exceptions as bx

            try:
                self._session = boto3.session.Session(**self.settings.session_args())
            except bx.ProfileNotFound:
                raise SecretBackendUnavailable(
                    f"AWS profile {self.settings.profile!r} (AWS_PROFILE) not found") from None

    def _client(self, region: str) -> Any:
        from botocore.config import Config

        with self._lock:
            client = self._clients.get(region)
            if client is None:
                self._ensure_session()
                lim = self.settings.limits
                config = Config(connect_timeout=lim.timeout, read_timeout=lim.timeout,
                                retries={"max_attempts": 1, "mode": "standard"},
                                max_pool_connections=max(1, lim.concurrency))
                client = self._session.client(
                    "secretsmanager", region_name=region,
                    endpoint_url=self.settings.endpoint_url or None, config=config)
                self._clients[region] = client
            return client

    def _translate(self, exc: Exception, key: ReadKey) -> SecretError:
        import botocore.exceptions as bx

        doing = f"reading {describe(key)}"
        if isinstance(exc, bx.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code.isdigit():  # an XML error body under a JSON protocol: find the code in it
                message = str(error.get("Message", ""))
                known = DENIED_CODES | CREDENTIAL_CODES | NOT_FOUND_CODES | TRANSIENT_CODES
                code = next((c for c in sorted(known) if f"<Code>{c}</Code>" in message),
                            "AccessDenied" if status == 403 else code)
            if code in NOT_FOUND_CODES:
                return SecretNotFound(f"no secret {describe(key)} in AWS Secrets Manager")
            if code in DENIED_CODES:
                return SecretError(f"permission denied while {doing}")
            if code in CREDENTIAL_CODES:
                return SecretBackendUnavailable(f"AWS refused the credentials while {doing} "
                                                f"({code})")
            if code in TRANSIENT_CODES or status >= 500:
                return TransientBackendError(f"AWS Secrets Manager failed while {doing}: "
                                             f"{code or status}")
            return SecretError(f"{doing}: AWS answered {code or status}")
        if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
            return SecretBackendUnavailable("no AWS credentials found (environment, shared "
                                            "config, or instance role)")
        if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError
                      | bx.ReadTimeoutError | bx.ConnectionClosedError):
            return TransientBackendError(f"cannot reach AWS Secrets Manager while {doing}: "
                                         f"{type(exc).__name__}")
        if isinstance(exc, bx.NoRegionError):
            return SecretBackendUnavailable("no AWS region: set AWS_REGION")
        return SecretBackendUnavailable(f"{doing}: {type(exc).__name__}")

    def read(self, key: ReadKey) -> Mapping[str, Any]:
        """One GetSecretValue for ``key``: its JSON keys plus the whole value."""
        region_override, stage = _unvariant(key.variant)
        region = region_override or region_of_arn(key.path) or self.settings.region
        if not region:
            raise SecretBackendUnavailable(f"no AWS region for {key.path}: set AWS_REGION")
        params: dict[str, str] = {"SecretId": key.path}
        if key.version:
            params["VersionId"] = key.version
        if stage:
            params["VersionStage"] = stage
        try:
            response = self._client(region).get_secret_value(**params)
        except Exception as exc:  # noqa: BLE001 - translated into a typed error right here
            raise self._translate(exc, key) from None
        return secret_mapping(key.path, response.get("SecretString"),
                              response.get("SecretBinary"))


def describe(key: ReadKey) -> str:
    """The read as shown in messages: name, version id and stage."""
    _, stage = _unvariant(key.variant)
    text = key.describe()
    return f"{text} (stage {stage})" if stage else text


class AwsResolver(CloudResolver[AwsOptions]):
    """Resolves ``ref+awssecrets://`` URIs, and AVP placeholders when
    ``AVP_TYPE=awssecretsmanager``."""

    name = "aws"
    avp_name = AVP_TYPE
    markers = ("<path:", "ref+awssecrets://", "avp.kubernetes.io/path", "kind: Secret")
    """Text whose absence proves there is no AWS reference (see the Vault resolver's)."""
    options_type = AwsOptions

    def grammar(self, avp: bool, validation: re.Pattern[str] | None = None) -> placeholders.Grammar:
        """See :func:`aws_grammar`."""
        return aws_grammar(avp, validation)

    def backend(self, ctx: SecretContext,
                opts: AwsOptions | None) -> tuple[secrets.Backend, ReadLimits]:
        """boto3 over ``secrets.aws`` and the AWS environment; static keys are redacted."""
        settings = load_settings(ctx.env, opts, timeout=ctx.timeout, concurrency=ctx.concurrency)
        ctx.redactor.register_many(settings.credentials())
        return ctx.reuse(("aws", settings), lambda: AwsBackend(settings)), settings.limits
