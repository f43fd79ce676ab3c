"""Length-prefixed JSON frames between kiln and its Jsonnet worker process.

Each frame is a 4-byte big-endian length followed by that many bytes of JSON. The parent reads
with a deadline (:class:`FrameReader` + ``select``); the worker reads and writes blocking.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import msgspec

_HEADER = struct.Struct(">I")


def send(fd: int, message: Any) -> None:
    """Write one frame holding ``message`` (JSON-serialisable) to ``fd``."""
    body = msgspec.json.encode(message)
    view = memoryview(_HEADER.pack(len(body)) + body)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def recv(fd: int) -> Any:
    """Read one frame from ``fd`` (blocking); raise EOFError when the other side has gone."""
    header = _read_exactly(fd, _HEADER.size)
    (size,) = _HEADER.unpack(header)
    return msgspec.json.decode(_read_exactly(fd, size))


def _read_exactly(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("peer closed the pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class FrameReader:
    """Accumulate bytes read from a pipe and hand out complete frames, decoded."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        """Append bytes read from the pipe."""
        self._buffer += data

    def next(self) -> Any | None:
        """Return the next complete message, or None when more bytes are needed."""
        if len(self._buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self._buffer)
        end = _HEADER.size + size
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[_HEADER.size:end])
        del self._buffer[:end]
        return msgspec.json.decode(body)
