"""The Redis cache store: several kiln replicas (e.g. Argo CD repo-server sidecars) share one cache.

Entries use the same self-verifying format as the filesystem store, under ``kiln:m:<key>``: each
records the key it was written for, so a value copied under another name is a miss, and with
an operator HMAC key (``KILN_CACHE_HMAC_KEY``) only entries sealed with that key are served.
Each entry gets a time-to-live refreshed on every read (24 hours by default, Argo CD's
``repo-cache-expiration``), so unused renders expire; Redis' own ``maxmemory`` policy bounds the
total. Only placeholder-bearing, pre-resolution renders are ever stored, as with every store.

An unreachable Redis is an *outage* (:class:`RedisHealth`): it is logged once when it starts
and once when it ends (not on every request), counted, and for :data:`RETRY_SECONDS` after a
failure the store does not even try (reads are misses, writes are skipped at once), so a
Redis that times out does not add its timeout to every render. :meth:`RedisStore.health` pings
it with a short timeout for a server's ``/readyz``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from kiln.core.cache import codec
from kiln.core.cache.base import CacheStats, log_rejected
from kiln.core.errors import CacheError
from kiln.core.redact import mask_credentials

log = logging.getLogger("kiln.cache")

PREFIX = "kiln:m:"
DEFAULT_TTL = 24 * 3600
RETRY_SECONDS = 1.0
"""After a failure, how long the store (and a lock over its client) skips Redis."""
PING_TIMEOUT = 1.0
"""Seconds :meth:`RedisStore.health` waits for Redis' answer."""


class RedisHealth:
    """Whether Redis answers, shared by a store and the locks over its client (thread-safe).

    :meth:`failed` marks an outage (logged once, at its start, with the error's type only,
    never a URL's password), :meth:`succeeded` ends it (logged once); :meth:`available` says
    whether to try Redis now: always outside an outage, and once per ``retry`` seconds in one.
    ``errors`` counts every failed call, ``outages`` every outage.
    """

    def __init__(self, location: str, *, retry: float = RETRY_SECONDS) -> None:
        self.location = location
        self.retry = retry
        self.errors = 0
        self.outages = 0
        self.last_error: str | None = None
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._lock = threading.Lock()

    @property
    def up(self) -> bool:
        """False from a failure until the next success."""
        return self._down_since is None

    def available(self) -> bool:
        """Whether a call to Redis should be tried now."""
        return self._down_since is None or time.monotonic() >= self._retry_at

    def failed(self, exc: BaseException, doing: str) -> None:
        """Count a failed call (``doing`` says what it was, for the log line)."""
        with self._lock:
            self.errors += 1
            self.last_error = type(exc).__name__
            self._retry_at = time.monotonic() + self.retry
            starts = self._down_since is None
            if starts:
                self._down_since = time.monotonic()
                self.outages += 1
        if starts:
            # A shared cache that is down must not stop rendering: it is only slower.
            log.warning("Redis cache %s unreachable (%s while %s): rendering without it "
                        "until it answers again", self.location, type(exc).__name__, doing)

    def succeeded(self) -> None:
        """Note a call that worked: ends an outage (logged once)."""
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            log.warning("Redis cache %s answers again after %.1fs", self.location,
                        time.monotonic() - since)


