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
        """Seconds left (``inf`` without a deadline, 0 once it passed)."""
        return max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self._end

    def cap(self, timeout: float) -> float:
        """``timeout`` shortened to the time left (never below a millisecond)."""
        return max(0.001, min(timeout, self.remaining()))

    def error(self, pending: str | None = None) -> DeadlineExceeded:
        """The error for a passed deadline, naming ``pending`` (else the current step)."""
        return DeadlineExceeded(f"gave up after the {self.seconds:g}s deadline ({self.source}) "
                                f"while {pending or self.pending}")

    def check(self, pending: str) -> None:
        """Note that ``pending`` starts now; raise DeadlineExceeded if the deadline passed."""
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
