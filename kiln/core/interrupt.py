"""SIGTERM and SIGINT unwind kiln's stack, so every ``finally`` block and context manager runs.

Argo CD stops an overrunning plugin with SIGTERM and sends SIGKILL 5 seconds later. While
:func:`signals_raise` is active, the first SIGTERM or SIGINT raises :class:`Interrupted` in the
main thread: :func:`kiln.core.tools.run_tool` kills the running tool's process group, the private
build trees (plaintext on ``/dev/shm``) are removed by their ``finally`` blocks, and the CLI
exits ``128 + signum`` with one line on stderr. Later signals are ignored while that cleanup
runs. :func:`shielded` holds the signals off around a cleanup that must not be cut in half.

Standard library only: the fast path of a cache-hit ``kiln generate`` installs this too.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """A SIGTERM or SIGINT arrived. Deliberately not an ``Exception``: no ``except Exception``
    on the way up (retries, optional steps, plugin loading) may swallow it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.name}")

    @property
    def exit_code(self) -> int:
        """The shell's convention for death by a signal: 128 + its number (143 for SIGTERM)."""
        return 128 + self.signum


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A second signal while the first one's cleanup runs: let the cleanup finish."""


def _raise(signum: int, frame: FrameType | None) -> None:
    for sig in SIGNALS:
        signal.signal(sig, _ignore)
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Within the block, the first SIGTERM/SIGINT raises :class:`Interrupted` in the main
    thread (later ones are ignored); the previous handlers come back when the block ends.
    Outside the main thread, where Python cannot install handlers, this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Hold SIGTERM/SIGINT off during the block (a cleanup that must complete); one that
    arrived meanwhile is delivered, and raises, right after it."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
