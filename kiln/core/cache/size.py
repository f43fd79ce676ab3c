"""Cache size bounds as people write them: ``1GiB``, ``500MiB``, ``64k``, plain bytes."""

from __future__ import annotations

import re
from collections.abc import Mapping

from kiln.core.errors import ConfigError

MAX_BYTES_ENV = "KILN_CACHE_MAX_BYTES"
"""Operator variable: the filesystem cache's size bound (``--cache-max-bytes`` wins)."""

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"\s*(\d+)\s*(?:([kmgt])(?:i?b)?|b)?\s*", re.IGNORECASE)


def parse_size(text: str, *, source: str) -> int:
    """Bytes for ``text``: digits with an optional binary unit (``K``/``KiB``/``KB`` = 1024,
    ``M``, ``G``, ``T``; ``B`` or none = bytes), case-insensitive. Anything else, or zero, is a
    ConfigError naming ``source`` (the flag or variable)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ConfigError(f"not a size: {text!r} (write bytes, or a number with KiB, MiB, GiB "
                          "or TiB, e.g. 500MiB)", source=source)
    value = int(match.group(1)) * _UNITS[(match.group(2) or "").lower()]
    if value <= 0:
        raise ConfigError("the cache size bound must be at least 1 byte", source=source)
    return value


def max_bytes_setting(flag: str | None, env: Mapping[str, str], default: int) -> int:
    """The size bound: ``--cache-max-bytes`` when given, else ``$KILN_CACHE_MAX_BYTES``, else
    ``default``."""
    if flag is not None:
        return parse_size(flag, source="--cache-max-bytes")
    text = env.get(MAX_BYTES_ENV, "").strip()
    return parse_size(text, source=MAX_BYTES_ENV) if text else default
