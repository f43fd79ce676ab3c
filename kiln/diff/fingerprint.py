"""Opt-in fingerprints of masked values: an HMAC under a key only the operator holds.

``kiln diff --secret-fingerprint KEYFILE`` prints, beside each masked key, ``hmac-sha256:``
and the first 16 hex digits of HMAC-SHA256(key, value) — the value's bytes as the cluster
stores them (a Secret's ``data`` decoded from base64). Two environments diffed with the same
key show the same fingerprint for the same value, without revealing it, and an operator can
check one by hand: ``printf %s "$VALUE" | openssl dgst -sha256 -hmac "$(cat KEYFILE)"``.

A fingerprint does reveal when two values are equal (across keys, objects and runs), to whoever
reads the output: that is what the operator asks for by passing the flag. 64 bits of a keyed
MAC reveal nothing of a value's length or content without the key.
"""

from __future__ import annotations

import hashlib
import hmac

from kiln.core.errors import ConfigError

PREFIX = "hmac-sha256:"
HEX_DIGITS = 16
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 4096


class Fingerprinter:
    """``fingerprinter(value_bytes) -> "hmac-sha256:<16 hex>"`` under one key."""

    def __init__(self, key: bytes, *, source: str = "--secret-fingerprint") -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"the fingerprint key is shorter than {MIN_KEY_BYTES} bytes "
                              "(make one with e.g. `openssl rand -hex 32`)", source=source)
        self._key = key

    @classmethod
    def from_file(cls, path: str) -> Fingerprinter:
        """The key held in the file ``path`` (surrounding whitespace ignored, at most 4 KiB).

        Raises ConfigError naming the flag and file, never the key, when the file cannot be
        read, is too large, or holds fewer than 16 bytes.
        """
        source = f"--secret-fingerprint {path}"
        try:
            with open(path, "rb") as handle:
                key = handle.read(MAX_KEY_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read the fingerprint key: {exc.strerror or exc}",
                              source=source) from None
        if len(key) > MAX_KEY_BYTES:
            raise ConfigError(f"the fingerprint key file is over {MAX_KEY_BYTES} bytes",
                              source=source)
        return cls(key.strip(), source=source)

    def __call__(self, value: bytes) -> str:
        """The fingerprint of ``value``: ``hmac-sha256:`` and 16 lowercase hex digits."""
        digest = hmac.new(self._key, value, hashlib.sha256).hexdigest()
        return PREFIX + digest[:HEX_DIGITS]

    def __repr__(self) -> str:
        return "Fingerprinter(<key>)"
