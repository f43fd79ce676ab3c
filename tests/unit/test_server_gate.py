"""The Gate: at most N holders, the rest served in arrival order, deadlines, cancellation, drain."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from kiln.core.deadline import Cancelled, Deadline, DeadlineExceeded
from kiln.core.errors import KilnError
from kiln.server import ServerDraining
from kiln.server.gate import Gate


def wait_until(condition: Callable[[], bool], timeout: float = 5) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.005)


def test_never_more_than_the_limit_hold_a_slot() -> None:
    gate = Gate(3)
    lock = threading.Lock()
    holding = 0
    peak = 0

    def work() -> None:
        nonlocal holding, peak
        with gate.slot(Deadline(30)):
            with lock:
                holding += 1
                peak = max(peak, holding)
            time.sleep(0.01)
            with lock:
                holding -= 1

    threads = [threading.Thread(target=work) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert peak == 3
    assert (gate.in_flight, gate.queued) == (0, 0)


def test_waiters_are_served_in_arrival_order() -> None:
    gate = Gate(1)
    order: list[int] = []
    release = threading.Event()

    def holder() -> None:
        with gate.slot(Deadline(30)):
            release.wait(10)

    first = threading.Thread(target=holder)
    first.start()
    wait_until(lambda: gate.in_flight == 1)

    def waiter(i: int) -> None:
        with gate.slot(Deadline(30)):
            order.append(i)

    threads = []
    for i in range(6):
        t = threading.Thread(target=waiter, args=(i,))
        t.start()
        threads.append(t)
        wait_until(lambda n=i + 1: gate.queued == n)  # type: ignore[misc]
    release.set()
    for t in [first, *threads]:
        t.join(10)
    assert order == [0, 1, 2, 3, 4, 5]


def test_a_waiter_whose_deadline_passes_gives_up_naming_the_load() -> None:
    gate = Gate(2)
    release = threading.Event()
    holders = [threading.Thread(target=lambda: _hold(gate, release)) for _ in range(2)]
    for t in holders:
        t.start()
    wait_until(lambda: gate.in_flight == 2)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as info, gate.slot(Deadline(0.3, source="test")):
        pytest.fail("admitted without a free slot")
    took = time.monotonic() - started
    assert 0.25 < took < 2
    assert type(info.value) is DeadlineExceeded
    assert info.value.one_line() == ("gave up after the 0.3s deadline (test) while waiting for "
                                     "a free render slot (2 in flight, 0 queued)")
    assert gate.queued == 0  # it left the queue
    release.set()
    for t in holders:
        t.join(10)
    assert gate.in_flight == 0


def _hold(gate: Gate, release: threading.Event) -> None:
    with gate.slot(Deadline(30)):
        release.wait(10)


def test_cancelling_a_waiter_wakes_it_at_once() -> None:
    gate = Gate(1)
    release = threading.Event()
    holder = threading.Thread(target=lambda: _hold(gate, release))
    holder.start()
    wait_until(lambda: gate.in_flight == 1)
    deadline = Deadline(None)  # no deadline at all: only the cancellation can end the wait
    box: dict[str, BaseException] = {}

    def waiter() -> None:
        try:
            with gate.slot(deadline):
                pass
        except KilnError as exc:
            box["error"] = exc

    t = threading.Thread(target=waiter)
    t.start()
    wait_until(lambda: gate.queued == 1)
    started = time.monotonic()
    deadline.cancel("client went away")
    t.join(5)
    assert time.monotonic() - started < 1
    assert isinstance(box["error"], Cancelled)
    assert "waiting for a free render slot (1 in flight, 0 queued)" in str(box["error"])
    assert "client went away" in str(box["error"])
    release.set()
    holder.join(10)
    # The cancelled waiter took no slot with it: the gate is whole again.
    with gate.slot(Deadline(1)):
        assert gate.in_flight == 1
    assert gate.in_flight == 0


def test_a_slot_is_released_when_the_block_raises() -> None:
    gate = Gate(1)
    with pytest.raises(RuntimeError), gate.slot(Deadline(5)):
        raise RuntimeError("render failed")
    assert gate.in_flight == 0
    with gate.slot(Deadline(1)) as waited:
        assert waited < 0.5


def test_the_listener_sees_every_change_in_order() -> None:
    seen: list[tuple[int, int]] = []
    gate = Gate(1, on_change=lambda f, q: seen.append((f, q)))
    release = threading.Event()
    holder = threading.Thread(target=lambda: _hold(gate, release))
    holder.start()
    wait_until(lambda: gate.in_flight == 1)
    second = threading.Thread(target=lambda: _hold(gate, release))
    second.start()
    wait_until(lambda: gate.queued == 1)
    release.set()
    holder.join(10)
    second.join(15)
    assert seen == [(1, 0), (1, 1), (1, 0), (0, 0)]


def test_drain_refuses_new_work_and_waits_for_admitted_and_queued_work() -> None:
    gate = Gate(1)
    release = threading.Event()
    done: list[str] = []

    def work(name: str) -> None:
        with gate.slot(Deadline(30)):
            release.wait(10)
            done.append(name)

    running = threading.Thread(target=work, args=("running",))
    running.start()
    wait_until(lambda: gate.in_flight == 1)
    queued = threading.Thread(target=work, args=("queued",))
    queued.start()
    wait_until(lambda: gate.queued == 1)

    assert gate.drain(0.2) is False  # both still there
    assert gate.draining
    with pytest.raises(ServerDraining) as info, gate.slot(Deadline(5)):
        pytest.fail("admitted while draining")
    assert isinstance(info.value, KilnError)
    assert "\n" not in info.value.one_line()

    result: list[bool] = []
    drainer = threading.Thread(target=lambda: result.append(gate.drain(10)))
    drainer.start()
    time.sleep(0.1)
    assert result == []  # still waiting
    release.set()
    drainer.join(10)
    assert result == [True]
    assert done == ["running", "queued"]
    running.join(5)
    queued.join(5)


def test_drain_of_an_idle_gate_returns_at_once() -> None:
    gate = Gate(4)
    started = time.monotonic()
    assert gate.drain(5) is True
    assert time.monotonic() - started < 0.5


def test_a_gate_needs_a_slot() -> None:
    with pytest.raises(ValueError):
        Gate(0)
