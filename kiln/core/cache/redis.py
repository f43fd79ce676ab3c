"""The Redis cache store: several kiln replicas (e.g. Argo CD repo-server sidecars) share one cache.

Entries use the same self-verifying format as the filesystem store, under ``kiln:m:<key>``: each
records the key it was written for, so a value copied under another name is a miss, and with
an operator HMAC key (``KILN_CACHE_HMAC_KEY``) only entries sealed with that key are served.
Each entry gets a time-to-live refreshed on every read (24 hours by default, Argo CD's
``repo-cache-expiration``), so unused renders expire; Redis' own ``maxmemory`` policy bounds the
total. Only placeholder-bearing, pre-resolution renders are ever stored, as with every store.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from kiln.core.cache import codec
from kiln.core.cache.base import CacheStats, log_rejected
from kiln.core.errors import CacheError
from kiln.core.redact import mask_credentials

log = logging.getLogger("kiln.cache")

PREFIX = "kiln:m:"
DEFAULT_TTL = 24 * 3600


class RedisStore:
    """A store in Redis at ``url`` (``redis://host:port/db``, ``rediss://`` for TLS).

    An unreachable Redis makes reads misses and writes no-ops (with a warning), so rendering
    goes on without the shared cache; ``stats`` and ``clear`` raise CacheError.
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

    def _unavailable(self, exc: BaseException) -> CacheError:
        return CacheError(f"Redis cache unreachable: {type(exc).__name__}",
                          source=mask_credentials(self.url))

    def get(self, key: str) -> bytes | None:
        """Return the verified payload or None; a corrupted entry is deleted."""
        name = PREFIX + key
        try:
            pipe = self._client.pipeline()
            pipe.get(name)
            pipe.expire(name, self.ttl)
            blob, _ = pipe.execute()
        except self._errors as exc:
            # A shared cache that is down must not stop rendering: it is only slower.
            log.warning("Redis cache %s unreachable (%s): rendering without it",
                        mask_credentials(self.url), type(exc).__name__)
            return None
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
        """Store ``payload`` under ``key`` with the store's time-to-live."""
        try:
            self._client.set(PREFIX + key, codec.encode(key, payload, self._mac_key), ex=self.ttl)
        except self._errors as exc:
            log.warning("cannot write cache entry %s: %s", key[:12], type(exc).__name__)

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
