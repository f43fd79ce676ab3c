"""One deadline for a whole command, so kiln ends with its own error before its caller gives up.

Argo CD's CMP server kills a plugin when the repo-server's gRPC deadline passes (60 s by
default, minus 100 ms; SIGTERM, then SIGKILL 5 s later). A :class:`Deadline` is a point in
monotonic time; the engine hands it to renderers and resolvers (``RenderContext.deadline``,
``SecretContext.deadline``) and every bounded operation waits ``min(its own timeout,
remaining())``. When it passes, :class:`DeadlineExceeded` names what was still pending.

``KILN_TIMEOUT`` (seconds; ``0`` turns it off) sets it; ``kiln generate`` defaults to
:data:`DEFAULT_GENERATE_SECONDS`. :meth:`Deadline.watch` adds a last-resort watchdog for the
CLI: if the command is still running :data:`WATCHDOG_GRACE` seconds after the deadline (stuck
somewhere no timeout reaches), it prints the one-line error and ends the process.

A server gives each request its own deadline (:meth:`Deadline.from_remaining`: the caller's
deadline minus a margin) and may end it early with :meth:`Deadline.cancel` (the client went
away, the server is stopping): from then on the deadline counts as expired, :meth:`check`
raises :class:`Cancelled`, and every callback registered with :meth:`on_cancel` runs, which is
how :func:`kiln.core.tools.run_tool` kills the process groups of the tools running under it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping

from kiln.core.errors import ConfigError, KilnError

ENV = "KILN_TIMEOUT"
DEFAULT_GENERATE_SECONDS = 55.0
"""``kiln generate``'s deadline: ends before Argo CD's 60 s repo-server timeout."""
WATCHDOG_GRACE = 2.0
"""Seconds after the deadline before the CLI watchdog ends a command that is still running."""


class DeadlineExceeded(KilnError):
    """The command's deadline passed; the message names what was still pending."""


class Cancelled(DeadlineExceeded):
    """The deadline was cancelled before it passed (:meth:`Deadline.cancel`); the message names
    what was pending and the reason.

    A subclass of DeadlineExceeded on purpose: every place that stops work when time is up
    (retries, batched reads, tool runs) stops the same way for a cancellation, and only code
    that must tell the two apart (a server's outcome metric) catches this class first."""


