"""Fingerprints (kiln.diff.fingerprint): HMAC-SHA256 under the operator's key, checked against
the real ``openssl dgst -hmac``; bad key files are one-line errors that never show the key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kiln.core.errors import ConfigError
from kiln.diff.fingerprint import Fingerprinter
from tests.helpers import tool

KEY = "an-operator-key-of-32-characters"


def openssl_hmac(key: str, value: bytes) -> str:
    proc = subprocess.run([tool("openssl"), "dgst", "-sha256", "-hmac", key], input=value,
                          capture_output=True, check=True, timeout=30)
    return proc.stdout.decode().split("= ")[-1].strip()


@pytest.mark.parametrize("value", [b"", b"hunter2", "é-ü".encode(), bytes(range(256))])
def test_fingerprint_is_the_truncated_hmac_openssl_computes(tmp_path: Path,
                                                            value: bytes) -> None:
    keyfile = tmp_path / "key"
    keyfile.write_text(f"  {KEY}\n")  # surrounding whitespace is not part of the key
    fingerprint = Fingerprinter.from_file(str(keyfile))(value)
    assert fingerprint == "hmac-sha256:" + openssl_hmac(KEY, value)[:16]


def test_short_missing_and_oversize_keys_are_errors(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("fifteen-bytes!!\n")
    with pytest.raises(ConfigError) as err:
        Fingerprinter.from_file(str(short))
    line = err.value.one_line()
    assert line.startswith(f"--secret-fingerprint {short}: ") and "16 bytes" in line
    assert "fifteen" not in line
    with pytest.raises(ConfigError) as err:
        Fingerprinter.from_file(str(tmp_path / "absent"))
    assert "cannot read the fingerprint key" in err.value.one_line()
    with pytest.raises(ConfigError):
        Fingerprinter.from_file(str(tmp_path))  # a directory
    big = tmp_path / "big"
    big.write_bytes(b"k" * 5000)
    with pytest.raises(ConfigError, match="over 4096 bytes"):
        Fingerprinter.from_file(str(big))


def test_repr_hides_the_key() -> None:
    assert KEY not in repr(Fingerprinter(KEY.encode()))
