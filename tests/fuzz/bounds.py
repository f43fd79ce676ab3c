"""What every fuzz test asserts, and the settings that keep them bounded."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

from kiln.core.errors import KilnError

T = TypeVar("T")

FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
"""200 examples, no per-example deadline (the machine is shared), no example database."""


class Hang(BaseException):
    """An input took longer than the test's time bound (a BaseException: nothing swallows it)."""


@contextlib.contextmanager
def within(seconds: float) -> Iterator[None]:
    """Fail with :class:`Hang` if the block runs longer than ``seconds`` (main thread only)."""

    def expired(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def result_or_kiln_error(call: Callable[[], T], seconds: float = 10.0) -> T | KilnError:
    """Run ``call`` within ``seconds``: return its result, or the KilnError it raised after
    checking the error prints as one non-empty line. Any other exception fails the test."""
    try:
        with within(seconds):
            return call()
    except KilnError as exc:
        line = exc.one_line()
        assert line.strip(), f"{type(exc).__name__} with an empty message"
        assert "\n" not in line and "\r" not in line, line
        return exc
