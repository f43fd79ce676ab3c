"""What a batch of renders shows while it works: one live line on stderr, only on a terminal.

:func:`progress_for` gives a :class:`Progress` drawing a rich live line (apps done / total,
cache hits, failures, the slowest app still in flight and its seconds) when the stream is a
TTY and the command is not quiet; otherwise None, and nothing is drawn (pipes, CI logs and
Argo CD get nothing but errors). rich is imported only when a display is shown, so a piped
or quiet run never loads it. The line names apps (their label), never a value.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from kiln.apps.model import AppSpec
    from kiln.many.runner import AppOutcome

REFRESH_PER_SECOND = 4


class Progress(Protocol):
    """What :func:`kiln.many.runner.render_many` reports to (from its worker threads: an
    implementation must be thread-safe)."""

    def started(self, spec: AppSpec) -> None:
        """``spec`` starts rendering."""

    def finished(self, outcome: AppOutcome) -> None:
        """An app is done (rendered or failed)."""


class Tally:
    """The counts a display shows, updated from many threads (thread-safe)."""

    def __init__(self, total: int, label: str) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.hits = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._running: list[tuple[AppSpec, float]] = []

    def started(self, spec: AppSpec) -> None:
        """Note ``spec`` as in flight from now."""
        with self._lock:
            self._running.append((spec, time.monotonic()))

    def finished(self, outcome: AppOutcome) -> None:
        """Count ``outcome`` and take its app off the in-flight list."""
        with self._lock:
            for index, (spec, _) in enumerate(self._running):
                if spec is outcome.spec:
                    del self._running[index]
                    break
            self.done += 1
            if outcome.error is not None:
                self.failed += 1
            elif outcome.result is not None and outcome.result.cache_hit:
                self.hits += 1

    def line(self) -> str:
        """``kiln: render 3/10 apps, 2 cache hits, 1 failed, slowest: apps/web 4.2s``."""
        from kiln.many.runner import app_label

        with self._lock:
            text = (f"kiln: {self.label} {self.done}/{self.total} apps, {self.hits} cache "
                    f"hit{'s' if self.hits != 1 else ''}, {self.failed} failed")
            if self._running:
                spec, since = min(self._running, key=lambda item: item[1])
                text += f", slowest: {app_label(spec)} {time.monotonic() - since:.1f}s"
        return text


class _Live:
    """A :class:`Tally` drawn by a rich ``Live`` (its own refresh thread)."""

    def __init__(self, tally: Tally, live: Any) -> None:
        self.tally = tally
        self.live = live

    def started(self, spec: AppSpec) -> None:
        """See :meth:`Progress.started`."""
        self.tally.started(spec)

    def finished(self, outcome: AppOutcome) -> None:
        """See :meth:`Progress.finished`."""
        self.tally.finished(outcome)


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (a closed or odd stream is not)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except (ValueError, OSError):
        return False


@contextlib.contextmanager
def progress_for(stream: TextIO, *, total: int, quiet: bool, label: str
                 ) -> Iterator[Progress | None]:
    """A rich live display on `stream` (stderr) when it is a TTY and not `quiet`; else None.

    The display ends with the block, leaving its last line (the final counts) on the
    terminal; nothing is ever written to any other stream."""
    if quiet or total <= 0 or not is_terminal(stream):
        yield None
        return
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    tally = Tally(total, label)
    console = Console(file=stream, force_terminal=True, highlight=False, soft_wrap=False)
    live = Live(get_renderable=lambda: Text(tally.line(), no_wrap=True, overflow="ellipsis"),
                console=console, refresh_per_second=REFRESH_PER_SECOND, transient=False,
                redirect_stdout=False, redirect_stderr=False)
    with live:
        yield _Live(tally, live)


__all__ = ["Progress", "Tally", "is_terminal", "progress_for"]
