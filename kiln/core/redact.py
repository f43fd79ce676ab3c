"""Keep secret values and credential-shaped text out of logs, error messages and tracebacks.

Every value a resolver produces is registered here; :meth:`Redactor.redact` replaces each (and
its base64 forms) with ``<redacted>``, then masks whatever *looks like* a credential even though
nobody registered it (:func:`mask_credentials`): the password of a URL, an ``Authorization``
header, ``password=…`` forms, cloud and Vault token shapes, private keys. A logging filter
applies it to every record, and the CLI applies it to error text and ``--debug`` tracebacks.
Argo CD caches a plugin's error text in Redis and shows it in its UI, so error text is treated
as published.
"""

from __future__ import annotations

import base64
import functools
import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import re

REDACTED = "<redacted>"
MASK = "***"
MIN_LENGTH = 3
"""Shorter values are not redacted: replacing every 'a' in a log would hide everything else."""

_SECRET_NAMES = (
    r"password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|secret[_-]?key|credentials?|auth[_-]?key|session[_-]?key"
)
_NAME_CHARS = r"A-Za-z0-9_.-"
_VALUE = r"(?!(?-i:<path:[^\s<>]+>))[^\s\"'&;]+"
"""A value worth masking: anything but a whole AVP path placeholder (``<path:…>``, a
reference, not a value), matched case-sensitively whatever the rule's own flags."""
_AUTH_SCHEME = ("bearer", "basic", "token", "negotiate")


_Rule = tuple[tuple[str, ...], "re.Pattern[str]", "str | Callable[[re.Match[str]], str]"]


def _mask_authorization(match: re.Match[str]) -> str:
    """``Authorization: Bearer ***`` keeping the rest of the line; other schemes lose it all."""
    value = match.group(2)
    scheme, _, rest = value.partition(" ")
    if scheme.lower() in _AUTH_SCHEME and rest.strip():
        tail = rest.lstrip().partition(" ")[2]
        return f"{match.group(1)}{scheme} {MASK}" + (f" {tail}" if tail else "")
    return match.group(1) + MASK


@functools.cache
def _rules() -> tuple[_Rule, ...]:
    """The masking rules, compiled once on first use (a cache hit that logs nothing pays none).

    Each is (triggers, pattern, replacement): a rule runs only on text whose lower-cased form
    contains one of its triggers (none: always), so ordinary text costs a few substring
    searches. Order matters: private keys and URLs first (their text may hold anything), then
    headers and ``name=value`` forms, then bare token shapes.
    """
    import re

    pem = ("private key",)
    named = ("pass", "secret", "token", "key", "credential")
    pem_block = r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY((?: BLOCK)?)-----"
    return (
        # A PEM private key: everything up to its END line (or the end of the text); and the
        # tail of one whose BEGIN line was cut off (a tool's stderr is kept from its end).
        (pem, re.compile(pem_block + r".*?(?:-----END \1PRIVATE KEY\2-----|\Z)", re.S),
         r"-----BEGIN \1PRIVATE KEY\2-----" + MASK + r"-----END \1PRIVATE KEY\2-----"),
        (pem, re.compile(r"(?<![A-Za-z0-9+/=\s])[A-Za-z0-9+/=\s]{16,}"
                         r"(-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)"),
         MASK + r"\1"),
        # URL user info: scheme://user:password@host -> scheme://***@host (up to the last '@'
        # before the path, so a password holding an unencoded '@' is covered too).
        (("@",), re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*://)"
                            r"[^\s/?#@]*(?:@[^\s/?#@]*)*@"),
         r"\1" + MASK + "@"),
        # Authorization: Bearer|Basic|Token <one token>; any other scheme: the rest of the line.
        (("authorization",),
         re.compile(r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)([^\n\"']*)"),
         _mask_authorization),
        # name=value, "name": "value", X-Header-Name: value, --name value, for names ending in
        # password, token, secret, key... A plain ``name: value`` is left alone: it is how
        # kiln names a field in its own messages (``stringData.password: <path:…>: not found``).
        (named, re.compile(rf"(?i)(?<![{_NAME_CHARS}])([{_NAME_CHARS}]*(?:{_SECRET_NAMES})"
                           r"\s*=\s*[\"']?)" + _VALUE),
         r"\1" + MASK),
        (named, re.compile(rf"(?i)([\"'][{_NAME_CHARS}]*(?:{_SECRET_NAMES})[\"']\s*:\s*[\"']?)"
                           + _VALUE),
         r"\1" + MASK),
        (named, re.compile(rf"(?<![{_NAME_CHARS}])((?:[Xx]-|[A-Z][A-Za-z0-9]*-)"
                           rf"(?:[A-Za-z0-9]+-)*(?i:{_SECRET_NAMES})\s*:\s*)" + _VALUE),
         r"\1" + MASK),
        (named, re.compile(rf"(?i)(?<![{_NAME_CHARS}])(--?[{_NAME_CHARS}]*(?:{_SECRET_NAMES}) +)"
                           + _VALUE),
         r"\1" + MASK),
        # Bare shapes: AWS access key ids, Vault tokens, age identities, JWTs, GitHub, GitLab,
        # Slack and Google API tokens.
        ((), re.compile(r"\b((?:AKIA|ASIA|AROA|AIDA|AGPA|ANPA|ANVA|AIPA|APKA|ABIA|ACCA)"
                        r")[A-Z0-9]{16}\b"), r"\1" + MASK),
        ((), re.compile(r"\b(hv[sbr]\.)[A-Za-z0-9_-]{20,}"), r"\1" + MASK),
        ((), re.compile(r"(?<![A-Za-z0-9.])([sbr]\.)[A-Za-z0-9]{24}\b"), r"\1" + MASK),
        ((), re.compile(r"\b(AGE-SECRET-KEY-1)[0-9A-Za-z]+"), r"\1" + MASK),
        ((), re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "eyJ" + MASK),
        ((), re.compile(r"\b(gh[pousr]_|github_pat_|glpat-|xox[abposr]-)[A-Za-z0-9_-]{10,}"),
         r"\1" + MASK),
        ((), re.compile(r"\b(AIza)[0-9A-Za-z_-]{35}\b"), r"\1" + MASK),
    )


