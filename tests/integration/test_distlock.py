"""The cluster-wide render lock against a real redis-server: contention between threads and
processes, expiry after a holder is killed, Redis dying mid-wait, deadlines and cancellation."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from kiln.core.cache.fs import FsStore
from kiln.core.cache.redis import RedisStore
from kiln.core.deadline import Cancelled, Deadline, DeadlineExceeded
from kiln.server.distlock import PREFIX, RedisLock, distlock_for
from tests.servers import free_port, redis_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def lock_over(url: str, **options: float) -> RedisLock:
    lock = distlock_for(RedisStore(url, timeout=2.0))
    assert isinstance(lock, RedisLock)
    for name, value in options.items():
        setattr(lock, name, value)
    return lock


def holder_process(url: str, key: str, *, ttl: float, hold: float) -> subprocess.Popen[str]:
    """A separate Python process that takes the lock, says "held", holds it ``hold`` seconds
    (forever when negative), and exits."""
    code = textwrap.dedent(f"""
        import sys, time
        from kiln.core.cache.redis import RedisStore
        from kiln.core.deadline import Deadline
        from kiln.server.distlock import distlock_for
        lock = distlock_for(RedisStore({url!r}))
        lock.ttl = {ttl!r}
        with lock.hold({key!r}, Deadline(30)) as held:
            print("held" if held else "not held", flush=True)
            time.sleep({hold!r} if {hold!r} >= 0 else 3600)
        print("released", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_two_threads_one_holds_the_other_waits_then_enters_false(redis_url: str) -> None:
    first, second = lock_over(redis_url), lock_over(redis_url)
    events: list[tuple[str, bool, float]] = []
    entered = threading.Event()

    def hold_a_while() -> None:
        with first.hold("app-key", Deadline(10)) as held:
            events.append(("first", held, time.monotonic()))
            entered.set()
            time.sleep(0.6)
            events.append(("first-out", held, time.monotonic()))

    thread = threading.Thread(target=hold_a_while)
    thread.start()
    assert entered.wait(5)
    with second.hold("app-key", Deadline(10)) as held:
        events.append(("second", held, time.monotonic()))
    thread.join(5)
    names = [(name, held) for name, held, _ in events]
    assert names == [("first", True), ("first-out", True), ("second", False)]
    assert events[2][2] >= events[1][2]  # the waiter entered only after the holder left
    assert first.counts["held"] == 1 and second.counts["waited"] == 1
    # released: the next caller holds it at once
    with second.hold("app-key", Deadline(10)) as held:
        assert held


def test_other_keys_do_not_wait(redis_url: str) -> None:
    lock = lock_over(redis_url)
    with lock.hold("one", Deadline(10)) as one:
        started = time.monotonic()
        with lock.hold("two", Deadline(10)) as two:
            assert one and two
        assert time.monotonic() - started < 1.0


def test_two_processes_contend(redis_url: str) -> None:
    proc = holder_process(redis_url, "shared-key", ttl=30.0, hold=1.0)
    try:
        started = time.monotonic()
        with lock_over(redis_url).hold("shared-key", Deadline(20)) as held:
            waited = time.monotonic() - started
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "released"
        assert held is False
        assert 0.3 < waited < 10
    finally:
        proc.kill()
        proc.wait(10)


def test_a_killed_holders_lock_expires_within_its_ttl(redis_url: str) -> None:
    ttl = 2.0
    proc = holder_process(redis_url, "orphan-key", ttl=ttl, hold=-1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    killed = time.monotonic()
    lock = lock_over(redis_url)
    with lock.hold("orphan-key", Deadline(20)) as held:
        waited = time.monotonic() - killed
    assert held is False
    assert waited <= ttl + 0.5
    assert lock.counts["waited"] == 1


def test_the_lock_is_refreshed_while_held(redis_url: str) -> None:
    lock = lock_over(redis_url, ttl=0.6)
    client = redis.Redis.from_url(redis_url)
    with lock.hold("long-render", Deadline(10)) as held:
        assert held
        time.sleep(1.5)  # well past the ttl: only the refresher keeps it
        assert client.pttl(lock.name_for("long-render")) > 0
    assert not client.exists(lock.name_for("long-render"))


def test_release_never_deletes_another_holders_lock(redis_url: str) -> None:
    lock = lock_over(redis_url, ttl=0.3, max_hold=0.05)  # refreshing stops at once
    client = redis.Redis.from_url(redis_url)
    name = lock.name_for("taken-over")
    with lock.hold("taken-over", Deadline(10)) as held:
        assert held
        time.sleep(0.8)  # expired
        assert client.set(name, "someone-else", nx=True, px=10_000)
    assert client.get(name) == b"someone-else"
    client.delete(name)


def test_lock_names_are_hashed_and_namespaced(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    secret_request = "git\0https://example.com/private-repo\0apps/payroll"
    with lock_over(redis_url).hold(secret_request, Deadline(10)) as held:
        assert held
        names = [n.decode() for n in client.scan_iter(match=PREFIX + "*")]
    assert len(names) == 1
    digest = names[0][len(PREFIX):]
    assert len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
    assert "payroll" not in names[0] and "example.com" not in names[0]
    # with the operator's HMAC key the names differ from the default ones
    keyed = RedisLock(client, secret=b"0123456789abcdef-operator")
    assert keyed.name_for(secret_request) != PREFIX + digest


def test_deadline_while_waiting_is_a_deadline_error(redis_url: str) -> None:
    proc = holder_process(redis_url, "slow-key", ttl=30.0, hold=-1)
    try:
        lock = lock_over(redis_url)
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="another replica"), \
                lock.hold("slow-key", Deadline(0.5)):
            pytest.fail("entered while another process holds the lock")
        assert time.monotonic() - started < 2.0
        deadline = Deadline(30)
        threading.Timer(0.3, deadline.cancel, args=("the client went away",)).start()
        started = time.monotonic()
        with pytest.raises(Cancelled, match="client went away"), \
                lock.hold("slow-key", deadline):
            pytest.fail("entered after a cancel")
        assert time.monotonic() - started < 1.5
    finally:
        proc.kill()
        proc.wait(10)


def test_redis_killed_mid_wait_the_waiter_proceeds(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        proc = holder_process(url, "doomed", ttl=30.0, hold=-1)
        try:
            lock = lock_over(url)
            outcome: list[bool] = []

            def wait() -> None:
                with lock.hold("doomed", Deadline(30)) as held:
                    outcome.append(held)

            waiter = threading.Thread(target=wait)
            waiter.start()
            time.sleep(0.5)
            assert outcome == []  # still waiting
            redis_pid = int(redis.Redis.from_url(url).info("server")["process_id"])
            os.kill(redis_pid, signal.SIGKILL)
            killed = time.monotonic()
            waiter.join(10)
            assert outcome == [False]
            assert time.monotonic() - killed < 5
            assert lock.counts["unavailable"] == 1
            assert lock.health.errors >= 1 and not lock.health.up
        finally:
            proc.kill()
            proc.wait(10)


def test_redis_down_enters_at_once_counted_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    lock = lock_over(f"redis://127.0.0.1:{free_port()}/0")
    lock.health.retry = 0.0  # try Redis every time: each try fails
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            started = time.monotonic()
            with lock.hold("any", Deadline(10)) as held:
                assert held is False
            assert time.monotonic() - started < 1.0
    assert lock.counts == {"held": 0, "waited": 0, "unavailable": 5}
    assert lock.health.errors == 5 and lock.health.outages == 1
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1


def test_an_expired_deadline_raises_before_touching_redis(redis_url: str) -> None:
    lock = lock_over(redis_url)
    deadline = Deadline(0)
    with pytest.raises(DeadlineExceeded), lock.hold("k", deadline):
        pytest.fail("entered with an expired deadline")
    assert lock.counts == {"held": 0, "waited": 0, "unavailable": 0}


def test_distlock_for_other_stores_is_none(tmp_path: Path) -> None:
    assert distlock_for(None) is None
    assert distlock_for(FsStore(tmp_path)) is None


def test_the_documented_acl_is_enough(redis_url: str) -> None:
    admin = redis.Redis.from_url(redis_url)
    acl = Path(ROOT / "docs" / "replicas.md").read_text()
    line = next(ln for ln in acl.splitlines() if ln.startswith("ACL SETUSER kiln "))
    admin.execute_command(*line.split())
    try:
        host_port = redis_url.removeprefix("redis://")
        url = f"redis://kiln:CHANGE-ME@{host_port}"
        proc = holder_process(url, "acl-key", ttl=30.0, hold=0.5)
        try:
            lock = lock_over(url, ttl=0.6)
            with lock.hold("acl-key", Deadline(10)) as held:
                assert held is False
            with lock.hold("acl-key", Deadline(10)) as held:
                assert held
                time.sleep(0.5)  # one refresh
            assert lock.counts == {"held": 1, "waited": 1, "unavailable": 0}
            assert lock.health.errors == 0 and lock.lost == 0
            health = RedisStore(url).health()
            assert health["ok"] is True
        finally:
            proc.kill()
            proc.wait(10)
    finally:
        admin.execute_command("ACL", "DELUSER", "kiln")
