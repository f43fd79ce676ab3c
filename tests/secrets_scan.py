"""The plaintext-in-cache scan every secrets test ends with.

``assert_no_plaintext(dirs, values)`` reads every file under ``dirs`` — decompressing kiln cache
entries (zlib after the ``kiln-cache-N`` header), gzip and zlib blobs — and fails if any value
appears raw, base64 or URL-safe base64 (padded or not). The ``plaintext_scan`` fixture collects
values during a test (``scan.add(...)``) and runs the check at teardown over the test's cache
directories (``scan.watch(dir)`` adds more). Import the fixture into a test module to use it:
``from tests.secrets_scan import plaintext_scan``.
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
    needles = set().union(*(forms(v) for v in values)) if values else set()
    hits: list[str] = []
    scanned = 0
    for path in _files(dirs):
        scanned += 1
        for blob in _blobs(path.read_bytes()):
            hits += [f"{path}: {n!r}" for n in needles if n in blob]
    return hits, scanned


def find_plaintext(dirs: Iterable[Path], values: Iterable[str | bytes]) -> list[str]:
    """Return ``file: form`` for every secret form found in any file under ``dirs``."""
    return _scan(dirs, values)[0]


def assert_no_plaintext(dirs: Iterable[Path], values: Iterable[str | bytes]) -> int:
    """Fail naming the file when any secret value (or its base64) is found under ``dirs``.

    Returns how many files were scanned, so a caller can also insist the cache is not empty.
    """
    hits, scanned = _scan(list(dirs), list(values))
    assert not hits, "secret plaintext found on disk:\n" + "\n".join(hits)
    return scanned


class PlaintextScan:
    """Values to look for and directories to look in, checked when the test ends."""

    def __init__(self, dirs: Iterable[Path]) -> None:
        self.dirs: list[Path] = list(dirs)
        self.values: set[str] = set()

    def add(self, *values: str) -> None:
        """Remember secret values used by the test."""
        self.values.update(v for v in values if v)

    def watch(self, directory: Path) -> None:
        """Scan ``directory`` too."""
        self.dirs.append(directory)

    def check(self) -> None:
        """Run the scan now (the fixture also runs it at teardown)."""
        assert self.values, "plaintext scan has no values: the test forgot scan.add(...)"
        assert_no_plaintext(self.dirs, self.values)


@pytest.fixture
def plaintext_scan(tmp_path: Path) -> Iterator[PlaintextScan]:
    """Scan the test's cache directories for every value added, after the test body ran."""
    scan = PlaintextScan([tmp_path / "kiln-cache", tmp_path / "xdg-cache"])
    yield scan
    scan.check()
