"""The interface every cache store implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
