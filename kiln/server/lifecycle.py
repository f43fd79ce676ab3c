"""One server process's shared parts, and the bookkeeping every request goes through.

A :class:`ServerCore` holds the process's :class:`~kiln.server.gate.Gate`, its
:class:`~kiln.server.singleflight.SingleFlight` group and (optionally) its
:class:`~kiln.server.metrics.ServerMetrics`, wired together. :meth:`ServerCore.request` wraps
one request: it binds a request id for the logs, keeps the request's deadline so a drain can
cancel it, and on the way out counts the request by method and outcome with its duration and
logs one line. :meth:`ServerCore.drain` is the SIGTERM path: stop admitting, wait for the work
in hand, and when the grace runs out cancel what is still running (its tools are killed by
process group) so every request still ends with kiln's own error.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kiln.server import requestlog
from kiln.server.gate import Gate
from kiln.server.singleflight import SingleFlight

if TYPE_CHECKING:
    from kiln.core.deadline import Deadline
    from kiln.server.metrics import ServerMetrics

log = logging.getLogger("kiln.server")

SHUTDOWN = "the server is shutting down"
"""The reason given to the deadlines a drain cancels."""


class ClusterLock(Protocol):
    """What :attr:`ServerCore.distlock` must offer (``kiln.server.distlock.DistLock``)."""

    def hold(self, key: str, deadline: Deadline) -> contextlib.AbstractContextManager[bool]:
        """Hold the cluster-wide lock ``key`` for the block (see ``kiln.server.distlock``)."""
        ...


@dataclass
class RequestScope:
    """One request in progress: its id, method and deadline; ``outcome`` once it ended (one
    of :data:`kiln.server.metrics.OUTCOMES`). ``note`` is free text for the closing log line
    (e.g. "cache hit")."""

    request_id: str
    method: str
    deadline: Deadline
    started: float = field(default_factory=time.monotonic)
    outcome: str | None = None
    note: str = ""

    def elapsed(self) -> float:
        """Seconds since the request started."""
        return time.monotonic() - self.started


class ServerCore:
    """A gate of ``parallelism`` slots, a single-flight group and the metrics, wired together
    (the gauges follow the gate, ``kiln_singleflight_shared_total`` the group).

    ``distlock``, None by default, is a cluster-wide lock replicas sharing one cache hold
    around the lead of a miss, so a burst of identical requests over several replicas renders
    once (set by the server that has one)."""

    def __init__(self, parallelism: int, metrics: ServerMetrics | None = None) -> None:
        self.metrics = metrics
        self.distlock: ClusterLock | None = None
        self.gate = Gate(parallelism,
                         on_change=metrics.gate_changed if metrics is not None else None)
        self.flights: SingleFlight[Hashable, Any] = SingleFlight(
            on_shared=metrics.count_shared if metrics is not None else None)
        self._lock = threading.Lock()
        self._active: dict[int, RequestScope] = {}

    def active(self) -> list[RequestScope]:
        """The requests in progress now."""
        with self._lock:
            return list(self._active.values())

    @contextlib.contextmanager
    def request(self, method: str, deadline: Deadline, request_id: str | None = None
                ) -> Iterator[RequestScope]:
        """The block is one request of ``method`` under ``deadline``: ``request_id`` (a
        well-formed client id, else a fresh one: :func:`requestlog.accept_request_id`) is
        bound for the logs; on the way out the request is counted with its outcome
        (:func:`kiln.server.metrics.outcome_of` of the exception, which propagates) and its
        duration, and one line is logged."""
        scope = RequestScope(requestlog.accept_request_id(request_id), method, deadline)
        with requestlog.bind(scope.request_id), self._tracked(scope):
            error: BaseException | None = None
            try:
                yield scope
            except BaseException as exc:
                error = exc
                raise
            finally:
                self._finish(scope, error)

    @contextlib.contextmanager
    def _tracked(self, scope: RequestScope) -> Iterator[None]:
        with self._lock:
            self._active[id(scope)] = scope
        try:
            yield
        finally:
            with self._lock:
                self._active.pop(id(scope), None)

    def _finish(self, scope: RequestScope, error: BaseException | None) -> None:
        from kiln.server.metrics import outcome_of

        scope.outcome = outcome_of(error)
        seconds = scope.elapsed()
        if self.metrics is not None:
            self.metrics.observe_request(scope.method, scope.outcome, seconds)
        note = f" ({scope.note})" if scope.note else ""
        if error is None:
            log.info("%s ok in %.1f ms%s", scope.method, seconds * 1000, note)
        else:
            from kiln.core.errors import KilnError

            # KilnError text is written to be shown; anything else is a bug: its type only.
            reason = error.one_line() if isinstance(error, KilnError) else type(error).__name__
            log.info("%s %s in %.1f ms%s: %s", scope.method, scope.outcome, seconds * 1000,
                     note, reason)

    def drain(self, timeout: float, *, grace: float = 5.0) -> bool:
        """Stop admitting render work (new slots raise ServerDraining), wait up to
        ``timeout`` seconds for what is held and queued; then cancel the deadline of every
        request still in progress (:data:`SHUTDOWN`: their tools are killed, they answer
        Cancelled) and wait up to ``grace`` more. Return whether everything finished."""
        if self.gate.drain(timeout):
            return True
        left = self.active()
        log.warning("drain: %d request(s) still running after %gs: cancelling them",
                    len(left), timeout)
        for scope in left:
            scope.deadline.cancel(SHUTDOWN)
        return self.gate.drain(grace)
