"""Request ids on every log line, and no secret on any.

Each request gets an id (:func:`new_request_id`, or a caller's well-formed one through
:func:`accept_request_id`) bound to the current context for the duration of the request
(:func:`bind`). :class:`RequestLogFilter`, on a handler, gives every record a ``request_id``
attribute (``-`` outside a request) and passes its text (message, traceback, stack) through
the redactor: every value registered with :class:`kiln.core.redact.Redactor` becomes
``<redacted>`` and credential-shaped text is masked (:func:`kiln.core.redact.mask_credentials`).

The id lives in a :class:`contextvars.ContextVar`, so it follows the request's thread and
nothing else: a thread-pool worker sees the id of the request it is serving and none after
:func:`bind` ends. Work handed to another thread carries it only when submitted in a copy of
the context (``contextvars.copy_context().run``).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import secrets
from collections.abc import Callable, Iterator

from kiln.core.redact import Redactor, mask_credentials

FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
"""A log line format carrying the request id (use with :func:`install`)."""
NO_REQUEST = "-"
"""The ``request_id`` of a record logged outside any request."""
_ID_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("kiln_request_id",
                                                                      default=None)


def new_request_id() -> str:
    """A fresh random request id: 16 lower-case hex digits."""
    return secrets.token_hex(8)


def is_request_id(text: str) -> bool:
    """Whether ``text`` may be used as a request id: 1 to 64 of ``[A-Za-z0-9._-]``, starting
    with a letter or digit (nothing that could forge or split a log line)."""
    return _ID_SHAPE.fullmatch(text) is not None


def accept_request_id(offered: str | None) -> str:
    """``offered`` (a client's id, e.g. an ``X-Request-Id`` header) when it is well formed
    (:func:`is_request_id`), else a fresh id."""
    if offered is not None and is_request_id(offered):
        return offered
    return new_request_id()


def current_request_id() -> str | None:
    """The id bound in this context (None outside a request)."""
    return _current.get()


@contextlib.contextmanager
def bind(request_id: str | None = None) -> Iterator[str]:
    """Make ``request_id`` (default: a fresh one) the current id for the block, and yield it;
    the previous id (usually none) is back afterwards, whatever happens in the block.

    Raises ValueError for an id :func:`is_request_id` refuses (use :func:`accept_request_id`
    for ids that come from a client)."""
    if request_id is None:
        request_id = new_request_id()
    elif not is_request_id(request_id):
        raise ValueError("malformed request id")
    token = _current.set(request_id)
    try:
        yield request_id
    finally:
        _current.reset(token)


Redact = Callable[[str], str]
"""A function from text to the same text with secrets hidden."""


class RequestLogFilter(logging.Filter):
    """Adds ``request_id`` to every record and redacts its text; always lets it through.

    ``redactor``: a :class:`Redactor` (its registered values and credential shapes), any
    function from text to text, or None for credential shapes only (mask_credentials).
    Attach it to a *handler* (:func:`install` does): a logger's own filters do not see
    records that propagate from its children."""

    def __init__(self, redactor: Redactor | Redact | None = None) -> None:
        super().__init__()
        self.redactor = redactor

    def redact(self, text: str) -> str:
        """``text`` through the redactor."""
        redactor = self.redactor
        if redactor is None:
            return mask_credentials(text)
        if isinstance(redactor, Redactor):
            return redactor.redact(text)
        return redactor(text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Set ``record.request_id``; rewrite the record's message, traceback and stack with
        their text redacted (the arguments merged in first, so none escapes unredacted)."""
        if getattr(record, "_kiln_redacted_by", None) is self:
            return True  # seen through another handler already: redacted once is enough
        record.request_id = _current.get() or NO_REQUEST
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad log call must not fail the request it reports
            message = f"{record.msg} (the log arguments did not format)"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        record._kiln_redacted_by = self
        return True


def install(logger: logging.Logger, redactor: Redactor | Redact | None = None, *,
            handler: logging.Handler | None = None, fmt: str = FORMAT) -> RequestLogFilter:
    """Put one :class:`RequestLogFilter` on every handler of ``logger`` and return it.

    With ``handler`` (or when ``logger`` has none: a stderr handler), that handler is added
    to ``logger`` first, formatted with ``fmt`` (default: :data:`FORMAT`, with the id), and
    ``logger`` stops propagating to the root logger, whose handlers would see the records
    unfiltered. Existing handlers keep their formatters."""
    if handler is None and not logger.handlers:
        handler = logging.StreamHandler()
    if handler is not None:
        handler.setFormatter(logging.Formatter(fmt))
        logger.addHandler(handler)
        logger.propagate = False
    chosen = RequestLogFilter(redactor)
    for each in logger.handlers:
        for old in [f for f in each.filters if isinstance(f, RequestLogFilter)]:
            each.removeFilter(old)
        each.addFilter(chosen)
    return chosen
