"""Keep resolved secret values out of logs, error messages and tracebacks.

Every value a resolver produces is registered here; :meth:`Redactor.redact` replaces each (and
its base64 forms) with ``<redacted>``. A logging filter applies it to every record, and the CLI
applies it to error text and ``--debug`` tracebacks.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterable

REDACTED = "<redacted>"
MIN_LENGTH = 3
"""Shorter values are not redacted: replacing every 'a' in a log would hide everything else."""


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
    """A set of secret strings, and a filter that hides them in any text."""

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

    def __bool__(self) -> bool:
        return bool(self._values)

    def redact(self, text: str) -> str:
        """Return ``text`` with every registered value replaced by ``<redacted>``."""
        for value in self._ordered:
            if value in text:
                text = text.replace(value, REDACTED)
        return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message of every record it passes."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if self.redactor:
            message = record.getMessage()
            record.msg = self.redactor.redact(message)
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self.redactor.redact(
                    logging.Formatter().formatException(record.exc_info)
                )
                record.exc_info = None
        return True
