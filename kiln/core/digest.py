"""Input digests, canonical JSON and the cache key recipe.

A digest covers the *content* of every input file and its path relative to the app directory,
never absolute paths or timestamps: touching a file is still a hit, and the same app copied
elsewhere is a hit too (unless a renderer says its output depends on where the app lives).

:class:`KeyRecipe` is everything a render's cache key is made of, part by part, so callers (the
CLI's fast path, tests) can see and re-check each part instead of deriving their own notion of
"unchanged". :meth:`kiln.core.engine.Engine.key_recipe` builds it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.core.errors import InputError, PluginError

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
    return digest_of(sorted({(rel, file_digest(path)) for rel, path in set(files)}))


def digest_of(pairs: Iterable[tuple[str, str]]) -> str:
    """Digest ``(relative path, sha256)`` pairs in the given order (the input-digest format)."""
    h = hashlib.sha256()
    for rel, digest in pairs:
        h.update(rel.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
        h.update(digest.encode())
        h.update(b"\n")
    return h.hexdigest()


def _canonical(value: Any, where: str) -> Any:
    """``value`` as plain JSON data, or PluginError naming ``where`` for anything without one
    exact JSON form (no silent ``str()``: two different values must never share a key)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PluginError(f"cache key part {where} is {value!r}, which JSON cannot hold")
        return value
    if isinstance(value, (list, tuple)):
        return [_canonical(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise PluginError(f"cache key part {where} has a {type(key).__name__} key "
                                  f"{key!r}; keys must be strings")
            out[key] = _canonical(item, f"{where}.{key}")
        return out
    # YAML timestamps: tagged, so they never collide with the string of the same text.
    if isinstance(value, datetime.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"$date": value.isoformat()}
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    raise PluginError(f"cache key part {where} holds a {type(value).__name__}, which has no "
                      "canonical JSON form (use str, int, float, bool, None, lists and "
                      "string-keyed mappings)")


def canonical_json(data: Any, where: str = "key") -> bytes:
    """Serialise ``data`` as canonical JSON (sorted keys, no whitespace) for hashing.

    Strict: a value of a type JSON has no exact form for (a Path, a set, an object, NaN, a
    non-string key) is a PluginError naming where it sits, never ``str()``-ed.
    """
    return json.dumps(_canonical(data, where), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode()


def cache_key(parts: dict[str, Any]) -> str:
    """Return the sha256 hex of the canonical JSON of ``parts``."""
    return hashlib.sha256(canonical_json(parts)).hexdigest()


@dataclass(frozen=True)
class InputFile:
    """One input file as the key sees it.

    ``declared`` is the path the renderer named (absolute, symlinks unresolved), ``real`` its
    resolved path (checked inside the source root), ``rel`` the real path relative to the real
    app directory (what enters the key) and ``sha256`` its content digest ("" when the recipe
    was built without digests).
    """

    declared: str
    real: str
    rel: str
    sha256: str = ""


@dataclass(frozen=True)
class ToolStamp:
    """An external binary the renderer consulted: its resolved path, size and mtime."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, binary: str) -> ToolStamp | None:
        """Stamp ``binary`` (symlinks resolved); None when it cannot be stat-ed."""
        real = os.path.realpath(binary)
        try:
            st = os.stat(real)
        except OSError:
            return None
        return cls(real, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class KeyRecipe:
    """Every part of one render's cache key.

    - ``kiln``, ``format``: kiln's version and the cache format;
    - ``renderer``, ``renderer_version``: the renderer used and its declared version;
    - ``plugin``: the plugin that registered it (name, distribution, distribution version);
    - ``tool``: the renderer's tool version string; ``tools``: every binary consulted while
      the key was built (resolved path, size, mtime);
    - ``app``: the app's identity with options normalised through their registered types;
    - ``inputs``: the input files (path relative to the app directory and content digest);
    - ``extra``: the renderer's further identity (``Inputs.extra``);
    - ``location``: the app's absolute path when the renderer said its output depends on it
      (``Inputs.located``), else None.

    ``cacheable``/``reason`` repeat what the renderer said; ``key`` is None when uncacheable.
    """

    kiln: str
    renderer: str
    renderer_version: str
    plugin: Mapping[str, str]
    tool: str
    app: Mapping[str, Any]
    inputs: tuple[InputFile, ...] = ()
    tools: tuple[ToolStamp, ...] = ()
    extra: Any = None
    location: str | None = None
    cacheable: bool = True
    reason: str = ""
    portable: bool = False
    format: int = 1
    key: str | None = field(default=None, compare=False)

    def parts(self) -> dict[str, Any]:
        """The key's parts as plain data (what :func:`cache_key` hashes)."""
        parts: dict[str, Any] = {
            "format": self.format,
            "kiln": self.kiln,
            "renderer": self.renderer,
            "rendererVersion": self.renderer_version,
            "plugin": dict(self.plugin),
            "tool": self.tool,
            "tools": [[t.path, t.size, t.mtime_ns] for t in self.tools],
            "app": dict(self.app),
            "inputs": digest_of(sorted({(f.rel, f.sha256) for f in self.inputs})),
            "extra": self.extra,
        }
        if self.location is not None:
            parts["location"] = self.location
        return parts

    def compute_key(self) -> str:
        """The sha256 of the canonical JSON of :meth:`parts`."""
        return cache_key(self.parts())
