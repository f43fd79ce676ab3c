"""The filesystem cache store: one compressed, self-verifying file per key.

Layout follows Kapitan's content-addressed style: ``objects/ab/cdef…`` (a two-character prefix
directory). Each file is one entry in the format of :mod:`kiln.core.cache.codec`, sealed for
its key (and with an HMAC under the operator's key when one is set). Writes go to a temp file
in the same directory and are renamed into place, so readers never see half an entry. A read
that fails verification is a miss, logged: a damaged entry is removed, an intact one written for
another key (or without the right MAC) is left to be overwritten by the fresh render. Reads
refresh the file's mtime, which eviction uses as "last used".
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path

from kiln.core.cache import codec
from kiln.core.cache.base import CacheStats, log_rejected
from kiln.core.errors import CacheError

log = logging.getLogger("kiln.cache")

DEFAULT_MAX_BYTES = 1 << 30
RESCAN_EVERY = 256
"""Puts after which the directory is scanned again even below the bound (other writers)."""


class FsStore:
    """A size-bounded, content-addressed store under ``directory/objects``."""

    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES, *,
                 mac_key: bytes | None = None) -> None:
        self.directory = Path(directory)
        self.objects = self.directory / "objects"
        self.max_bytes = max_bytes
        self._mac_key = mac_key
        # The bytes held, as of the last scan plus what this process wrote since: a put scans
        # the directory only when that passes the bound or every RESCAN_EVERY puts (other
        # processes write too), not on every write (a server writes thousands).
        self._lock = threading.Lock()
        self._total: int | None = None
        self._puts_since_scan = 0

    def _path(self, key: str) -> Path:
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise CacheError(f"invalid cache key {key!r}")
        return self.objects / key[:2] / key[2:]

    def get(self, key: str) -> bytes | None:
        """Return the verified payload for ``key`` or None (a corrupted entry is dropped)."""
        path = self._path(key)
        try:
            with open(path, "rb") as handle:
                blob = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cache entry %s unreadable (%s): treating as a miss", key[:12], exc)
            return None
        try:
            payload = codec.decode(key, blob, self._mac_key)
        except codec.Rejected as exc:
            if exc.corrupt:
                self._remove(path)
            log_rejected(key, exc)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)
        return payload

    def put(self, key: str, payload: bytes) -> None:
        """Write ``payload`` atomically under ``key``, then evict if over the size bound."""
        import tempfile

        path = self._path(key)
        blob = codec.encode(key, payload, self._mac_key)
        try:
            if not path.parent.is_dir():
                # Only kiln's user may list or add entries (files are mkstemp's 0600).
                self.objects.mkdir(mode=0o700, parents=True, exist_ok=True)
                path.parent.mkdir(mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(blob)
                os.replace(tmp, path)
            except BaseException:
                self._remove(Path(tmp))
                raise
        except OSError as exc:
            log.warning("cannot write cache entry %s: %s", key[:12], exc)
            return
        if self.max_bytes and len(blob) <= self.max_bytes:
            with self._lock:
                estimate = None if self._total is None else self._total + len(blob)
                if (estimate is None or estimate > self.max_bytes
                        or self._puts_since_scan >= RESCAN_EVERY):
                    self._total = self._evict(keep=path)[1]
                    self._puts_since_scan = 0
                else:
                    self._total = estimate
                    self._puts_since_scan += 1

    def _entries(self) -> list[tuple[float, int, Path]]:
        found: list[tuple[float, int, Path]] = []
        if not self.objects.is_dir():
            return found
        for prefix in os.scandir(self.objects):
            if not prefix.is_dir():
                continue
            for entry in os.scandir(prefix.path):
                if entry.name.startswith(".tmp-"):
                    continue
                try:
                    st = entry.stat()
                except OSError:
                    continue
                found.append((st.st_mtime, st.st_size, Path(entry.path)))
        return found

    def _evict(self, keep: Path | None = None) -> tuple[int, int]:
        """Remove the least recently used entries until the bound holds; (removed, bytes
        left)."""
        entries = self._entries()
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, path in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            self._remove(path)
            total -= size
            removed += 1
        if removed:
            log.info("cache: evicted %d entries to stay under %d bytes", removed, self.max_bytes)
        return removed, total

    @staticmethod
    def _remove(path: Path) -> None:
        with contextlib.suppress(OSError):
            path.unlink()

    def stats(self) -> CacheStats:
        """Return entry count and bytes on disk."""
        entries = self._entries()
        return CacheStats(len(entries), sum(s for _, s, _ in entries), self.max_bytes,
                          str(self.directory))

    def clear(self) -> int:
        """Remove every entry."""
        import shutil

        count = len(self._entries())
        shutil.rmtree(self.objects, ignore_errors=True)
        with self._lock:
            self._total = None
        return count

    def gc(self) -> int:
        """Evict least-recently-used entries until under the bound."""
        removed, total = self._evict()
        with self._lock:
            self._total = total
        return removed
