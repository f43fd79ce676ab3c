"""The byte format of a cache entry, shared by every store.

``kiln-cache-2 <sha256 of the compressed body>`` and a newline, followed by the
zlib-compressed payload. Hashing the compressed body is cheaper on every hit than hashing the
payload, and zlib's own checksum covers the decompressed bytes too. A reader that finds
anything else (truncation, a flipped bit, another format) treats the entry as a miss.
"""

from __future__ import annotations

import hashlib
import zlib

MAGIC = b"kiln-cache-2 "


def encode(payload: bytes) -> bytes:
    """Wrap ``payload`` with its digest and compress it."""
    body = zlib.compress(payload, 6)
    return MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def decode(blob: bytes) -> bytes | None:
    """Return the payload of ``blob`` if it verifies, else None."""
    header, sep, body = blob.partition(b"\n")
    if not sep or not header.startswith(MAGIC):
        return None
    expected = header[len(MAGIC):].decode("ascii", "replace")
    if hashlib.sha256(body).hexdigest() != expected:
        return None
    try:
        return zlib.decompress(body)
    except zlib.error:
        return None
