"""Identical concurrent requests do the work once: the first runs it, the others wait for it.

:meth:`SingleFlight.do` runs ``fn`` for the first caller of a key (the leader); callers of the
same key that arrive while it runs wait and get its value, or an exception of the same type
and message. A waiter whose own deadline passes (or is cancelled) stops waiting without
disturbing the leader. The key is forgotten the moment the leader finishes: this is not a
cache (the manifest cache is), and a caller arriving afterwards runs ``fn`` again.

One exception is not shared: when the leader's own deadline was *cancelled* (its client went
away), its Cancelled error says nothing about the work, so a waiter does not inherit it; it
takes over as the new leader (or joins whoever did).

The value is handed to every waiter as it is, the same object: callers must treat it as
read-only (copy before changing it), or make ``fn`` return something immutable.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

from kiln.core.deadline import Cancelled

if TYPE_CHECKING:
    from kiln.core.deadline import Deadline

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

WAITING = "waiting for an identical request already in progress"
"""What a waiter's DeadlineExceeded names as pending."""


class _Flight(Generic[V]):
    """One running call: its outcome once ``done``, and a condition (on the group's lock)."""

    __slots__ = ("cond", "done", "error", "value", "waiters")

    def __init__(self, lock: threading.Lock) -> None:
        self.cond = threading.Condition(lock)
        self.done = False
        self.waiters = 0
        self.value: V | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[K, V]):
    """Collapse concurrent calls with the same key into one run.

    ``on_shared()`` is called (outside the lock) each time a waiter receives a leader's
    value, e.g. ServerMetrics.count_shared; :attr:`shared` counts the same."""

    def __init__(self, *, on_shared: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._flights: dict[K, _Flight[V]] = {}
        self._shared = 0
        self._on_shared = on_shared

    @property
    def shared(self) -> int:
        """How many calls got their value from another caller's run so far."""
        return self._shared

    def running(self) -> int:
        """How many keys have a run in progress now."""
        return len(self._flights)

    def waiting(self) -> int:
        """How many callers wait for another's run now."""
        with self._lock:
            return sum(f.waiters for f in self._flights.values())

    def do(self, key: K, fn: Callable[[], V], deadline: Deadline | None = None
           ) -> tuple[V, bool]:
        """Return ``(value, shared)``: ``fn()``'s value, run by this caller (shared False) or
        by a concurrent caller of the same key (shared True; the same object: read-only).

        ``fn``'s exception is raised to the leader as it is and to each waiter as a copy
        (same type and message; the object itself when it cannot be copied). A waiter whose
        ``deadline`` passes first raises its DeadlineExceeded (Cancelled) naming the wait;
        the leader carries on."""
        while True:
            with self._lock:
                flight = self._flights.get(key)
                leader = flight is None
                if flight is None:
                    flight = self._flights[key] = _Flight(self._lock)
            if leader:
                return self._lead(key, flight, fn), False
            if self._wait(flight, deadline):
                break
        if flight.error is not None:
            raise _copy(flight.error)
        with self._lock:
            self._shared += 1
        if self._on_shared is not None:
            self._on_shared()
        return flight.value, True  # type: ignore[return-value]  # set when error is None

    def _lead(self, key: K, flight: _Flight[V], fn: Callable[[], V]) -> V:
        """Run ``fn`` for everyone waiting on ``flight``; forget the key when it is done."""
        try:
            value = fn()
        except BaseException as exc:
            flight.error = exc
            raise
        else:
            flight.value = value
            return value
        finally:
            with self._lock:
                flight.done = True
                if self._flights.get(key) is flight:
                    del self._flights[key]
                flight.cond.notify_all()

    def _wait(self, flight: _Flight[V], deadline: Deadline | None) -> bool:
        """Wait for ``flight`` to end; True when its outcome is to be taken, False when the
        leader was cancelled and this caller should try again. Raises the waiter's deadline
        error when it passes first."""

        def wake() -> None:
            with self._lock:
                flight.cond.notify_all()

        unregister = deadline.on_cancel(wake) if deadline is not None else None
        try:
            with self._lock:
                flight.waiters += 1
                try:
                    while not flight.done:
                        if deadline is not None and deadline.expired():
                            raise deadline.error(WAITING)
                        flight.cond.wait(deadline.wait_timeout() if deadline else None)
                finally:
                    flight.waiters -= 1
        finally:
            if unregister is not None:
                unregister()
        return not isinstance(flight.error, Cancelled)


def _copy(exc: BaseException) -> BaseException:
    """A fresh exception like ``exc`` for another thread to raise (same type, message and
    attributes), so two threads never raise, and chain tracebacks onto, one object."""
    try:
        fresh = copy.copy(exc)
    except Exception:  # noqa: BLE001 - a class whose constructor copy cannot call
        return exc
    if type(fresh) is not type(exc) or str(fresh) != str(exc):
        return exc
    fresh.__traceback__ = None
    return fresh
