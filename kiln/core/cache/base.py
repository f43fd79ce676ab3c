"""The interface every cache store implements."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kiln.core.cache.codec import Rejected

log = logging.getLogger("kiln.cache")


@dataclass(frozen=True)
class CacheStats:
    """How much a store holds."""

    entries: int
    bytes: int
    max_bytes: int
    location: str


class Store(Protocol):
    """A key -> bytes store. Keys are sha256 hex strings; values are verified on read."""

    def get(self, key: str) -> bytes | None:
        """Return the stored payload, or None on a miss (including a corrupted entry)."""
        ...

    def put(self, key: str, payload: bytes) -> None:
        """Store ``payload`` under ``key`` atomically; evict old entries beyond the size bound."""
        ...

    def stats(self) -> CacheStats:
        """Return the number of entries and bytes held."""
        ...

    def clear(self) -> int:
        """Remove every entry; return how many were removed."""
        ...

    def gc(self) -> int:
        """Evict least-recently-used entries until under the size bound; return how many."""
        ...


def log_rejected(key: str, exc: Rejected) -> None:
    """Log why the entry under ``key`` was not served (a warning, unless merely outdated)."""
    if exc.corrupt:
        log.warning("cache entry %s is corrupted (%s): removed", key[:12], exc.reason)
    else:
        log.log(logging.INFO if exc.quiet else logging.WARNING,
                "cache entry %s not served: %s (a miss)", key[:12], exc.reason)
