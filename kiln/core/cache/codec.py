"""The byte format of a cache entry, shared by every store.

``kiln-cache-3 <cache key> <seal>`` and a newline, followed by the zlib-compressed payload. The
seal is ``sha256=<hex>`` of ``<cache key>\\n<compressed body>``, or, when the operator set a
cache key (``KILN_CACHE_HMAC_KEY``), ``hmac-sha256=<hex>`` of the same bytes under that key.
Sealing the compressed body is cheaper on every hit than hashing the payload, and zlib's own
checksum covers the decompressed bytes too.

A reader asks for one key and gets the payload only if the entry verifies *and* was written for
that key; anything else raises :class:`Rejected` (a miss for the store): a truncated or flipped
entry, another format, an intact entry copied under another key, an entry without a valid MAC
when a MAC key is set, or one sealed with a MAC when none is.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib

MAGIC = b"kiln-cache-3 "
FAMILY = b"kiln-cache-"
SHA = b"sha256="
MAC = b"hmac-sha256="


class Rejected(Exception):
    """An entry that must not be served. ``corrupt`` entries are damaged and may be dropped;
    the others are intact but not this reader's (another key, another MAC key, another kiln)."""

    def __init__(self, reason: str, *, corrupt: bool = False, quiet: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.corrupt = corrupt
        self.quiet = quiet


def _seal(key: bytes, body: bytes, mac_key: bytes | None) -> bytes:
    if mac_key is None:
        digest = hashlib.sha256(key)
        digest.update(b"\n")
        digest.update(body)
        return SHA + digest.hexdigest().encode()
    mac = hmac.new(mac_key, key + b"\n", hashlib.sha256)
    mac.update(body)
    return MAC + mac.hexdigest().encode()


def encode(key: str, payload: bytes, mac_key: bytes | None = None) -> bytes:
    """Compress ``payload`` and seal it for ``key`` (with an HMAC when ``mac_key`` is given)."""
    body = zlib.compress(payload, 6)
    raw_key = key.encode("ascii")
    return MAGIC + raw_key + b" " + _seal(raw_key, body, mac_key) + b"\n" + body


def decode(key: str, blob: bytes, mac_key: bytes | None = None) -> bytes:
    """Return the payload of ``blob`` if it verifies and was written for ``key``.

    Raises :class:`Rejected` otherwise; its reason names both keys' prefixes on a mismatch.
    """
    header, sep, body = blob.partition(b"\n")
    if not header.startswith(MAGIC):
        if header.startswith(FAMILY):
            raise Rejected("written by another kiln version", quiet=True)
        raise Rejected("not a kiln cache entry", corrupt=True)
    parts = header[len(MAGIC):].split(b" ")
    if not sep or len(parts) != 2:
        raise Rejected("malformed header", corrupt=True)
    written_for, seal = parts
    if seal.startswith(MAC) != (mac_key is not None):
        if mac_key is None:
            raise Rejected("sealed with an HMAC key this kiln does not have")
        raise Rejected("not authenticated (written without the cache HMAC key)")
    if not hmac.compare_digest(_seal(written_for, body, mac_key), seal):
        if mac_key is None:
            raise Rejected("checksum mismatch", corrupt=True)
        raise Rejected("HMAC does not verify (another key, or tampered)")
    if written_for != key.encode("ascii", "replace"):
        shown = written_for[:12].decode("ascii", "replace") if written_for.isalnum() else "?"
        raise Rejected(f"written for key {shown}, not {key[:12]}")
    try:
        return zlib.decompress(body)
    except zlib.error:
        raise Rejected("body does not decompress", corrupt=True) from None
