"""The many-apps progress display: nothing without a terminal or with -q; the counts."""

from __future__ import annotations

import io
import time

from kiln.apps.model import AppSpec
from kiln.core.engine import RenderResult
from kiln.core.errors import RenderError
from kiln.many.progress import Tally, progress_for
from kiln.many.runner import AppFailed, AppOutcome


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def spec(name: str) -> AppSpec:
    return AppSpec(name=name, path=name, app_settings={}, env={}, origin=name)


def test_no_display_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    with progress_for(stream, total=3, quiet=False, label="render") as progress:
        assert progress is None
    assert stream.getvalue() == ""


def test_no_display_when_quiet_even_on_a_terminal() -> None:
    stream = _Terminal()
    with progress_for(stream, total=3, quiet=True, label="render") as progress:
        assert progress is None
    assert stream.getvalue() == ""


def test_a_terminal_gets_the_counts() -> None:
    stream = _Terminal()
    with progress_for(stream, total=2, quiet=False, label="render") as progress:
        assert progress is not None
        a, b = spec("apps/a"), spec("apps/b")
        progress.started(a)
        progress.started(b)
        progress.finished(AppOutcome(a, RenderResult([], True, "k", "directory"), None, 0.1))
        progress.finished(AppOutcome(b, None, AppFailed(b, RenderError("boom")), 0.2))
    assert "2/2 apps" in stream.getvalue()
    assert "1 cache hit," in stream.getvalue() and "1 failed" in stream.getvalue()


def test_the_tally_names_the_slowest_app_in_flight() -> None:
    tally = Tally(3, "render")
    first, second = spec("apps/slow"), spec("apps/quick")
    tally.started(first)
    time.sleep(0.01)
    tally.started(second)
    assert "slowest: apps/slow " in tally.line()
    assert tally.line().startswith("kiln: render 0/3 apps, 0 cache hits, 0 failed")
    tally.finished(AppOutcome(first, RenderResult([], False, None, "helm"), None, 1.0))
    assert "slowest: apps/quick " in tally.line() and "1/3 apps" in tally.line()
    tally.finished(AppOutcome(second, None, AppFailed(second, RenderError("x")), 1.0))
    assert "slowest" not in tally.line() and "1 failed" in tally.line()
