"""Work many requests wait for, done once in the background: each caller waits with its own
deadline, and no caller's deadline or cancellation ends the work for the others.

:class:`kiln.server.singleflight.SingleFlight` runs the work in the first caller's thread,
under that caller's deadline: right for a render, wrong for a git fetch that twenty requests
wait for — when the first caller's client goes away, the fetch would be killed and begun
again. :meth:`SharedWork.do` starts the work in a daemon thread (bounded by the operator's
git timeout, not by any request) and every caller, the first included, waits for it until
its own deadline passes or is cancelled. The key is forgotten when the work ends (this is
not a cache); a caller arriving afterwards starts it again.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from kiln.core.deadline import Deadline

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

log = logging.getLogger("kiln.gitsource")


class _Task(Generic[V]):
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = False
        self.value: V | None = None
        self.error: BaseException | None = None


class SharedWork(Generic[K, V]):
    """Run ``fn`` once per key in the background; hand its outcome to every caller."""

    def __init__(self, name: str = "kiln-git") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._tasks: dict[K, _Task[V]] = {}
        self.shared = 0
        """Calls that joined work another caller started."""

    def running(self) -> int:
        """Keys with work in progress now."""
        with self._lock:
            return len(self._tasks)

    def do(self, key: K, fn: Callable[[], V], deadline: Deadline | None, pending: str
           ) -> tuple[V, bool]:
        """``(fn()'s value, shared)``: run by a background thread for the first caller of
        ``key`` (shared False) or joined while it runs (shared True). ``fn``'s exception is
        raised to every caller (a copy each); a caller whose ``deadline`` passes or is
        cancelled first raises the deadline's error naming ``pending``, the work goes on."""
        with self._lock:
            task = self._tasks.get(key)
            joined = task is not None
            if task is None:
                task = self._tasks[key] = _Task()
                thread = threading.Thread(target=self._run, args=(key, task, fn),
                                          name=self._name, daemon=True)
                thread.start()
            else:
                self.shared += 1
        self._wait(task, deadline, pending)
        if task.error is not None:
            raise _copy(task.error)
        return task.value, joined  # type: ignore[return-value]  # set when error is None

    def _run(self, key: K, task: _Task[V], fn: Callable[[], V]) -> None:
        try:
            value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the callers
            task.error = exc
        else:
            task.value = value
        finally:
            with self._lock:
                task.done = True
                if self._tasks.get(key) is task:
                    del self._tasks[key]
                self._cond.notify_all()

    def _wait(self, task: _Task[V], deadline: Deadline | None, pending: str) -> None:
        def wake() -> None:
            with self._lock:
                self._cond.notify_all()

        unregister = deadline.on_cancel(wake) if deadline is not None else None
        try:
            with self._lock:
                while not task.done:
                    if deadline is not None and deadline.expired():
                        raise deadline.error(pending)
                    self._cond.wait(deadline.wait_timeout() if deadline is not None else None)
        finally:
            if unregister is not None:
                unregister()


def _copy(exc: BaseException) -> BaseException:
    """A fresh exception like ``exc`` (same type, message and attributes) for one caller."""
    try:
        fresh = copy.copy(exc)
    except Exception:  # noqa: BLE001 - a class copy cannot rebuild
        return exc
    if type(fresh) is not type(exc) or str(fresh) != str(exc):
        return exc
    fresh.__traceback__ = None
    return fresh


__all__ = ["SharedWork"]
