"""The Vault (and OpenBao) backend: log in once, then one HTTP read per (path, version, KV).

hvac is imported here, lazily, only when a stream actually holds Vault references. Reads use
AVP's semantics: KV v2 paths carry ``/data/`` and honour a version, KV v1 paths ignore it.
Failures become typed errors: connection problems and 5xx are transient (retried by the core),
4xx (429 included) are final. No response body or secret value ever reaches a message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.core.errors import SecretBackendUnavailable, SecretError, SecretNotFound
from kiln.core.secrets import ReadKey, TransientBackendError

if TYPE_CHECKING:
    import hvac

    from kiln.core.redact import Redactor
    from kiln.plugins.secrets_vault.config import VaultSettings

log = logging.getLogger("kiln.secrets.vault")

DEFAULT_KV = "2"
"""argocd-vault-plugin's KV version when nothing says otherwise."""
LEASE_USE_FRACTION = 0.8
"""Share of a login token's lease a kept backend uses it for before logging in again."""
LOGIN_MOUNTS = {
    "approle": "auth/approle",
    "userpass": "auth/userpass",
    "kubernetes": "auth/kubernetes",
    "github": "auth/github",
}


class VaultBackend:
    """A :class:`kiln.core.secrets.Backend` over hvac; ``reads`` counts HTTP reads made."""

    name = "vault"

    def __init__(self, settings: VaultSettings, redactor: Redactor | None = None) -> None:
        self.settings = settings
        self.redactor = redactor
        self._lock = threading.Lock()
        self._mount_lock = threading.Lock()
        self._mounts: dict[str, str] = {}
        self._client: hvac.Client | None = None
        self._token_until: float | None = None

    # -- connection -----------------------------------------------------------------------------

    def _where(self) -> str:
        return f"Vault at {self.settings.address} (VAULT_ADDR)"

    def _translate(self, exc: Exception, doing: str) -> SecretError:
        """Map an hvac/requests exception to a kiln error (transient ones are retried)."""
        import hvac.exceptions as hx
        import requests

        if isinstance(exc, requests.exceptions.SSLError | requests.exceptions.InvalidURL):
            # Checked first: SSLError is a ConnectionError, but retrying cannot fix it.
            return SecretBackendUnavailable(f"cannot reach {self._where()} while {doing}: "
                                            f"{type(exc).__name__} (check VAULT_CACERT / "
                                            "VAULT_SKIP_VERIFY)")
        if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            reason = ("timed out" if isinstance(exc, requests.exceptions.Timeout)
                      else "connection refused or reset")
            return TransientBackendError(f"cannot reach {self._where()} while {doing}: "
                                         f"{reason}")
        if isinstance(exc, hx.InternalServerError | hx.VaultDown | hx.BadGateway):
            return TransientBackendError(f"{self._where()} failed while {doing}: "
                                         f"{type(exc).__name__}")
        if isinstance(exc, hx.Forbidden):
            return SecretError(f"permission denied while {doing}")
        if isinstance(exc, hx.Unauthorized):
            return SecretBackendUnavailable(f"{self._where()} refused the credentials while "
                                            f"{doing}")
        if isinstance(exc, hx.InvalidPath):
            return SecretNotFound(f"nothing found while {doing}")
        if isinstance(exc, hx.VaultError):
            errors = [e for e in (exc.errors or []) if isinstance(e, str)]
            detail = "; ".join(e.splitlines()[0][:200] for e in errors) or type(exc).__name__
            return SecretError(f"{doing}: Vault answered: {detail}")
        return SecretBackendUnavailable(f"{doing}: {type(exc).__name__}")

    def _new_client(self) -> hvac.Client:
        import hvac

        s = self.settings
        verify: bool | str = s.ca_cert or not s.skip_verify
        return hvac.Client(url=s.address, token=s.token or None, namespace=s.namespace or None,
                           verify=verify, timeout=max(1, round(s.timeout)))

    def prepare(self) -> None:
        """Import hvac (local work; the core runs it outside the time limits)."""
        import hvac  # noqa: F401

    def open(self) -> None:
        """Create the client and log in with the configured method (once per run)."""
        with self._lock:
            if self._client is not None:
                return
            client = self._new_client()
            if self.settings.skip_verify and not self.settings.ca_cert:
                import warnings

                from urllib3.exceptions import InsecureRequestWarning

                # One kiln warning instead of urllib3's warning on every request.
                warnings.filterwarnings("ignore", category=InsecureRequestWarning)
                log.warning("VAULT_SKIP_VERIFY is set: the certificate of %s is not verified",
                            self.settings.address)
            if self.settings.auth_type != "token":
                token = self._login(client)
                if self.redactor is not None:
                    self.redactor.register(token)
                client.token = token
            self._client = client

    def _login(self, client: hvac.Client) -> str:
        s = self.settings
        method = s.auth_type
        mount = (s.k8s_mount_path or s.mount_path) if method == "kubernetes" else s.mount_path
        mount = (mount or LOGIN_MOUNTS[method]).strip("/")
        url = f"/v1/{mount}/login"
        payload: dict[str, str]
        if method == "approle":
            payload = {"role_id": s.role_id, "secret_id": s.secret_id}
        elif method == "userpass":
            url = f"{url}/{s.username}"
            payload = {"password": s.password}
        elif method == "github":
            payload = {"token": s.github_token}
        else:
            payload = {"role": s.k8s_role, "jwt": self._service_account_token()}
        try:
            response = client.adapter.post(url, json=payload)
        except Exception as exc:  # noqa: BLE001 - translated into a typed error right here
            raise self._translate(exc, f"logging in with {method} at {mount}") from None
        auth = response.get("auth") if isinstance(response, Mapping) else None
        token = auth.get("client_token") if isinstance(auth, Mapping) else None
        if not isinstance(token, str) or not token:
            raise SecretBackendUnavailable(f"{method} login at {mount} returned no token")
        lease = auth.get("lease_duration") if isinstance(auth, Mapping) else None
        if isinstance(lease, int) and lease > 0:
            self._token_until = time.monotonic() + LEASE_USE_FRACTION * lease
        return token

    def usable(self) -> bool:
        """Whether a kept backend may serve another resolution: False once most of its login
        token's lease has passed (a server then logs in afresh instead of failing later)."""
        return self._token_until is None or time.monotonic() < self._token_until

    def _service_account_token(self) -> str:
        path = Path(self.settings.k8s_token_path)
        try:
            jwt = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretBackendUnavailable(
                f"cannot read the service-account token {path} (AVP_K8S_TOKEN_PATH): "
                f"{exc.strerror}") from None
        if self.redactor is not None:
            self.redactor.register(jwt)
        return jwt

    # -- KV version detection -------------------------------------------------------------------

    def kv_version(self, path: str) -> str:
        """The KV version of the mount holding ``path``, asked as the vault CLI does
        (``sys/internal/ui/mounts/<path>``) once per mount; AVP's default (2) when the server
        does not say (the token may not see the endpoint, or the mount is unknown).
        Connection failures raise the usual transient error."""
        with self._mount_lock:
            for known, known_kv in self._mounts.items():
                if (path + "/").startswith(known):
                    return known_kv
            assert self._client is not None
            try:
                response = self._client.adapter.get(f"/v1/sys/internal/ui/mounts/{path}")
            except Exception as exc:  # noqa: BLE001 - translated right here
                import hvac.exceptions as hx

                if isinstance(exc, hx.VaultError) and not isinstance(
                        exc, hx.InternalServerError | hx.VaultDown | hx.BadGateway
                        | hx.Unauthorized):
                    log.debug("%s: the mount of %s is not visible (%s): KV version %s "
                              "(argocd-vault-plugin's default)", self._where(), path,
                              type(exc).__name__, DEFAULT_KV)
                    self._mounts[path.rstrip("/") + "/"] = DEFAULT_KV
                    return DEFAULT_KV
                raise self._translate(exc, f"looking up the mount of {path}") from None
            data = response.get("data") if isinstance(response, Mapping) else None
            mount = data.get("path") if isinstance(data, Mapping) else None
            if not isinstance(data, Mapping) or not isinstance(mount, str) or not mount:
                self._mounts[path.rstrip("/") + "/"] = DEFAULT_KV
                return DEFAULT_KV
            options = data.get("options")
            version = options.get("version") if isinstance(options, Mapping) else None
            kv = "2" if str(version) == "2" else "1"
            self._mounts[mount if mount.endswith("/") else mount + "/"] = kv
            log.debug("%s: mount %s is KV v%s", self._where(), mount, kv)
            return kv

    # -- reads ----------------------------------------------------------------------------------

    def read(self, key: ReadKey) -> Mapping[str, Any]:
        """Read ``key.path`` once (with ``?version=`` on KV v2) and return its key/value map."""
        if self._client is None:
            self.open()
        assert self._client is not None
        kv = key.variant or self.settings.kv_version or self.kv_version(key.path)
        version = key.version if kv == "2" else None
        doing = f"reading {key.describe()}"
        params = {"version": version} if version else None
        try:
            response = self._client.adapter.get(f"/v1/{key.path}", params=params)
        except Exception as exc:  # noqa: BLE001 - translated into a typed error right here
            raise self._translate(exc, doing) from None
        if not isinstance(response, Mapping):
            raise SecretNotFound(f"no secret at {key.describe()}")
        data = response.get("data")
        if kv == "1":
            if not isinstance(data, Mapping):
                raise SecretNotFound(f"no secret at {key.describe()}")
            return data
        if not isinstance(data, Mapping) or "data" not in data:
            if not data:
                raise SecretNotFound(f"the path {key.path} is empty - is /data/ missing from "
                                     "this KV v2 path?")
            raise SecretNotFound(f"no KV v2 data at {key.path} - is this a KV v2 mount "
                                 "(AVP_KV_VERSION / avp.kubernetes.io/kv-version)?")
        inner = data.get("data")
        if not isinstance(inner, Mapping):
            raise SecretNotFound(f"version {version or 'latest'} of {key.path} is deleted or "
                                 "destroyed")
        return inner
