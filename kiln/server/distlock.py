"""Single-flight across replicas: a cluster-wide lock per request, in the shared Redis.

Several ``kiln serve`` processes over one Redis cache behave as one when identical requests
arrive at several of them at once: the replica that takes the lock renders (and stores the
result in the shared cache); the others wait until the lock is released (or expires, or their
own deadline passes) and then render too, which is normally a cache hit on what the first one
stored. The lock only saves work: correctness never depends on it (two replicas that both
render write the same content-addressed entry).

:class:`RedisLock` is ``SET <name> <token> NX PX <ttl>``: the holder's random token is the
value, a daemon thread refreshes the expiry every third of the time-to-live while the block
runs (for at most ``max_hold`` seconds, so a stuck holder cannot keep it forever), and release
deletes the key only if it still holds the holder's token (a compare-and-delete Lua script),
so a holder whose lock expired never releases another's. A waiter polls with a backoff from
10 ms to 200 ms; a holder that dies (``kill -9``) stops refreshing and its lock expires within
the time-to-live. The key name is ``kiln:l:`` and an HMAC-SHA256 of the request key (under
the operator's cache HMAC key when set): no request value is ever in Redis in clear.

Redis down or failing: :meth:`RedisLock.hold` enters at once with False (the caller renders
locally), counts it (``unavailable``) and shares the store's :class:`RedisHealth`, so the
outage is logged once, not per request, and for a second after a failure Redis is not even
tried. A waiter's Redis failing mid-wait ends the wait the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kiln.core.cache.base import Store
    from kiln.core.cache.redis import RedisHealth
    from kiln.core.deadline import Deadline
    from kiln.server.lifecycle import ServerCore

log = logging.getLogger("kiln.server")

PREFIX = "kiln:l:"
"""The namespace of lock keys in Redis (a Redis ACL can confine kiln to it)."""
DEFAULT_TTL = 30.0
"""Seconds a lock lives without a refresh (how long a dead holder blocks the others)."""
MAX_HOLD = 600.0
"""Seconds a holder keeps refreshing at most; a waiter waits at most this plus the ttl."""
POLL_MIN = 0.01
POLL_MAX = 0.2
WAITING = "waiting for another replica rendering the same request"
"""What a waiter's DeadlineExceeded names as pending."""
OUTCOMES = ("held", "waited", "unavailable")
"""How a :meth:`RedisLock.hold` entered: it held the lock, it waited for another replica's,
or Redis was unavailable (entered at once)."""

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_NAME_KEY = b"kiln-distlock-1"


class DistLock(Protocol):
    """A cluster-wide lock per request key."""

    def hold(self, key: str, deadline: Deadline) -> AbstractContextManager[bool]:
        """Hold the cluster-wide lock `key` for the block: True once held; when another
        replica holds it, wait (until it is released or expires, or the deadline) and then
        enter with False (the caller then renders, normally a cache hit). Redis down: enter at
        once with False, counted and logged once."""
        ...


