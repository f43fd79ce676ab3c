"""Content-addressed manifest cache stores."""

from __future__ import annotations

from kiln.core.cache.base import CacheStats, Store
from kiln.core.cache.fs import FsStore

__all__ = ["CacheStats", "FsStore", "Store"]
