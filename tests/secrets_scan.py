"""The plaintext-in-cache scan every secrets test ends with.

``assert_no_plaintext(dirs, values)`` reads every file under ``dirs`` — decompressing kiln cache
entries (zlib after the ``kiln-cache-N`` header), gzip and zlib blobs — and fails if any value
appears raw, base64 or URL-safe base64 (padded or not). The ``plaintext_scan`` fixture collects
values during a test (``scan.add(...)``) and runs the check at teardown over the test's cache
directories (``scan.watch(dir)`` adds more). Import the fixture into a test module to use it:
``from tests.secrets_scan import plaintext_scan``.

A scan that read no kiln cache entry proves nothing, so both insist on one: the fixture fails
unless it scanned at least one entry, except in a test that says it writes none
(``scan.expect_no_entries()``, e.g. a stream on stdin, which is never cached), and
``assert_no_plaintext`` returns the number of entries scanned for the caller to check.
"""

from __future__ import annotations

import base64
import gzip
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from kiln.core.cache.codec import MAGIC as KILN_MAGIC

MIN_LENGTH = 4


def forms(value: str | bytes) -> set[bytes]:
    """The byte strings that would reveal ``value``: raw, base64, URL-safe base64."""
    raw = value.encode() if isinstance(value, str) else value
    out = {raw}
    for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        out |= {enc, enc.rstrip(b"=")}
    return {f for f in out if len(f) >= MIN_LENGTH}


def _blobs(data: bytes) -> Iterator[bytes]:
    yield data
    body = data
    if data.startswith(KILN_MAGIC):
        body = data.split(b"\n", 1)[1] if b"\n" in data else b""
    for decode in (zlib.decompress, gzip.decompress):
        try:
            yield decode(body)
        except (zlib.error, OSError, EOFError):
            continue


def _files(dirs: Iterable[Path]) -> Iterator[Path]:
    for directory in dirs:
        if not Path(directory).exists():
            continue
        for path in sorted(Path(directory).rglob("*")):
            if path.is_file() and not path.is_symlink():
                yield path


def _scan(dirs: Iterable[Path], values: Iterable[str | bytes]) -> tuple[list[str], int]:
    """(hits, number of kiln cache entries among the files scanned)."""
    needles = set().union(*(forms(v) for v in values)) if values else set()
    hits: list[str] = []
    entries = 0
    for path in _files(dirs):
        data = path.read_bytes()
        entries += data.startswith(KILN_MAGIC)
        for blob in _blobs(data):
            hits += [f"{path}: {n!r}" for n in needles if n in blob]
    return hits, entries


def find_plaintext(dirs: Iterable[Path], values: Iterable[str | bytes]) -> list[str]:
    """Return ``file: form`` for every secret form found in any file under ``dirs``."""
    return _scan(dirs, values)[0]


def assert_no_plaintext(dirs: Iterable[Path], values: Iterable[str | bytes]) -> int:
    """Fail naming the file when any secret value (or its base64) is found under ``dirs``.

    Returns how many kiln cache entries were scanned, so a caller can insist there was one.
    """
    hits, entries = _scan(list(dirs), list(values))
    assert not hits, "secret plaintext found on disk:\n" + "\n".join(hits)
    return entries


class PlaintextScan:
    """Values to look for and directories to look in, checked when the test ends."""

    def __init__(self, dirs: Iterable[Path]) -> None:
        self.dirs: list[Path] = list(dirs)
        self.values: set[str] = set()
        self.min_entries = 1
        self.entries = 0

    def add(self, *values: str) -> None:
        """Remember secret values used by the test."""
        self.values.update(v for v in values if v)

    def watch(self, directory: Path) -> None:
        """Scan ``directory`` too."""
        self.dirs.append(directory)

    def expect_no_entries(self) -> None:
        """The test writes no cache entry (e.g. it only resolves a stream): scan anyway."""
        self.min_entries = 0

    def check(self) -> int:
        """Run the scan now (the fixture also runs it at teardown); return the number of cache
        entries scanned, failing when fewer than expected (one, unless told otherwise)."""
        assert self.values, "plaintext scan has no values: the test forgot scan.add(...)"
        self.entries = assert_no_plaintext(self.dirs, self.values)
        assert self.entries >= self.min_entries, (
            f"the plaintext scan read {self.entries} cache entries under "
            f"{[str(d) for d in self.dirs]}: nothing was checked (wrong cache directory?)")
        return self.entries


@pytest.fixture
def plaintext_scan(tmp_path: Path) -> Iterator[PlaintextScan]:
    """Scan the test's cache directories for every value added, after the test body ran."""
    scan = PlaintextScan([tmp_path / "kiln-cache", tmp_path / "xdg-cache"])
    yield scan
    scan.check()
