"""ServerCore: every request counted by outcome and logged with its id; a drain that runs out
of patience cancels the running requests and kills their tools."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kiln.core.deadline import Cancelled, Deadline, DeadlineExceeded
from kiln.core.errors import RenderError
from kiln.core.redact import Redactor
from kiln.core.tools import run_tool
from kiln.server import ServerDraining, requestlog
from kiln.server.lifecycle import SHUTDOWN, ServerCore
from kiln.server.metrics import ServerMetrics


def requests_total(metrics: ServerMetrics) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics.exposition()[0].decode()):
        for s in family.samples:
            if s.name == "kiln_requests_total":
                out[(s.labels["method"], s.labels["outcome"])] = s.value
    return out


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    logger = logging.getLogger("kiln.server")
    logger.setLevel(logging.INFO)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    requestlog.install(logger, Redactor(), handler=handler,
                       fmt="%(request_id)s %(message)s")
    yield out
    logger.removeHandler(handler)
    logger.propagate = True


def test_each_outcome_is_counted_and_logged_with_the_request_id(log_lines: io.StringIO
                                                                ) -> None:
    metrics = ServerMetrics(process=False)
    core = ServerCore(2, metrics)
    with core.request("Generate", Deadline(5), request_id="r-ok") as scope:
        scope.note = "cache hit"
        assert requestlog.current_request_id() == "r-ok"
    with pytest.raises(RenderError), core.request("Generate", Deadline(5), "r-err"):
        raise RenderError("helm: error: bad chart", source="apps/web")
    with pytest.raises(DeadlineExceeded), core.request("Generate", Deadline(0), "r-dl") as s:
        s.deadline.check("rendering web")
    cancelled = Deadline(5)
    cancelled.cancel("client went away")
    with pytest.raises(Cancelled), core.request("Match", cancelled, "r-c"):
        cancelled.check("matching")
    with pytest.raises(KeyError), core.request("Match", Deadline(5), "bad id\n"):
        raise KeyError("a bug holding a value")
    assert requests_total(metrics) == {("Generate", "ok"): 1, ("Generate", "error"): 1,
                                       ("Generate", "deadline"): 1, ("Match", "cancelled"): 1,
                                       ("Match", "error"): 1}
    got = log_lines.getvalue().splitlines()
    assert got[0].startswith("r-ok Generate ok in ") and got[0].endswith(" ms (cache hit)")
    assert got[1].startswith("r-err Generate error in ")
    assert got[1].endswith("apps/web: helm: error: bad chart")
    assert got[2].startswith("r-dl Generate deadline in ")
    assert got[3].endswith("cancelled while matching: client went away")
    # A malformed client id is replaced; a non-kiln error shows its type, never its text.
    rid, rest = got[4].split(" ", 1)
    assert requestlog.is_request_id(rid) and rid != "bad"
    assert rest.startswith("Match error in ") and rest.endswith(": KeyError")
    assert "a bug holding a value" not in log_lines.getvalue()
    assert core.active() == []


def test_drain_waits_for_quick_work(log_lines: io.StringIO) -> None:
    core = ServerCore(1)
    started = threading.Event()

    def request() -> None:
        with core.request("Generate", Deadline(30)), core.gate.slot(Deadline(30)):
            started.set()
            time.sleep(0.3)

    t = threading.Thread(target=request)
    t.start()
    assert started.wait(5)
    assert core.drain(5) is True
    t.join(5)
    with pytest.raises(ServerDraining), core.gate.slot(Deadline(5)):
        pass


def test_a_drain_out_of_patience_cancels_running_requests_and_kills_their_tools(
        tmp_path: Path, log_lines: io.StringIO) -> None:
    metrics = ServerMetrics(process=False)
    core = ServerCore(2, metrics)
    pidfile = tmp_path / "pid"
    errors: list[BaseException] = []

    def request() -> None:
        deadline = Deadline(60)
        try:
            with core.request("Generate", deadline), core.gate.slot(deadline):
                run_tool(["/bin/sh", "-c", f"echo $$ > {pidfile}; sleep 30 & sleep 30"],
                         what="the hung tool", deadline=deadline)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    t = threading.Thread(target=request)
    t.start()
    end = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < end
        time.sleep(0.02)
    pgid = int(pidfile.read_text())
    started = time.monotonic()
    assert core.drain(0.3, grace=5) is True
    assert time.monotonic() - started < 3
    t.join(5)
    assert len(errors) == 1 and isinstance(errors[0], Cancelled)
    assert str(errors[0]) == f"cancelled while running the hung tool: {SHUTDOWN}"
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                members.append(entry.name)
    assert members == []
    assert requests_total(metrics) == {("Generate", "cancelled"): 1}