class Deadline:
    """``seconds`` from now (None: never). ``pending`` describes the current step, for the
    message when the deadline passes."""

    def __init__(self, seconds: float | None, *, source: str = ENV) -> None:
        self.seconds = seconds
        self.source = source
        self._end = math.inf if seconds is None else time.monotonic() + seconds
        self.pending = "starting"
        self._lock = threading.Lock()
        self._closed = False
        self._cancelled: str | None = None
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next_id = 0

    @classmethod
    def from_remaining(cls, seconds: float | None, margin: float = 0.1,
                       cap: float | None = None, *, default: float | None = None,
                       source: str = "the caller's deadline") -> Deadline:
        """A deadline ending ``margin`` seconds before the caller's, which has ``seconds``
        left (e.g. a gRPC context's ``time_remaining()``), so kiln answers with its own error
        before the caller gives up (Argo CD's CMP server keeps 100 ms).

        ``cap`` (the operator's limit, None: none) shortens it. ``seconds`` None (the caller
        set no deadline) means the operator's default: ``default``, else ``cap``, else none.
        A caller with less than ``margin`` left gets a deadline that has already passed."""
        if seconds is None:
            fallback = default if default is not None else cap
            return cls(fallback, source=source)
        if math.isnan(seconds):
            raise ValueError("remaining seconds must be a number")
        limit = max(0.0, seconds - max(0.0, margin))
        if cap is not None:
            limit = min(limit, cap)
        return cls(None if math.isinf(limit) else limit, source=source)

    @classmethod
    def from_env(cls, env: Mapping[str, str], default: float | None = None) -> Deadline:
        """The deadline ``KILN_TIMEOUT`` sets (``default`` when unset; ``0`` means none).

        Raises ConfigError naming the variable when it is not a number of seconds."""
        raw = env.get(ENV, "").strip()
        if not raw:
            return cls(default)
        try:
            seconds = float(raw)
        except ValueError:
            raise ConfigError(f"{ENV} must be a number of seconds (0 for none), got "
                              f"{raw!r}") from None
        if not math.isfinite(seconds) or seconds < 0:
            raise ConfigError(f"{ENV} must be a number of seconds (0 for none), got {raw!r}")
        return cls(seconds or None)

    def remaining(self) -> float:
        """Seconds left (``inf`` without a deadline, 0 once it passed or was cancelled)."""
        if self._cancelled is not None:
            return 0.0
        return max(0.0, self._end - time.monotonic())

    def wait_timeout(self) -> float | None:
        """:meth:`remaining` as a timeout for ``Event.wait`` / ``Condition.wait``: None (wait
        without limit) when there is no deadline."""
        left = self.remaining()
        return None if math.isinf(left) else left

    def expired(self) -> bool:
        """Whether the deadline has passed or was cancelled."""
        return self._cancelled is not None or time.monotonic() >= self._end

    @property
    def cancelled(self) -> str | None:
        """The reason given to :meth:`cancel`, None while not cancelled."""
        return self._cancelled

    def cancel(self, reason: str) -> None:
        """End the deadline now (thread-safe; the first reason is kept, later calls do
        nothing): :meth:`expired` becomes true, :meth:`check` raises :class:`Cancelled`
        naming the pending step and ``reason``, and every :meth:`on_cancel` callback runs,
        in this thread, before this returns."""
        with self._lock:
            if self._cancelled is not None:
                return
            self._cancelled = " ".join(reason.split()) or "cancelled"
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one failing callback must not spare the others
                import logging

                logging.getLogger("kiln.deadline").debug("cancel callback failed",
                                                         exc_info=True)

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` when :meth:`cancel` is called (at once, in this thread, when it
        already was); return a function that unregisters it (safe to call twice).

        Callbacks must be quick and must not block: they run in the cancelling thread (kill a
        process group, notify a condition)."""
        with self._lock:
            if self._cancelled is None:
                ident = self._next_id
                self._next_id += 1
                self._callbacks[ident] = callback
            else:
                ident = -1
        if ident < 0:
            callback()
            return _nothing

        def unregister() -> None:
            with self._lock:
                self._callbacks.pop(ident, None)

        return unregister

    def cap(self, timeout: float) -> float:
        """``timeout`` shortened to the time left (never below a millisecond)."""
        return max(0.001, min(timeout, self.remaining()))

    def error(self, pending: str | None = None) -> DeadlineExceeded:
        """The error for a passed deadline, naming ``pending`` (else the current step); a
        :class:`Cancelled` naming the reason too once the deadline was cancelled."""
        if self._cancelled is not None:
            return Cancelled(f"cancelled while {pending or self.pending}: {self._cancelled}")
        return DeadlineExceeded(f"gave up after the {self.seconds:g}s deadline ({self.source}) "
                                f"while {pending or self.pending}")

    def check(self, pending: str) -> None:
        """Note that ``pending`` starts now; raise DeadlineExceeded if the deadline passed
        (:class:`Cancelled` if it was cancelled)."""
        self.pending = pending
        if self.expired():
            raise self.error(pending)

    def watch(self, on_expiry: Callable[[str], None]) -> None:
        """Start the watchdog: ``on_expiry(one_line_error)`` runs (from a daemon thread) if
        :meth:`close` was not called :data:`WATCHDOG_GRACE` seconds after the deadline."""
        if self.seconds is None:
            return

        def fire() -> None:
            with self._lock:
                if not self._closed:
                    on_expiry(self.error().one_line())

        timer = threading.Timer(self.remaining() + WATCHDOG_GRACE, fire)
        timer.daemon = True
        timer.start()

    def close(self) -> None:
        """The command is done (about to print): the watchdog must not fire any more."""
        with self._lock:
            self._closed = True


def _nothing() -> None:
    """The unregister function of a callback that already ran."""
