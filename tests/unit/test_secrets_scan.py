"""The plaintext scan itself must be able to fail: it finds values raw, base64 and inside
compressed kiln cache entries, and stays quiet when they are absent."""

from __future__ import annotations

import base64
import gzip
import zlib
from pathlib import Path

from tests.secrets_scan import KILN_MAGIC, find_plaintext


def test_scan_finds_every_form(tmp_path: Path) -> None:
    value = "s3cr3t-value-42"
    (tmp_path / "raw.txt").write_text(f"x {value} y")
    (tmp_path / "b64.txt").write_text(base64.b64encode(value.encode()).decode())
    (tmp_path / "url.txt").write_text(base64.urlsafe_b64encode(b"\xff" + value.encode()).decode())
    nested = tmp_path / "objects" / "ab"
    nested.mkdir(parents=True)
    payload = zlib.compress(f'{{"objects": [{{"v": "{value}"}}]}}'.encode())
    (nested / "cdef").write_bytes(KILN_MAGIC + b"0" * 64 + b"\n" + payload)
    (tmp_path / "blob.gz").write_bytes(gzip.compress(value.encode()))
    hits = find_plaintext([tmp_path], [value])
    found = {Path(h.split(": ")[0]).name for h in hits}
    assert found == {"raw.txt", "b64.txt", "cdef", "blob.gz"}
    assert find_plaintext([tmp_path], [b"\xff" + value.encode()])


def test_scan_is_quiet_without_the_value(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("<path:secret/data/app#pw>")
    assert find_plaintext([tmp_path], ["another-value"]) == []
    assert find_plaintext([tmp_path / "missing"], ["another-value"]) == []


def test_scan_counts_cache_entries_and_the_fixture_insists_on_one(tmp_path: Path) -> None:
    import pytest

    from tests.secrets_scan import PlaintextScan, assert_no_plaintext

    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "helm.cfg").write_text("not a cache entry")
    assert assert_no_plaintext([tmp_path], ["some-value"]) == 0
    scan = PlaintextScan([tmp_path])
    scan.add("some-value")
    with pytest.raises(AssertionError, match="read 0 cache entries"):
        scan.check()
    scan.expect_no_entries()
    assert scan.check() == 0
    for name in ("one", "two"):
        (tmp_path / name).write_bytes(KILN_MAGIC + b"0" * 64 + b"\n" + zlib.compress(b"{}"))
    assert assert_no_plaintext([tmp_path], ["some-value"]) == 2
    strict = PlaintextScan([tmp_path])
    strict.add("some-value")
    assert strict.check() == 2
