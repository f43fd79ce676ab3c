"""The resolver pipeline every secret resolver shares: batched reads, deadlines, final marks.

A resolver is a :class:`Backend` (one ``read`` per :class:`ReadKey`), its configuration, and
the references it owns (argocd-vault-plugin's grammar lives in :mod:`kiln.core.placeholders`). This
module holds what does not depend on how references are written:

* :func:`fetch_all` runs the reads concurrently (bounded), each with a total timeout, the
  command's deadline, and retries with backoff on :class:`TransientBackendError` only
  (connection refused, 5xx; never 4xx), collecting every failure;
* :func:`register_leaves` registers every value read with the redactor before it is used;
* :class:`StoreBackend` is what a resolver lends another plugin (a backend and its policy).

Resolved values are final. Text a resolver put into the stream is a :class:`Resolved` string
carrying the spans that came from a backend; no later resolver scans or substitutes inside those
spans (:func:`free_matches`). A resolver that does not substitute through
:mod:`kiln.core.placeholders` marks its output with :func:`final`; the engine turns every
:class:`Resolved` back into a plain ``str`` (:func:`plain`) once every resolver ran.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import msgspec

from kiln.core.errors import (
    KilnError,
    SecretBackendUnavailable,
    SecretError,
)

if TYPE_CHECKING:
    from kiln.core.deadline import Deadline
    from kiln.core.redact import Redactor

log = logging.getLogger("kiln.secrets")


# -- data model ---------------------------------------------------------------------------------


class ReadKey(msgspec.Struct, frozen=True):
    """One backend read: a path, an optional version, and a backend-specific ``variant``.

    Reads are de-duplicated on the whole key (Vault uses ``variant`` for the KV version, since
    AVP's ``kv-version`` annotation changes how the same path is read).
    """

    path: str
    version: str | None = None
    variant: str = ""

    def describe(self) -> str:
        """The key as shown in messages: ``path`` or ``path (version N)``."""
        return f"{self.path} (version {self.version})" if self.version else self.path


class Backend(Protocol):
    """What a secret store must provide: one read per :class:`ReadKey`.

    ``read`` returns the mapping stored at the key. It raises :class:`SecretNotFound` when the
    path, version or key does not exist, :class:`TransientBackendError` for failures worth
    retrying (connection refused, timeouts, 5xx), and :class:`SecretBackendUnavailable` or
    :class:`SecretError` for anything final (4xx, permission denied). ``open`` runs once per
    stream before any read (log in); ``name`` appears in messages. A backend may also have
    ``prepare()``: local set-up (imports, client objects, no network), run once before
    ``open`` and outside the time limits, so a slow import never counts as a slow server.
    """

    name: str

    def open(self) -> None:
        """Prepare for reads (authenticate); called once, retried like a read."""
        ...

    def read(self, key: ReadKey) -> Mapping[str, Any]:
        """Return the secret stored at ``key`` as a mapping of keys to values."""
        ...


class TransientBackendError(SecretBackendUnavailable):
    """A failure worth retrying: connection refused or reset, timeout, 5xx."""


class FetchPolicy(msgspec.Struct, kw_only=True):
    """How reads run: ``concurrency`` threads at most, ``retries`` extra attempts on transient
    failures, exponential ``backoff`` starting at that many seconds.

    ``timeout`` is the *total* time one read (and the login) may take, retries included: each
    attempt runs in its own daemon thread and is given up when the time is spent, so a server
    that answers slowly byte by byte cannot hold kiln past it (a per-socket-read timeout
    would). ``deadline`` (the whole command's, :class:`kiln.core.deadline.Deadline`) caps it
    further; reads cut short by it raise :class:`~kiln.core.deadline.DeadlineExceeded`."""

    concurrency: int = 8
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.2
    deadline: Deadline | None = None


class StoreBackend(NamedTuple):
    """What a resolver's ``backend_for_store`` hands another plugin (see
    :meth:`kiln.core.context.SecretContext.backend_for`): the backend and how to read it."""

    backend: Backend
    policy: FetchPolicy


# -- resolver output is final ------------------------------------------------------------------


Span = tuple[int, int]


class Resolved(str):
    """A string some of whose text (``final``: ``(start, end)`` spans) is resolver output.

    Matching never looks inside those spans, so a value read from one backend that happens to
    contain ``<path:...>`` or ``ref+...`` text is neither read by another backend nor reported
    as an unresolved reference. ``decoded`` is set on a base64 Secret value whose decoded
    template was substituted: the template text (itself :class:`Resolved`) other resolvers may
    still work on. The marks live only between the resolvers of one run (see :func:`plain`).
    """

    final: tuple[Span, ...] = ()
    decoded: str | None = None


def mark(text: str, spans: Sequence[Span], decoded: str | None = None) -> str:
    """``text`` as a :class:`Resolved` string whose ``spans`` are resolver output (a plain
    ``str`` when there are none and no ``decoded`` template)."""
    spans = tuple(s for s in spans if s[1] > s[0])
    if not spans and decoded is None:
        return str(text)
    out = Resolved(text)
    out.final = spans
    out.decoded = decoded
    return out


def final(value: Any) -> Any:
    """Return ``value`` marked wholly as resolver output (every string of a list or mapping
    value too; map keys and non-strings are kept). Later resolvers never look inside it."""
    if isinstance(value, str):
        if type(value) is not str and not isinstance(value, Resolved):
            return value  # a plugin's own str subclass (e.g. a typed scalar) is kept as it is
        return mark(value, ((0, len(value)),)) if value else value
    if isinstance(value, Mapping):
        return {k: final(v) for k, v in value.items()}
    if isinstance(value, list):
        return [final(v) for v in value]
    return value


def final_spans(text: str) -> tuple[Span, ...]:
    """The spans of ``text`` that are resolver output (empty for a plain string)."""
    return text.final if isinstance(text, Resolved) else ()


def free_matches(regex: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """``regex``'s matches in the text between final spans only (a match never starts, ends
    or reaches into a resolved value)."""
    spans = final_spans(text)
    if not spans:
        yield from regex.finditer(text)
        return
    start = 0
    for span_start, span_end in sorted(spans):
        if span_start > start:
            yield from regex.finditer(text, start, span_start)
        start = max(start, span_end)
    if start < len(text):
        yield from regex.finditer(text, start)


def plain(node: Any) -> Any:
    """Return ``node`` with every :class:`Resolved` string turned back into a plain ``str``
    (containers holding none are returned as they are, not copied)."""
    if isinstance(node, Resolved):
        return str.__str__(node)
    if isinstance(node, dict):
        new = {k: plain(v) for k, v in node.items()}
        return node if all(new[k] is v for k, v in node.items()) else new
    if isinstance(node, list):
        items = [plain(v) for v in node]
        return node if all(a is b for a, b in zip(items, node, strict=True)) else items
    return node


# -- fetching -----------------------------------------------------------------------------------


class _GaveUp(TransientBackendError):
    """An attempt was still running when its time was spent."""

    def __init__(self, message: str, *, by_deadline: bool) -> None:
        super().__init__(message)
        self.by_deadline = by_deadline


def _bounded(call: Callable[[], Any], seconds: float, deadline: Deadline | None = None) -> Any:
    """Run ``call`` in a daemon thread (in a copy of the caller's context, so its log lines
    keep the caller's request id); return its result or raise its exception, or raise
    TimeoutError when it has not finished within ``seconds`` or ``deadline`` was cancelled
    meanwhile (the thread is abandoned: a thread blocked in a socket cannot be stopped, only
    left behind)."""
    import contextvars

    box: dict[str, Any] = {}
    done = threading.Event()
    context = contextvars.copy_context()

    def run() -> None:
        try:
            box["value"] = context.run(call)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread as it is
            box["error"] = exc
        finally:
            done.set()

    woken = threading.Event()

    def wake() -> None:
        woken.set()
        done.set()

    unregister = deadline.on_cancel(wake) if deadline is not None else None
    try:
        threading.Thread(target=run, name="kiln-secrets-io", daemon=True).start()
        if not done.wait(seconds) or ("value" not in box and "error" not in box and woken.is_set()):
            raise TimeoutError
    finally:
        if unregister is not None:
            unregister()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _with_retries(call: Callable[[], Any], policy: FetchPolicy, what: str) -> Any:
    """``call`` with retries on transient errors, all within ``policy.timeout`` seconds and
    the command's deadline; raises _GaveUp when the time is spent."""
    end = time.monotonic() + policy.timeout
    deadline = policy.deadline
    attempt = 0
    while True:
        left = end - time.monotonic()
        by_deadline = deadline is not None and deadline.remaining() <= left
        if deadline is not None:
            left = min(left, deadline.remaining())
        if left <= 0:
            raise _GaveUp(f"{what}: gave up after {policy.timeout:g}s (no complete answer)",
                          by_deadline=by_deadline)
        try:
            return _bounded(call, left, deadline)
        except TimeoutError:
            if deadline is not None and deadline.expired():
                by_deadline = True
            raise _GaveUp(f"{what}: no complete answer within {policy.timeout:g}s",
                          by_deadline=by_deadline) from None
        except TransientBackendError as exc:
            delay = policy.backoff * (2 ** attempt)
            if attempt >= policy.retries or time.monotonic() + delay >= end or (
                    deadline is not None and deadline.remaining() <= delay):
                raise
            log.debug("%s: transient failure (%s); retry %d in %.2fs", what, exc.message,
                      attempt + 1, delay)
            time.sleep(delay)
            attempt += 1


def _deadline_error(policy: FetchPolicy, what: str) -> KilnError:
    assert policy.deadline is not None
    return policy.deadline.error(what)


def fetch_all(backend: Backend, keys: Iterable[ReadKey], policy: FetchPolicy,
              redactor: Redactor | None = None) -> dict[ReadKey, Mapping[str, Any] | SecretError]:
    """Read every key once, ``policy.concurrency`` at a time; return data or the error per key.

    ``backend.open()`` runs first (with the same retries and time limit); if it fails that
    error is raised at once, since no read could succeed. Every leaf value read is registered
    with ``redactor``. When the command's deadline (``policy.deadline``) cuts reads short,
    DeadlineExceeded is raised naming the backend and every read still pending.
    """
    unique = list(dict.fromkeys(keys))
    if not unique:
        return {}
    prepare = getattr(backend, "prepare", None)
    if callable(prepare):
        prepare()
    try:
        _with_retries(backend.open, policy, f"{backend.name} login")
    except _GaveUp as exc:
        if exc.by_deadline:
            raise _deadline_error(policy, f"logging in to {backend.name}") from None
        raise SecretBackendUnavailable(exc.message) from None
    results: dict[ReadKey, Mapping[str, Any] | SecretError] = {}
    cut: list[ReadKey] = []
    lock = threading.Lock()

    def one(key: ReadKey) -> None:
        try:
            data: Mapping[str, Any] | SecretError = _with_retries(
                lambda: backend.read(key), policy, f"{backend.name} read {key.describe()}")
            if redactor is not None:
                register_leaves(redactor, data)
        except _GaveUp as exc:
            data = SecretBackendUnavailable(f"no complete answer from {backend.name} within "
                                            f"{policy.timeout:g}s (its timeout) while reading "
                                            f"{key.describe()}")
            if exc.by_deadline:
                with lock:
                    cut.append(key)
        except SecretError as exc:
            data = exc
        with lock:
            results[key] = data

    started = time.perf_counter()
    workers = max(1, min(policy.concurrency, len(unique)))
    from concurrent.futures import ThreadPoolExecutor

    if workers == 1:
        for key in unique:
            one(key)
    else:
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kiln-secrets")
        try:
            list(pool.map(one, unique))
        finally:  # interrupted (SIGTERM): drop the queued reads, do not wait for running ones
            pool.shutdown(wait=False, cancel_futures=True)
    log.debug("%s: %d read(s) with %d worker(s) in %.1f ms", backend.name, len(unique), workers,
              (time.perf_counter() - started) * 1000)
    if cut:
        names = ", ".join(k.describe() for k in unique if k in cut)
        raise _deadline_error(policy, f"reading from {backend.name}: {len(cut)} read(s) "
                              f"pending: {names}")
    return {key: results[key] for key in unique}


def register_leaves(redactor: Redactor, data: Any) -> None:
    """Register every string (and number) leaf of ``data`` as secret, in one batch."""
    leaves: list[str] = []
    _leaves(data, leaves)
    redactor.register_many(leaves)


def _leaves(data: Any, out: list[str]) -> None:
    if isinstance(data, Mapping):
        for value in data.values():
            _leaves(value, out)
    elif isinstance(data, list):
        for value in data:
            _leaves(value, out)
    elif isinstance(data, str):
        out.append(data)
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        out.append(str(data))
