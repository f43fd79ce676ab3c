"""SingleFlight: identical concurrent calls run once, share value or error, and waiters keep
their own deadlines."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from kiln.core.deadline import Cancelled, Deadline, DeadlineExceeded
from kiln.core.errors import RenderError, SecretErrors, SecretNotFound
from kiln.server.singleflight import SingleFlight


def wait_until(condition: Callable[[], bool], timeout: float = 5) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.005)


class Calls:
    """A function that counts its runs and blocks until released."""

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.runs = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.value = value
        self.error = error
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            self.runs += 1
        self.started.set()
        assert self.release.wait(10)
        if self.error is not None:
            raise self.error
        return self.value


def spawn(flight: SingleFlight[str, Any], key: str, fn: Callable[[], Any], out: list[Any],
          deadline: Deadline | None = None) -> threading.Thread:
    def target() -> None:
        try:
            out.append(flight.do(key, fn, deadline))
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            out.append(exc)

    t = threading.Thread(target=target)
    t.start()
    return t


def test_concurrent_callers_of_one_key_run_once_and_share_the_value() -> None:
    shared_calls: list[int] = []
    flight: SingleFlight[str, Any] = SingleFlight(on_shared=lambda: shared_calls.append(1))
    value = {"objects": [1, 2, 3]}
    fn = Calls(value)
    out: list[Any] = []
    leader = spawn(flight, "k", fn, out)
    assert fn.started.wait(5)
    waiters = [spawn(flight, "k", fn, out) for _ in range(9)]
    wait_until(lambda: flight.waiting() == 9)
    fn.release.set()
    for t in [leader, *waiters]:
        t.join(10)
    assert fn.runs == 1
    assert len(out) == 10
    assert all(result[0] is value for result in out)
    assert sorted(result[1] for result in out) == [False] + [True] * 9
    assert flight.shared == 9
    assert len(shared_calls) == 9
    assert flight.running() == 0


def test_different_keys_do_not_wait_for_each_other() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    slow = Calls("slow")
    out: list[Any] = []
    t = spawn(flight, "a", slow, out)
    assert slow.started.wait(5)
    assert flight.do("b", lambda: "fast") == ("fast", False)
    slow.release.set()
    t.join(10)
    assert out == [("slow", False)]


def test_the_key_is_forgotten_when_the_leader_finishes() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    runs = iter(range(10))
    assert flight.do("k", lambda: next(runs)) == (0, False)
    assert flight.do("k", lambda: next(runs)) == (1, False)  # no result is kept
    assert flight.shared == 0


def test_waiters_get_the_leaders_error_as_their_own_copy() -> None:
    flight: SingleFlight[str, Any] = SingleFlight()
    error = RenderError("helm: error: chart is broken", source="apps/web")
    fn = Calls(error=error)
    out: list[Any] = []
    leader = spawn(flight, "k", fn, out)
    assert fn.started.wait(5)
    waiters = [spawn(flight, "k", fn, out) for _ in range(3)]
    wait_until(lambda: flight.waiting() == 3)
    fn.release.set()
    for t in [leader, *waiters]:
        t.join(10)
    assert fn.runs == 1
    assert all(type(e) is RenderError for e in out)
    assert {e.one_line() for e in out} == {"apps/web: helm: error: chart is broken"}
    assert sum(e is error for e in out) == 1  # the leader's own; waiters raise copies
    assert flight.shared == 0  # an error is not a shared value


def test_an_error_that_cannot_be_copied_is_still_raised_to_the_waiters() -> None:
    flight: SingleFlight[str, Any] = SingleFlight()
    error = SecretErrors([SecretNotFound("a missing"), SecretNotFound("b missing")])
    fn = Calls(error=error)
    out: list[Any] = []
    leader = spawn(flight, "k", fn, out)
    assert fn.started.wait(5)
    waiter = spawn(flight, "k", fn, out)
    wait_until(lambda: flight.waiting() == 1)
    fn.release.set()
    leader.join(10)
    waiter.join(10)
    assert [type(e) for e in out] == [SecretErrors, SecretErrors]
    assert all(e.details() == ["a missing", "b missing"] for e in out)


def test_a_waiter_whose_deadline_passes_leaves_without_disturbing_the_leader() -> None:
    flight: SingleFlight[str, Any] = SingleFlight()
    fn = Calls("value")
    out: list[Any] = []
    leader = spawn(flight, "k", fn, out)
    assert fn.started.wait(5)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as info:
        flight.do("k", fn, Deadline(0.2, source="test"))
    assert 0.15 < time.monotonic() - started < 2
    assert info.value.one_line() == ("gave up after the 0.2s deadline (test) while waiting for "
                                     "an identical request already in progress")
    assert out == []  # the leader still runs
    fn.release.set()
    leader.join(10)
    assert out == [("value", False)]
    assert fn.runs == 1


def test_cancelling_a_waiter_wakes_it_at_once() -> None:
    flight: SingleFlight[str, Any] = SingleFlight()
    fn = Calls("value")
    out: list[Any] = []
    leader = spawn(flight, "k", fn, out)
    assert fn.started.wait(5)
    deadline = Deadline(None)
    waited: list[Any] = []
    waiter = spawn(flight, "k", fn, waited, deadline)
    wait_until(lambda: flight.waiting() == 1)
    started = time.monotonic()
    deadline.cancel("client went away")
    waiter.join(5)
    assert time.monotonic() - started < 1
    assert isinstance(waited[0], Cancelled)
    fn.release.set()
    leader.join(10)
    assert out == [("value", False)]


def test_a_cancelled_leader_hands_over_instead_of_failing_the_waiters() -> None:
    flight: SingleFlight[str, Any] = SingleFlight()
    leader_deadline = Deadline(60)
    entered = threading.Event()

    def leader_fn() -> str:
        entered.set()
        end = time.monotonic() + 10
        while time.monotonic() < end:  # a render checking its deadline between steps
            leader_deadline.check("rendering web")
            time.sleep(0.01)
        return "leader"

    out: list[Any] = []
    leader = spawn(flight, "k", leader_fn, out, leader_deadline)
    assert entered.wait(5)
    waited: list[Any] = []
    waiter = spawn(flight, "k", lambda: "waiter rendered", waited, Deadline(30))
    wait_until(lambda: flight.waiting() == 1)
    leader_deadline.cancel("client went away")
    leader.join(5)
    waiter.join(5)
    assert isinstance(out[0], Cancelled)
    assert waited == [("waiter rendered", False)]  # it ran the work itself


def test_many_keys_under_load_never_mix_values() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    results: list[tuple[str, str]] = []
    lock = threading.Lock()

    def call(key: str) -> None:
        def fn() -> str:
            time.sleep(0.005)
            return f"value of {key}"

        value, _ = flight.do(key, fn, Deadline(30))
        with lock:
            results.append((key, value))

    threads = [threading.Thread(target=call, args=(f"k{i % 7}",)) for i in range(70)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 70
    assert all(value == f"value of {key}" for key, value in results)
    assert flight.running() == 0
