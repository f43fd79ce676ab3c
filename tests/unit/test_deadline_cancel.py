"""Cancelling a deadline: it counts as expired, names its reason, and kills the process groups
of the tools running under it (real processes, checked in /proc)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.core.context import RenderContext
from kiln.core.deadline import Cancelled, Deadline, DeadlineExceeded
from kiln.core.errors import ToolError
from kiln.core.tools import ToolVersions, run_tool

SH = "/bin/sh"


def state(pid: int) -> str | None:
    """The process state letter of ``pid`` from /proc (None: no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    """True while ``pid`` runs: os.kill(pid, 0) finds it and it is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return state(pid) not in (None, "Z", "X")


def group_members(pgid: int) -> list[int]:
    """Every live process whose process group is ``pgid`` (field 5 of /proc/PID/stat)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def wait_until(condition: object, timeout: float, what: str) -> float:
    """Poll ``condition()`` until true; the seconds it took (fails after ``timeout``)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"{what} not within {timeout}s")


class Run:
    """``run_tool`` of a shell script in a thread; the script writes its pid (= its group)."""

    def __init__(self, tmp: Path, script: str, deadline: Deadline, *,
                 through_context: bool = False) -> None:
        self.pidfile = tmp / "pid"
        self.error: BaseException | None = None
        self.output: bytes | None = None
        self.ended = threading.Event()
        argv = [SH, "-c", f"echo $$ > {self.pidfile}; {script}"]

        def target() -> None:
            try:
                if through_context:
                    ctx = RenderContext(state_dir=tmp, env={"PATH": os.environ["PATH"]},
                                        tool_versions=ToolVersions(None), deadline=deadline)
                    self.output = ctx.run(argv, what="the test tool", timeout=90)
                else:
                    self.output = run_tool(argv, what="the test tool", timeout=90,
                                           deadline=deadline)
            except BaseException as exc:  # noqa: BLE001 - the test inspects it
                self.error = exc
            finally:
                self.ended.set()

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def started(self, members: int) -> int:
        """Wait until the script runs with ``members`` live processes in its group; the pgid."""
        wait_until(lambda: self.pidfile.exists() and self.pidfile.read_text().strip(), 10,
                   "the script's pid file")
        pgid = int(self.pidfile.read_text())
        wait_until(lambda: len(group_members(pgid)) >= members, 10, "the script's children")
        return pgid


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Process groups to SIGKILL after the test, whatever it asserted."""
    groups: list[int] = []
    yield groups
    import contextlib
    import signal

    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)


def test_cancel_from_another_thread_kills_the_whole_group(tmp_path: Path,
                                                          leftovers: list[int]) -> None:
    deadline = Deadline(60)
    run = Run(tmp_path, "sleep 30 & sleep 30", deadline)
    pgid = run.started(members=3)  # sh, and the two sleeps
    leftovers.append(pgid)
    members = group_members(pgid)
    assert all(alive(pid) for pid in members)
    started = time.monotonic()
    deadline.cancel("the client cancelled the request")
    assert run.ended.wait(5), "run_tool did not return after the cancellation"
    returned = time.monotonic() - started
    wait_until(lambda: not any(alive(pid) for pid in members), 2, "the group's end")
    assert returned < 2
    assert isinstance(run.error, Cancelled), run.error
    assert not isinstance(run.error, ToolError)
    text = run.error.one_line()
    assert text == ("cancelled while running the test tool: the client cancelled the "
                    "request")
    assert group_members(pgid) == []


def test_cancel_escalates_to_sigkill_for_a_group_that_ignores_sigterm(
        tmp_path: Path, leftovers: list[int]) -> None:
    deadline = Deadline(60)
    # SIG_IGN is inherited through exec: the sleeps ignore SIGTERM too.
    run = Run(tmp_path, "trap '' TERM; sleep 30 & sleep 30", deadline)
    pgid = run.started(members=3)
    leftovers.append(pgid)
    members = group_members(pgid)
    deadline.cancel("server stopping")
    took = wait_until(lambda: not any(alive(pid) for pid in members), 4, "the group's end")
    assert 0.5 < took < 3  # the SIGTERM is ignored; the SIGKILL follows about 1 s later
    assert run.ended.wait(5)
    assert isinstance(run.error, Cancelled), run.error
    assert "server stopping" in str(run.error)


def test_deadline_expiry_kills_the_whole_group(tmp_path: Path, leftovers: list[int]) -> None:
    deadline = Deadline(1.5, source="test deadline")
    started = time.monotonic()
    run = Run(tmp_path, "sleep 30 & sleep 30", deadline)
    pgid = run.started(members=3)
    leftovers.append(pgid)
    members = group_members(pgid)
    assert run.ended.wait(6)
    took = time.monotonic() - started
    wait_until(lambda: not any(alive(pid) for pid in members), 2, "the group's end")
    assert 1.4 < took < 4
    assert type(run.error) is DeadlineExceeded, run.error
    assert run.error.one_line() == ("gave up after the 1.5s deadline (test deadline) while "
                                    "running the test tool")


