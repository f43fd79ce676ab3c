"""FsStore scans its directory for eviction only when its running total passes the bound, or
every RESCAN_EVERY puts (other processes write too), and the bound still holds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kiln.core.cache import fs
from kiln.core.cache.fs import FsStore


def _key(i: int) -> str:
    return f"{i:064x}"


def test_puts_below_the_bound_do_not_rescan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    store = FsStore(tmp_path, max_bytes=10_000_000)
    scans = 0
    real = store._entries

    def counted() -> list[tuple[float, int, Path]]:
        nonlocal scans
        scans += 1
        return real()

    monkeypatch.setattr(store, "_entries", counted)
    for i in range(50):
        store.put(_key(i), b"x" * 100)
    assert scans == 1
    assert all(store.get(_key(i)) == b"x" * 100 for i in range(50))


def test_the_bound_holds_when_the_total_passes_it(tmp_path: Path) -> None:
    store = FsStore(tmp_path, max_bytes=20_000)
    for i in range(60):
        store.put(_key(i), os.urandom(1000))
    held = sum(p.stat().st_size for p in (tmp_path / "objects").rglob("*") if p.is_file())
    assert held <= 20_000
    assert store.get(_key(59)) is not None  # the newest entry is kept


def test_another_writer_is_noticed_at_the_next_rescan(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fs, "RESCAN_EVERY", 4)
    mine = FsStore(tmp_path, max_bytes=30_000)
    other = FsStore(tmp_path, max_bytes=10_000_000)
    mine.put(_key(0), os.urandom(1000))
    for i in range(1, 40):
        other.put(_key(i), os.urandom(1000))  # another process fills the directory
    for i in range(40, 46):
        mine.put(_key(i), os.urandom(100))
    held = sum(p.stat().st_size for p in (tmp_path / "objects").rglob("*") if p.is_file())
    assert held <= 30_000 + 6 * 200
