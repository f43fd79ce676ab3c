"""Input digests and cache keys.

A digest covers the *content* of every input file and its path relative to the app directory,
never absolute paths or timestamps: touching a file is still a hit, and the same app copied
elsewhere is a hit too.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kiln.core.errors import InputError

SMALL_FILE = 1 << 20
"""Files up to this size are read whole (faster than streaming for typical manifests)."""


def file_digest(path: Path | str) -> str:
    """Return the sha256 hex digest of a file's bytes."""
    try:
        with open(path, "rb", buffering=0) as handle:
            if os.fstat(handle.fileno()).st_size <= SMALL_FILE:
                return hashlib.sha256(handle.readall()).hexdigest()
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=str(path)) from None


def input_digest(files: Iterable[tuple[str, str]]) -> str:
    """Digest ``(relative path, real path)`` pairs by relative path and content, in path order."""
    h = hashlib.sha256()
    for rel, path in sorted(set(files)):
        digest = file_digest(path)
        h.update(rel.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
        h.update(digest.encode())
        h.update(b"\n")
    return h.hexdigest()


def canonical_json(data: Any) -> bytes:
    """Serialise ``data`` as canonical JSON (sorted keys, no whitespace) for hashing."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def cache_key(parts: dict[str, Any]) -> str:
    """Return the sha256 hex of the canonical JSON of ``parts``."""
    return hashlib.sha256(canonical_json(parts)).hexdigest()