class RedisLock:
    """:class:`DistLock` over a redis-py ``client``; ``health`` is the store's outage state
    (a fresh one when None), ``errors`` the exception types a failed call raises, ``secret``
    the key names are hashed with (the operator's cache HMAC key; None: a fixed one).

    ``counts`` holds how many holds entered each way (:data:`OUTCOMES`), and ``lost`` how
    many held locks were found taken over (expired) at a refresh or release."""

    def __init__(self, client: Any, *, health: RedisHealth | None = None,
                 errors: tuple[type[BaseException], ...] | None = None,
                 secret: bytes | None = None, ttl: float = DEFAULT_TTL,
                 max_hold: float = MAX_HOLD, poll: tuple[float, float] = (POLL_MIN, POLL_MAX),
                 prefix: str = PREFIX) -> None:
        if ttl <= 0 or max_hold <= 0 or not 0 < poll[0] <= poll[1]:
            raise ValueError("ttl, max_hold and poll must be positive (poll: min <= max)")
        if health is None:
            from kiln.core.cache.redis import RedisHealth

            health = RedisHealth("Redis")
        if errors is None:
            import redis

            errors = (redis.RedisError, OSError)
        self._client = client
        self.health = health
        self._errors = errors
        self._secret = secret or _NAME_KEY
        self.ttl = ttl
        self.max_hold = max_hold
        self._poll = poll
        self._prefix = prefix
        self._release = client.register_script(_RELEASE)
        self._refresh = client.register_script(_REFRESH)
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.lost = 0

    def name_for(self, key: str) -> str:
        """The Redis key of the lock for request key ``key`` (the key itself is not in it)."""
        digest = hmac.new(self._secret, key.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return self._prefix + digest.hexdigest()

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.counts[outcome] += 1

    @contextlib.contextmanager
    def hold(self, key: str, deadline: Deadline) -> Iterator[bool]:
        """See :meth:`DistLock.hold`. Raises the deadline's DeadlineExceeded (Cancelled)
        naming the wait when it passes (or is cancelled) while another replica holds it."""
        if deadline.expired():
            raise deadline.error(WAITING)
        name = self.name_for(key)
        token = secrets.token_hex(16)
        held = self._acquire(name, token)
        if held is None:
            self._count("unavailable")
            yield False
            return
        if not held:
            entered = self._wait(name, deadline)
            self._count(entered)
            yield False
            return
        self._count("held")
        stop = threading.Event()
        refresher = threading.Thread(target=self._keep, args=(name, token, stop),
                                     name="kiln-distlock-refresh", daemon=True)
        refresher.start()
        try:
            yield True
        finally:
            stop.set()
            refresher.join(timeout=1.0)
            self._let_go(name, token)

    def _acquire(self, name: str, token: str) -> bool | None:
        """True when this call took the lock, False when another holds it, None when Redis
        is unavailable."""
        if not self.health.available():
            return None
        try:
            taken = self._client.set(name, token, nx=True, px=int(self.ttl * 1000))
        except self._errors as exc:
            self.health.failed(exc, "taking a render lock")
            return None
        self.health.succeeded()
        return bool(taken)

    def _wait(self, name: str, deadline: Deadline) -> str:
        """Wait until the lock ``name`` is free; return the outcome to count. Raises the
        deadline's error when it passes first."""
        wake = threading.Event()
        unregister = deadline.on_cancel(wake.set)
        give_up = time.monotonic() + self.max_hold + self.ttl
        delay = self._poll[0]
        try:
            while True:
                if deadline.expired():
                    raise deadline.error(WAITING)
                try:
                    exists = self._client.exists(name)
                except self._errors as exc:
                    self.health.failed(exc, "waiting for a render lock")
                    return "unavailable"
                self.health.succeeded()
                if not exists or time.monotonic() >= give_up:
                    return "waited"
                left = deadline.wait_timeout()
                wake.wait(delay if left is None else min(delay, left))
                delay = min(delay * 2, self._poll[1])
        finally:
            unregister()

    def _keep(self, name: str, token: str, stop: threading.Event) -> None:
        """Refresh the lock every third of its ttl until ``stop`` or ``max_hold`` seconds."""
        until = time.monotonic() + self.max_hold
        ttl_ms = int(self.ttl * 1000)
        while not stop.wait(self.ttl / 3):
            if time.monotonic() >= until:
                log.warning("render lock held over %gs: no longer refreshed", self.max_hold)
                return
            try:
                kept = self._refresh(keys=[name], args=[token, ttl_ms])
            except self._errors as exc:
                self.health.failed(exc, "refreshing a render lock")
                continue
            self.health.succeeded()
            if not kept:
                with self._lock:
                    self.lost += 1
                log.info("render lock expired before it was refreshed")
                return

    def _let_go(self, name: str, token: str) -> None:
        """Delete the lock if it still holds ``token`` (never another holder's)."""
        try:
            self._release(keys=[name], args=[token])
        except self._errors as exc:
            self.health.failed(exc, "releasing a render lock")  # it expires by itself
        else:
            self.health.succeeded()


def distlock_for(store: Store | None) -> DistLock | None:
    """A :class:`RedisLock` over ``store``'s Redis client, sharing its health and HMAC key,
    when ``store`` is a Redis store; None for any other store (a single replica's own
    single-flight is enough)."""
    from kiln.core.cache.redis import RedisStore

    if not isinstance(store, RedisStore):
        return None
    return RedisLock(store.client, health=store.status, errors=store.errors,
                     secret=store.mac_key)


def install_distlock(core: ServerCore, store: Store | None) -> DistLock | None:
    """Give ``core`` the cluster-wide lock over ``store`` (:func:`distlock_for`; None, and
    nothing changes, for a store that is not Redis), with its metrics
    (:class:`RedisCollector`) in ``core``'s metrics registry; return it. Call once per server,
    before it serves."""
    lock = distlock_for(store)
    if lock is None:
        return None
    core.distlock = lock
    if core.metrics is not None and isinstance(lock, RedisLock):
        core.metrics.registry.register(RedisCollector(lock))
    return lock


class RedisCollector:
    """Prometheus metrics of a :class:`RedisLock` and the Redis health it shares with its
    store, read when scraped; register it with ``registry.register(RedisCollector(lock))``:

    =================================  =======  ===========================================
    ``kiln_redis_up``                  gauge    1 while Redis answers, 0 during an outage
    ``kiln_redis_errors_total``        counter  failed calls to Redis (cache and lock)
    ``kiln_redis_outages_total``       counter  outages (a failure after a success)
    ``kiln_distlock_total``            counter  ``outcome``: held, waited, unavailable
    ``kiln_distlock_lost_total``       counter  held locks that expired before release
    =================================  =======  ===========================================
    """

    def __init__(self, lock: RedisLock) -> None:
        self._lock = lock

    def collect(self) -> Iterator[Any]:
        """The current values (prometheus_client's custom collector protocol)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        lock = self._lock
        health = lock.health
        yield GaugeMetricFamily("kiln_redis_up", "Whether the shared Redis answers.",
                                value=1.0 if health.up else 0.0)
        yield CounterMetricFamily("kiln_redis_errors", "Failed calls to the shared Redis.",
                                  value=health.errors)
        yield CounterMetricFamily("kiln_redis_outages", "Outages of the shared Redis.",
                                  value=health.outages)
        holds = CounterMetricFamily("kiln_distlock", "Cluster-wide render locks by how they "
                                    "were entered.", labels=("outcome",))
        for outcome in OUTCOMES:
            holds.add_metric((outcome,), lock.counts[outcome])
        yield holds
        yield CounterMetricFamily("kiln_distlock_lost", "Held render locks that expired "
                                  "before they were released.", value=lock.lost)
