"""Bounded concurrency with a first-come, first-served queue, and a drain for shutdown.

A :class:`Gate` admits at most ``limit`` holders of a slot at a time; the others wait in
arrival order until a slot frees, their deadline passes (DeadlineExceeded naming the wait and
the load), or it is cancelled (Cancelled). :meth:`Gate.drain` stops admitting (new callers get
:class:`~kiln.server.ServerDraining`) and waits for the admitted and queued work to finish.

Thread-based (the gRPC server runs its handlers on a thread pool) and without polling: each
waiter sleeps on its own condition, woken when a slot is handed to it or its deadline is
cancelled.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from kiln.server import ServerDraining

if TYPE_CHECKING:
    from kiln.core.deadline import Deadline

DRAINING = "the server is shutting down and accepts no new requests"
"""The message of ServerDraining."""
GateListener = Callable[[int, int], None]
"""``(in_flight, queued)``, called after every change (e.g. ServerMetrics.gate_changed)."""


class _Waiter:
    """One queued caller: its own condition (on the gate's lock) and whether it got a slot."""

    __slots__ = ("cond", "granted")

    def __init__(self, lock: threading.Lock) -> None:
        self.cond = threading.Condition(lock)
        self.granted = False


class Gate:
    """At most ``limit`` concurrent holders of a slot, the rest queued in arrival order.

    ``on_change(in_flight, queued)`` is called, under the gate's lock so successive calls
    arrive in order, after every change of either count: it must be quick and must not call
    back into the gate (setting two gauges is what it is for).
    """

    def __init__(self, limit: int, *, on_change: GateListener | None = None) -> None:
        if limit < 1:
            raise ValueError(f"a gate needs at least one slot, got {limit}")
        self.limit = limit
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: deque[_Waiter] = deque()
        self._in_flight = 0
        self._draining = False
        self._on_change = on_change

    @property
    def in_flight(self) -> int:
        """How many callers hold a slot now."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """How many callers wait for a slot now."""
        return len(self._queue)

    @property
    def draining(self) -> bool:
        """True once :meth:`drain` was called: no new caller is admitted."""
        return self._draining

    @contextlib.contextmanager
    def slot(self, deadline: Deadline) -> Iterator[float]:
        """Hold a slot for the block; yields the seconds spent waiting for it.

        Waits in arrival order while every slot is taken. Raises, without holding a slot:
        :class:`~kiln.server.ServerDraining` once the gate drains; the deadline's
        DeadlineExceeded naming "waiting for a free render slot (N in flight, M queued)" when
        it passes first (Cancelled, same text, when it is cancelled)."""
        started = time.monotonic()
        self._acquire(deadline)
        try:
            yield time.monotonic() - started
        finally:
            self._release()

    def _acquire(self, deadline: Deadline) -> None:
        with self._lock:
            if self._draining:
                raise ServerDraining(DRAINING)
            if not deadline.expired() and self._in_flight < self.limit and not self._queue:
                self._in_flight += 1
                self._changed()
                return
        self._wait_for_slot(deadline)

    def _wait_for_slot(self, deadline: Deadline) -> None:
        """The slow path: queue up, and wait until a slot is handed over or time is up."""
        waiter = _Waiter(self._lock)

        def wake() -> None:
            with self._lock:
                waiter.cond.notify()

        # Registered before the lock is taken: on an already cancelled deadline the callback
        # runs at once, and it takes the lock itself.
        unregister = deadline.on_cancel(wake)
        try:
            with self._lock:
                if self._draining:  # the state may have changed while the lock was free
                    raise ServerDraining(DRAINING)
                if not deadline.expired() and self._in_flight < self.limit and not self._queue:
                    self._in_flight += 1
                    self._changed()
                    return
                self._queue.append(waiter)
                self._changed()
                try:
                    while not waiter.granted:
                        if deadline.expired():
                            raise deadline.error(self._waiting(itself=1))
                        waiter.cond.wait(deadline.wait_timeout())
                except BaseException:
                    # Given up (deadline, cancellation, or an interrupt raised while waiting):
                    # leave the queue, or hand back a slot granted in the meantime.
                    if waiter.granted:
                        self._release_locked()
                    else:
                        self._queue.remove(waiter)
                        self._changed()
                        self._notify_idle()
                    raise
        finally:
            unregister()

    def _waiting(self, itself: int = 0) -> str:
        """The pending step of a waiter that gives up (the others queued, not itself)."""
        return (f"waiting for a free render slot ({self._in_flight} in flight, "
                f"{len(self._queue) - itself} queued)")

    def _release(self) -> None:
        with self._lock:
            self._release_locked()

    def _release_locked(self) -> None:
        """Give a slot back (the lock is held): straight to the first in line, if any."""
        if self._queue:
            head = self._queue.popleft()  # in_flight does not change: the slot changes hands
            head.granted = True
            head.cond.notify()
        else:
            self._in_flight -= 1
        self._changed()
        self._notify_idle()

    def _notify_idle(self) -> None:
        """Wake :meth:`drain` when nothing is held or queued any more (the lock is held)."""
        if self._in_flight == 0 and not self._queue:
            self._idle.notify_all()

    def _changed(self) -> None:
        """Tell the listener; the lock is held."""
        if self._on_change is not None:
            self._on_change(self._in_flight, len(self._queue))

    def drain(self, timeout: float) -> bool:
        """Stop admitting new callers (they get ServerDraining from then on) and wait up to
        ``timeout`` seconds for the slots held and the callers queued to finish; return
        whether they did. Queued callers keep their place and are still served. Safe to call
        again (e.g. with a longer timeout)."""
        end = time.monotonic() + max(0.0, timeout)
        with self._lock:
            self._draining = True
            while self._in_flight or self._queue:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
            return True