def test_render_context_run_passes_its_deadline(tmp_path: Path,
                                                leftovers: list[int]) -> None:
    deadline = Deadline(60)
    run = Run(tmp_path, "sleep 30 & sleep 30", deadline, through_context=True)
    pgid = run.started(members=3)
    leftovers.append(pgid)
    members = group_members(pgid)
    deadline.cancel("drain timed out")
    assert run.ended.wait(5)
    wait_until(lambda: not any(alive(pid) for pid in members), 2, "the group's end")
    assert isinstance(run.error, Cancelled), run.error
    assert "running the test tool" in str(run.error)


def test_a_cancelled_deadline_starts_no_tool(tmp_path: Path) -> None:
    deadline = Deadline(60)
    deadline.cancel("gone")
    marker = tmp_path / "ran"
    with pytest.raises(Cancelled, match="gone"):
        run_tool([SH, "-c", f"touch {marker}"], what="the test tool", deadline=deadline)
    assert not marker.exists()


def test_a_tool_that_ends_in_time_is_untouched(tmp_path: Path) -> None:
    deadline = Deadline(30)
    out = run_tool([SH, "-c", "echo hello"], what="echo", deadline=deadline)
    assert out == b"hello\n"
    # Nothing stays registered: a later cancel has no tool to kill and calls nothing.
    assert deadline._callbacks == {}


def test_a_tool_failure_under_a_deadline_stays_a_tool_error() -> None:
    with pytest.raises(ToolError, match="sh: error: broken"):
        run_tool([SH, "-c", "echo 'error: broken' >&2; exit 3"], what="x",
                 deadline=Deadline(30))


def test_the_tool_timeout_without_a_deadline_is_still_a_tool_error() -> None:
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"sh timed out after 0.5s"):
        run_tool([SH, "-c", "sleep 30"], what="x", timeout=0.5)
    assert time.monotonic() - started < 3


# -- the Deadline itself ---------------------------------------------------------------------

def test_cancel_makes_the_deadline_expired_and_check_raise() -> None:
    deadline = Deadline(None)
    assert not deadline.expired()
    assert deadline.remaining() == float("inf")
    assert deadline.wait_timeout() is None
    deadline.cancel("client\nwent away")
    deadline.cancel("a second reason")  # ignored: the first one stands
    assert deadline.expired()
    assert deadline.remaining() == 0
    assert deadline.wait_timeout() == 0
    assert deadline.cancelled == "client went away"
    with pytest.raises(Cancelled) as info:
        deadline.check("resolving secrets (vault)")
    assert isinstance(info.value, DeadlineExceeded)
    assert info.value.one_line() == ("cancelled while resolving secrets (vault): client went "
                                     "away")
    assert "\n" not in str(info.value)


def test_on_cancel_runs_each_callback_once_and_unregisters() -> None:
    deadline = Deadline(60)
    calls: list[str] = []
    deadline.on_cancel(lambda: calls.append("a"))
    stop_b = deadline.on_cancel(lambda: calls.append("b"))
    stop_b()
    stop_b()  # twice is fine

    def broken() -> None:
        raise RuntimeError("boom")

    deadline.on_cancel(broken)
    deadline.on_cancel(lambda: calls.append("c"))
    threads = [threading.Thread(target=deadline.cancel, args=(f"r{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["a", "c"]
    # Registered after the cancellation: runs at once.
    deadline.on_cancel(lambda: calls.append("late"))
    assert calls == ["a", "c", "late"]


def test_from_remaining_keeps_a_margin_and_obeys_the_cap() -> None:
    d = Deadline.from_remaining(10.0, source="gRPC deadline")
    assert 9.8 < d.remaining() <= 9.9
    assert d.seconds == pytest.approx(9.9)
    assert d.source == "gRPC deadline"
    assert Deadline.from_remaining(10.0, margin=2.0).seconds == pytest.approx(8.0)
    assert Deadline.from_remaining(100.0, cap=55.0).seconds == 55.0
    assert Deadline.from_remaining(0.05).expired()  # less than the margin left
    assert Deadline.from_remaining(None).seconds is None
    assert Deadline.from_remaining(None, cap=55.0).seconds == 55.0
    assert Deadline.from_remaining(None, cap=55.0, default=30.0).seconds == 30.0
    assert Deadline.from_remaining(float("inf")).seconds is None
    with pytest.raises(ValueError):
        Deadline.from_remaining(float("nan"))