class RedisStore:
    """A store in Redis at ``url`` (``redis://host:port/db``, ``rediss://`` for TLS).

    An unreachable Redis makes reads misses and writes no-ops (a warning once per outage,
    see :class:`RedisHealth`), so rendering goes on without the shared cache; ``stats`` and
    ``clear`` raise CacheError.
    """

    def __init__(self, url: str, *, ttl: int = DEFAULT_TTL, timeout: float = 5.0,
                 mac_key: bytes | None = None) -> None:
        try:
            import redis
        except ImportError:
            raise CacheError("a Redis cache needs the redis extra: pip install 'kiln[redis]'",
                             source="KILN_CACHE_URL") from None

        self.url = url
        self.ttl = ttl
        self._mac_key = mac_key
        self._client: Any = redis.Redis.from_url(url, socket_timeout=timeout,
                                                 socket_connect_timeout=timeout)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.status = RedisHealth(mask_credentials(url))
        self._pinger: Any = None

    @property
    def client(self) -> Any:
        """The redis-py client (shared with :func:`kiln.server.distlock.distlock_for`)."""
        return self._client

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        """The exception types a failed Redis call raises."""
        return self._errors

    @property
    def mac_key(self) -> bytes | None:
        """The operator's cache HMAC key, or None."""
        return self._mac_key

    def location(self) -> str:
        """``redis://host:port/db`` (or ``rediss://``, ``unix://path``) without user or
        password, for answers that must never carry a credential."""
        import redis

        pool = self._client.connection_pool
        kwargs = pool.connection_kwargs
        if "path" in kwargs:
            return f"unix://{kwargs['path']}"
        scheme = "rediss" if issubclass(pool.connection_class, redis.SSLConnection) \
            else "redis"
        return f"{scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/" \
               f"{kwargs.get('db', 0)}"

    def health(self) -> dict[str, Any]:
        """``{"ok", "location", "error", "errors", "outages"}`` for a server's ``/readyz``:
        ``ok`` whether Redis answered a PING within :data:`PING_TIMEOUT` seconds just now,
        ``location`` the server without credentials, ``error`` the last failure's type (None
        when up), ``errors``/``outages`` the counts so far. Never raises."""
        ok = False
        try:
            if self._pinger is None:
                import redis

                self._pinger = redis.Redis(connection_pool=redis.ConnectionPool(**{
                    **self._client.connection_pool.connection_kwargs,
                    "socket_timeout": PING_TIMEOUT, "socket_connect_timeout": PING_TIMEOUT,
                }, connection_class=self._client.connection_pool.connection_class))
            ok = bool(self._pinger.ping())
        except self._errors as exc:
            self.status.failed(exc, "answering a health check")
        else:
            self.status.succeeded()
        return {"ok": ok, "location": self.location(),
                "error": None if ok else self.status.last_error,
                "errors": self.status.errors, "outages": self.status.outages}

    def _unavailable(self, exc: BaseException) -> CacheError:
        return CacheError(f"Redis cache unreachable: {type(exc).__name__}",
                          source=mask_credentials(self.url))

    def get(self, key: str) -> bytes | None:
        """Return the verified payload or None; a corrupted entry is deleted."""
        name = PREFIX + key
        if not self.status.available():
            return None
        try:
            pipe = self._client.pipeline()
            pipe.get(name)
            pipe.expire(name, self.ttl)
            blob, _ = pipe.execute()
        except self._errors as exc:
            self.status.failed(exc, "reading an entry")
            return None
        self.status.succeeded()
        if blob is None:
            return None
        try:
            return codec.decode(key, blob, self._mac_key)
        except codec.Rejected as exc:
            if exc.corrupt:
                with contextlib.suppress(*self._errors):
                    self._client.delete(name)
            log_rejected(key, exc)
            return None

    def put(self, key: str, payload: bytes) -> None:
        """Store ``payload`` under ``key`` with the store's time-to-live (skipped while
        Redis is down)."""
        if not self.status.available():
            return
        try:
            self._client.set(PREFIX + key, codec.encode(key, payload, self._mac_key), ex=self.ttl)
        except self._errors as exc:
            self.status.failed(exc, f"writing entry {key[:12]}")
        else:
            self.status.succeeded()

    def _keys(self) -> list[bytes]:
        try:
            return list(self._client.scan_iter(match=PREFIX + "*", count=500))
        except self._errors as exc:
            raise self._unavailable(exc) from None

    def stats(self) -> CacheStats:
        """Count kiln's entries and their bytes."""
        keys = self._keys()
        total = 0
        for key in keys:
            total += int(self._client.strlen(key) or 0)
        return CacheStats(len(keys), total, 0, mask_credentials(self.url))

    def clear(self) -> int:
        """Delete every kiln entry (other keys in the database are left alone)."""
        keys = self._keys()
        if keys:
            self._client.delete(*keys)
        return len(keys)

    def gc(self) -> int:
        """Nothing to do: entries expire by time-to-live and Redis' maxmemory policy."""
        return 0
