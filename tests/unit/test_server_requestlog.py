"""Request ids on log lines, redaction of every line, and no id leaking across threads."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiln.core.redact import Redactor
from kiln.server import requestlog
from tests.fuzz.bounds import FUZZ

SECRET = "s3cr3t-Value-8812"
"""A secret value the test registers with the redactor."""


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, Redactor]]:
    """A private logger writing through a real StreamHandler into a buffer."""
    logger = logging.getLogger("kiln.test.requestlog")
    logger.setLevel(logging.DEBUG)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    redactor = Redactor()
    requestlog.install(logger, redactor, handler=handler,
                       fmt="%(request_id)s|%(levelname)s|%(message)s")
    yield logger, out, redactor
    logger.removeHandler(handler)


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_a_registered_secret_and_a_url_password_never_reach_the_line(
        captured: tuple[logging.Logger, io.StringIO, Redactor]) -> None:
    logger, out, redactor = captured
    redactor.register(SECRET)
    with requestlog.bind("req-1"):
        logger.warning("resolved %s for %s", SECRET, "web")
        logger.info("fetching https://alice:hunter2pass@git.example.com/repo.git")
        logger.info("header Authorization: Bearer abcdefghijklmnop rest")
    text = out.getvalue()
    assert SECRET not in text
    assert "hunter2pass" not in text
    assert "alice" not in text
    assert "abcdefghijklmnop" not in text
    assert lines(out) == [
        "req-1|WARNING|resolved <redacted> for web",
        "req-1|INFO|fetching https://***@git.example.com/repo.git",
        "req-1|INFO|header Authorization: Bearer *** rest",
    ]


def test_a_traceback_is_redacted_too(
        captured: tuple[logging.Logger, io.StringIO, Redactor]) -> None:
    logger, out, redactor = captured
    redactor.register(SECRET)
    try:
        raise ValueError(f"bad value {SECRET} from https://u:pw12345@h/x")
    except ValueError:
        logger.exception("render failed")
    text = out.getvalue()
    assert "Traceback" in text
    assert "ValueError: bad value <redacted> from https://***@h/x" in text
    assert SECRET not in text
    assert "pw12345" not in text


def test_records_from_child_loggers_are_filtered_too(
        captured: tuple[logging.Logger, io.StringIO, Redactor]) -> None:
    _, out, redactor = captured
    redactor.register(SECRET)
    child = logging.getLogger("kiln.test.requestlog.engine")
    with requestlog.bind("req-child"):
        child.warning("child saw %s", SECRET)
    assert lines(out) == ["req-child|WARNING|child saw <redacted>"]


def test_outside_a_request_the_id_is_a_dash(
        captured: tuple[logging.Logger, io.StringIO, Redactor]) -> None:
    logger, out, _ = captured
    logger.warning("starting")
    assert lines(out) == ["-|WARNING|starting"]
    assert requestlog.current_request_id() is None


def test_bind_restores_the_previous_id_even_on_error() -> None:
    with requestlog.bind("outer") as outer:
        assert outer == "outer"
        with pytest.raises(RuntimeError), requestlog.bind("inner"):
            assert requestlog.current_request_id() == "inner"
            raise RuntimeError
        assert requestlog.current_request_id() == "outer"
    assert requestlog.current_request_id() is None


def test_ids_differ_per_request_and_do_not_leak_across_pool_threads(
        captured: tuple[logging.Logger, io.StringIO, Redactor]) -> None:
    logger, out, _ = captured
    barrier = threading.Barrier(4)

    def request(n: int) -> str:
        with requestlog.bind() as rid:
            barrier.wait(10)  # four requests bound at once, on four threads
            logger.info("request %d", n)
            barrier.wait(10)
        logger.info("after %d", n)  # same worker thread, request over
        return rid

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = list(pool.map(request, range(4)))
        # The workers serve more tasks: none still sees an id.
        assert list(pool.map(lambda _: requestlog.current_request_id(), range(8))) == [None] * 8
    assert len(set(ids)) == 4
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
    got = lines(out)
    for n, rid in enumerate(ids):
        assert f"{rid}|INFO|request {n}" in got
        assert f"-|INFO|after {n}" in got
    assert len(got) == 8


def test_install_replaces_its_own_filter_and_covers_existing_handlers() -> None:
    logger = logging.getLogger("kiln.test.requestlog.install")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(request_id)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        requestlog.install(logger)  # credential shapes only
        second = Redactor()
        second.register(SECRET)
        requestlog.install(logger, second.redact)  # any text -> text function
        assert sum(isinstance(f, requestlog.RequestLogFilter) for f in handler.filters) == 1
        with requestlog.bind("abc"):
            logger.info("%s and password=topsecret1", SECRET)
        assert out.getvalue() == "abc <redacted> and password=***\n"
    finally:
        logger.removeHandler(handler)


def test_accept_request_id_keeps_only_well_formed_ids() -> None:
    assert requestlog.accept_request_id("abc-123_x.y") == "abc-123_x.y"
    for bad in ("", "a b", "x\ninjected line", "-leading", "a" * 65, "ü"):
        fresh = requestlog.accept_request_id(bad)
        assert fresh != bad
        assert requestlog.is_request_id(fresh)
    assert requestlog.is_request_id(requestlog.accept_request_id(None))
    with pytest.raises(ValueError), requestlog.bind("two\nlines"):
        pass


@FUZZ
@given(st.text(max_size=80))
def test_fuzz_an_accepted_id_is_one_safe_token(offered: str) -> None:
    rid = requestlog.accept_request_id(offered)
    assert 1 <= len(rid) <= 64
    assert rid.isascii()
    assert not any(c.isspace() for c in rid)
    assert rid == offered or not requestlog.is_request_id(offered)


def test_a_log_call_whose_arguments_do_not_format_is_logged_not_raised(
        captured: tuple[logging.Logger, io.StringIO, Redactor]) -> None:
    logger, out, redactor = captured
    redactor.register(SECRET)
    with requestlog.bind("r"):
        logger.warning(f"value {SECRET} then %d", "not a number")
    assert lines(out) == ["r|WARNING|value <redacted> then %d (the log arguments did not format)"]
