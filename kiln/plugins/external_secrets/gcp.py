"""Google Secret Manager: ``ref+gcpsecrets://`` URIs and ``AVP_TYPE=gcpsecretmanager`` placeholders.

One ``AccessSecretVersion`` per distinct (project, secret, version), through the shared pipeline
of :mod:`kiln.core.secrets`. A secret is addressed as argocd-vault-plugin does (its own name as
the key gives the raw payload) and, when the payload is a JSON object, by its keys; without a
key (``ref+gcpsecrets://P/S``) the raw payload is used. A payload that is not UTF-8 comes back
base64-encoded. The client library is imported lazily and authenticates with Application
Default Credentials; ``secrets.gcp.endpoint`` (or ``KILN_GCP_SECRETMANAGER_ENDPOINT``) points it
elsewhere, with ``insecure: true`` for a plaintext loopback test server (anonymous credentials).
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
from kiln.core.trust import parse_bool
from kiln.plugins.external_secrets.cloud import CloudResolver, json_object_keys
from kiln.plugins.external_secrets.config import (
    BINARY,
    WHOLE,
    GcpOptions,
    ReadLimits,
    env_value,
    limits,
)

if TYPE_CHECKING:
    from kiln.core.context import SecretContext

log = logging.getLogger("kiln.secrets.gcp")

AVP_TYPE = "gcpsecretmanager"
SCHEME = "gcpsecrets"
ENDPOINT_ENV = "KILN_GCP_SECRETMANAGER_ENDPOINT"
RESOURCE_RE = re.compile(r"^projects/(?P<project>[^/]+)/secrets/(?P<secret>[^/]+)"
                         r"(?:/versions/(?P<version>[^/]+))?$")


@dataclass(frozen=True)
class GcpSettings:
    """Endpoint override ('' for Google's), plaintext flag and read limits."""

    endpoint: str
    insecure: bool
    limits: ReadLimits


def load_settings(env: Mapping[str, str], opts: GcpOptions | None, *, timeout: float = 30.0,
                  concurrency: int = 8) -> GcpSettings:
    """Merge ``secrets.gcp`` with ``KILN_GCP_SECRETMANAGER_ENDPOINT`` (environment wins)."""
    o = opts or GcpOptions()
    endpoint = env_value(env, ENDPOINT_ENV) or o.endpoint
    insecure = o.insecure or parse_bool(env_value(env, ENDPOINT_ENV + "_INSECURE"),
                                        name=ENDPOINT_ENV + "_INSECURE")
    if insecure and not endpoint:
        raise ConfigError("secrets.gcp.insecure needs an endpoint (secrets.gcp.endpoint)")
    if endpoint and "://" in endpoint:
        raise ConfigError(f"the Secret Manager endpoint is HOST:PORT, got {endpoint!r}")
    return GcpSettings(endpoint, insecure, limits(o, timeout, concurrency))


def resource_read(path: str, version: str | None) -> ReadKey:
    """``projects/P/secrets/S[/versions/V]`` plus an optional version -> the read (version
    ``latest`` by default). A path of another shape keeps it, and the read fails clearly."""
    m = RESOURCE_RE.match(path)
    if m is None:
        return ReadKey(path, version or "latest", "malformed")
    base = f"projects/{m.group('project')}/secrets/{m.group('secret')}"
    return ReadKey(base, version or m.group("version") or "latest")


def gcp_grammar(avp: bool, validation: re.Pattern[str] | None = None) -> placeholders.Grammar:
    """AVP placeholders (``<path:projects/P/secrets/S[/versions/V]#KEY[#V]>``) when ``avp``;
    always ``ref+gcpsecrets://PROJECT/SECRET[?version=N][#KEY]``."""

    def read_key(path: str, version: str | None, annotations: Mapping[str, str]) -> ReadKey:
        return resource_read(path, version)

    def uri_read(path: str, query: Mapping[str, str]) -> ReadKey:
        project, _, secret = path.partition("/")
        if not secret or "/" in secret:
            return ReadKey(path, query.get("version") or "latest", "malformed")
        return ReadKey(f"projects/{project}/secrets/{secret}", query.get("version") or "latest")

    return placeholders.Grammar(avp=avp, schemes=frozenset({SCHEME}), path_validation=validation,
                           read_key=read_key,
                           uri_read=uri_read, whole_key=WHOLE)


def payload_mapping(secret_id: str, data: bytes) -> dict[str, Any]:
    """The mapping a payload is addressed through: its JSON keys (JSON object payloads), the
    secret's own id and :data:`WHOLE` (the raw payload; base64 when not UTF-8)."""
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    whole = text if text is not None else base64.b64encode(data).decode()
    out = json_object_keys(text)
    out[secret_id] = whole
    out[WHOLE] = whole
    if text is None:
        out[BINARY] = True
    return out


class GcpBackend:
    """A :class:`kiln.core.secrets.Backend` over google-cloud-secret-manager; ``calls`` counts
    AccessSecretVersion calls."""

    name = "gcp-secretmanager"

    def __init__(self, settings: GcpSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._client: Any = None

    def prepare(self) -> None:
        """Create the client (no network: the channel connects on the first call)."""
        self.open()

    def open(self) -> None:
        """Create the client (ADC, or an insecure channel to the endpoint override)."""
        with self._lock:
            if self._client is None:
                self._client = self._new_client()

    def _new_client(self) -> Any:
        import google.auth.exceptions
        from google.cloud import secretmanager_v1

        s = self.settings
        try:
            if s.insecure:
                import grpc
                from google.auth.credentials import AnonymousCredentials
                from google.cloud.secretmanager_v1.services.secret_manager_service import (
                    transports,
                )

                channel = grpc.insecure_channel(s.endpoint)
                transport = transports.SecretManagerServiceGrpcTransport(
                    channel=channel,
                    credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                )
                return secretmanager_v1.SecretManagerServiceClient(transport=transport)
            options = {"api_endpoint": s.endpoint} if s.endpoint else None
            return secretmanager_v1.SecretManagerServiceClient(client_options=options)
        except google.auth.exceptions.DefaultCredentialsError:
            raise SecretBackendUnavailable(
                "no Google Application Default Credentials (set "
                "GOOGLE_APPLICATION_CREDENTIALS or run 'gcloud auth application-default "
                "login')") from None

    def _translate(self, exc: Exception, key: ReadKey) -> SecretError:
        from google.api_core import exceptions as gx

        doing = f"reading {key.path}/versions/{key.version}"
        if isinstance(exc, gx.NotFound):
            return SecretNotFound(f"no secret version {key.path}/versions/{key.version} in "
                                  "Google Secret Manager")
        if isinstance(exc, gx.PermissionDenied):
            return SecretError(f"permission denied while {doing}")
        if isinstance(exc, gx.Unauthenticated):
            return SecretBackendUnavailable(f"Google refused the credentials while {doing}")
        if isinstance(exc, gx.FailedPrecondition):
            return SecretNotFound(f"{doing}: the version is disabled or destroyed")
        if isinstance(exc, gx.ServiceUnavailable | gx.DeadlineExceeded | gx.InternalServerError
                      | gx.TooManyRequests | gx.RetryError):
            return TransientBackendError(f"Google Secret Manager failed while {doing}: "
                                         f"{type(exc).__name__}")
        if isinstance(exc, gx.GoogleAPICallError):
            return SecretError(f"{doing}: Google answered {type(exc).__name__}")
        return SecretBackendUnavailable(f"{doing}: {type(exc).__name__}")

    def read(self, key: ReadKey) -> Mapping[str, Any]:
        """One AccessSecretVersion for ``key``: the payload by secret id, JSON keys, whole."""
        if key.variant == "malformed":
            raise SecretError(f"{key.path!r} is not projects/PROJECT/secrets/SECRET")
        if self._client is None:
            self.open()
        name = f"{key.path}/versions/{key.version or 'latest'}"
        try:
            response = self._client.access_secret_version(
                request={"name": name}, retry=None, timeout=self.settings.limits.timeout)
        except Exception as exc:  # noqa: BLE001 - translated into a typed error right here
            raise self._translate(exc, key) from None
        secret_id = key.path.rsplit("/", 1)[-1]
        return payload_mapping(secret_id, bytes(response.payload.data))


class GcpResolver(CloudResolver[GcpOptions]):
    """Resolves ``ref+gcpsecrets://`` URIs, and AVP placeholders when
    ``AVP_TYPE=gcpsecretmanager``."""

    name = "gcp"
    avp_name = AVP_TYPE
    markers = ("<path:", "ref+gcpsecrets://", "avp.kubernetes.io/path", "kind: Secret")
    """Text whose absence proves there is no Google reference (see the Vault resolver's)."""
    options_type = GcpOptions

    def grammar(self, avp: bool, validation: re.Pattern[str] | None = None) -> placeholders.Grammar:
        """See :func:`gcp_grammar`."""
        return gcp_grammar(avp, validation)

    def backend(self, ctx: SecretContext,
                opts: GcpOptions | None) -> tuple[secrets.Backend, ReadLimits]:
        """The client library over ``secrets.gcp`` and the endpoint override."""
        settings = load_settings(ctx.env, opts, timeout=ctx.timeout, concurrency=ctx.concurrency)
        return ctx.reuse(("gcp", settings), lambda: GcpBackend(settings)), settings.limits