def mask_credentials(text: str) -> str:
    """Return ``text`` with every credential-shaped part masked as ``***``.

    Promises: none of these survive: the password of any ``scheme://user:password@`` URL
    (percent-encoded, or raw without ``/?#`` or whitespace); the value of ``Authorization:``,
    of ``X-…-Token:``-style headers, and of ``name=value``, ``"name": "value"`` and
    ``--name value`` forms whose name ends in password, secret, token, credential(s) or an
    api/access/private/secret key (``aws_secret_access_key=…``); AWS access key ids, Vault
    tokens (``hvs.``, ``s.``), PEM private key blocks, age secret keys, JWTs, GitHub, GitLab,
    Slack and Google API tokens. The user of a URL is masked with its password
    (``scheme://***@host``, as the Redis cache URL always was). A plain ``name: value`` and
    kiln placeholders (``<path:…>``) are left alone; text without such shapes is unchanged.
    """
    if not text:
        return text
    lowered = text.lower()
    for triggers, pattern, replacement in _rules():
        if not triggers or any(t in lowered for t in triggers):
            text = pattern.sub(replacement, text)
    return text


def _forms(value: object) -> set[str]:
    """``value`` and its base64 forms (padded and not); empty for non-text values."""
    if isinstance(value, bytes):
        raw = value
        text = value.decode("utf-8", "replace")
    elif isinstance(value, str):
        text = value
        raw = value.encode()
    else:
        return set()
    forms = {text, base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    return forms | {f.rstrip("=") for f in forms}


class Redactor:
    """A set of secret strings, and a filter that hides them (and credential shapes) in text."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._ordered: list[str] = []
        self._lock = threading.Lock()

    def register(self, value: object) -> None:
        """Remember ``value`` (str or bytes) and its base64 forms as secret."""
        self.register_many((value,))

    def register_many(self, values: Iterable[object]) -> None:
        """Register several values at once (one re-sort for the batch, not one per value)."""
        forms: set[str] = set()
        for value in values:
            forms |= _forms(value)
        with self._lock:
            added = {f for f in forms if len(f) >= MIN_LENGTH} - self._values
            if added:
                self._values |= added
                self._ordered = sorted(self._values, key=len, reverse=True)

    def child(self) -> Redactor:
        """A new redactor that starts with this one's values; what it learns stays its own
        (one request of a server must not grow the server's set forever)."""
        child = Redactor()
        with self._lock:
            child._values = set(self._values)
            child._ordered = list(self._ordered)
        return child

    def __bool__(self) -> bool:
        """True once a value has been registered (credential shapes are masked regardless)."""
        return bool(self._values)

    def holds(self, text: str) -> bool:
        """True when ``text`` contains a registered value (or one of its base64 forms)."""
        with self._lock:
            values = list(self._ordered)
        return any(value in text for value in values)

    def redact(self, text: str) -> str:
        """Return ``text`` with every registered value replaced by ``<redacted>`` and every
        credential-shaped part masked (:func:`mask_credentials`)."""
        for value in self._ordered:
            if value in text:
                text = text.replace(value, REDACTED)
        return mask_credentials(text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message (and traceback) of every record."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place with its text redacted; always let it through."""
        message = record.getMessage()
        record.msg = self.redactor.redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redactor.redact(
                logging.Formatter().formatException(record.exc_info)
            )
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        return True
