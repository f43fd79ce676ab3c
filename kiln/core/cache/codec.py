"""The byte format of a cache entry, shared by every store.

``kiln-cache-1 <sha256 of payload>\\n`` followed by the zlib-compressed payload. A reader that
finds anything else (truncation, a flipped bit, another format) treats the entry as a miss.
"""

from __future__ import annotations

import hashlib
import zlib

MAGIC = b"kiln-cache-1 "


def encode(payload: bytes) -> bytes:
    """Wrap ``payload`` with its digest and compress it."""
    digest = hashlib.sha256(payload).hexdigest().encode()
    return MAGIC + digest + b"\n" + zlib.compress(payload, 6)


def decode(blob: bytes) -> bytes | None:
    """Return the payload of ``blob`` if it verifies, else None."""
    header, sep, body = blob.partition(b"\n")
    if not sep or not header.startswith(MAGIC):
        return None
    expected = header[len(MAGIC):].decode("ascii", "replace")
    try:
        payload = zlib.decompress(body)
    except zlib.error:
        return None
    if hashlib.sha256(payload).hexdigest() != expected:
        return None
    return payload
