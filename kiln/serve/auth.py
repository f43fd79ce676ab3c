"""Who may call ``kiln serve``: a bearer token, mTLS, or nobody beyond this machine.

The operator chooses (never a request):

- a **bearer token** read from a file (``--token-file`` / ``KILN_SERVE_TOKEN_FILE``): every
  call of ``/v1/render`` and ``/metrics`` must carry ``Authorization: Bearer <token>``,
  compared in constant time (:func:`hmac.compare_digest`); a missing or wrong token is 401;
- **mTLS** (``--tls-cert``, ``--tls-key``, ``--tls-client-ca``): uvicorn serves TLS and
  requires a client certificate signed by the client CA (``ssl.CERT_REQUIRED``) on every
  connection, so an unauthenticated client never gets to send a request;
- neither: the server listens on a loopback address only; any other ``--listen`` is refused
  with one line at start. (TLS without ``--tls-client-ca`` encrypts but authenticates no one:
  it counts as neither.)

``/healthz``, ``/readyz`` and ``/openapi.json`` need no token (probes, and nothing secret),
but under mTLS every connection needs its certificate.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.core.errors import ConfigError

TOKEN_FILE_ENV = "KILN_SERVE_TOKEN_FILE"
MIN_TOKEN_CHARS = 16
MAX_TOKEN_BYTES = 4096
LISTEN_FLAG = "--listen"


def read_token(path: Path | str) -> bytes:
    """The bearer token in the file ``path``: its text without surrounding blanks (a final
    newline is no part of it). Raises ConfigError naming the file when it cannot be read,
    is longer than :data:`MAX_TOKEN_BYTES`, or the token is shorter than
    :data:`MIN_TOKEN_CHARS` or holds blanks (never showing the token)."""
    source = f"{path} (--token-file)"
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the token file: {exc.strerror}", source=source) from None
    if len(data) > MAX_TOKEN_BYTES:
        raise ConfigError(f"larger than {MAX_TOKEN_BYTES} bytes", source=source)
    token = data.strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"the token must be at least {MIN_TOKEN_CHARS} characters",
                          source=source)
    if any(c in token for c in b" \t\r\n") or not token.isascii():
        raise ConfigError("the token must be one word of printable ASCII", source=source)
    return token


@dataclass(frozen=True)
class BearerAuth:
    """The operator's token; :meth:`allows` checks a request's ``Authorization`` header."""

    token: bytes

    def allows(self, header: str | None) -> bool:
        """True when ``header`` is ``Bearer <the token>`` (scheme case-insensitive); the
        token compared in constant time."""
        if not header:
            return False
        scheme, _, given = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        try:
            offered = given.strip().encode("ascii")
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(offered, self.token)


@dataclass(frozen=True)
class TLSFiles:
    """The server's certificate and key, and the CA client certificates must be signed by
    (None: TLS without client authentication)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @classmethod
    def from_flags(cls, cert: str | None, key: str | None, client_ca: str | None
                   ) -> TLSFiles | None:
        """The TLS settings the flags give (None: no TLS). Raises ConfigError for a
        certificate without its key (or the reverse), a client CA without either, or a file
        that is not there."""
        if not cert and not key:
            if client_ca:
                raise ConfigError("needs --tls-cert and --tls-key", source="--tls-client-ca")
            return None
        if not cert or not key:
            raise ConfigError("give both --tls-cert and --tls-key",
                              source="--tls-cert" if not cert else "--tls-key")
        for flag, value in (("--tls-cert", cert), ("--tls-key", key),
                            ("--tls-client-ca", client_ca)):
            if value and not Path(value).is_file():
                raise ConfigError("no such file", source=f"{flag} {value}")
        return cls(Path(cert), Path(key), Path(client_ca) if client_ca else None)

    @property
    def mutual(self) -> bool:
        """Whether clients must present a certificate (mTLS)."""
        return self.client_ca is not None

    def uvicorn_settings(self) -> dict[str, Any]:
        """uvicorn's ssl keywords: the certificate and key, and with a client CA,
        ``ssl.CERT_REQUIRED`` against it."""
        import ssl

        settings: dict[str, Any] = {"ssl_certfile": str(self.cert), "ssl_keyfile": str(self.key)}
        if self.client_ca is not None:
            settings["ssl_ca_certs"] = str(self.client_ca)
            settings["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        return settings


def parse_listen(text: str) -> tuple[str, int]:
    """``--listen``'s ``HOST:PORT`` (``[IPv6]:PORT``; ``:PORT`` is every IPv4 interface) as
    ``(host, port)``. Raises ConfigError naming ``--listen``."""
    from kiln.server.metrics import parse_metrics_addr

    try:
        return parse_metrics_addr(text)
    except ConfigError as exc:
        raise ConfigError(exc.message, source=LISTEN_FLAG) from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: bytes | None, tls: TLSFiles | None) -> None:
    """Refuse to listen beyond loopback without authentication (a token or mTLS): raises
    ConfigError naming ``--listen``."""
    if token is None and (tls is None or not tls.mutual) and not is_loopback(host):
        raise ConfigError(f"{host} is not a loopback address: set --token-file "
                          f"({TOKEN_FILE_ENV}) or mTLS (--tls-cert, --tls-key, "
                          "--tls-client-ca) to listen beyond this machine",
                          source=LISTEN_FLAG)


__all__ = ["TOKEN_FILE_ENV", "BearerAuth", "TLSFiles", "check_exposure", "is_loopback",
           "parse_listen", "read_token"]
