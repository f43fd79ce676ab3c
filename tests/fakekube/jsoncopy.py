"""A fast deep copy for JSON-shaped values (dicts, lists, strings, numbers, bools, None)."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def clone(value: T) -> T:
    """A deep copy of a JSON value (several times faster than :func:`copy.deepcopy`)."""
    copied: Any = _decoder.decode(_encoder.encode(value))
    return copied  # type: ignore[no-any-return]
