"""What ``kiln --version`` lists: the external tools the registered plugins use, remembered.

Each registered renderer, then each secret resolver that has one, is asked for its
``tool_version(ctx)`` (the core names no tool). The answer is remembered beside the cache,
keyed by what it depends on (:func:`listing_key`) and by the size and mtime of every binary it
names, so a repeated ``kiln --version`` loads no plugin and runs no tool. Reading the memo uses
the standard library only (start-up is measured by ``bench/cache.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LISTING_FILE = "version-listing.json"
LISTING_FORMAT = 1
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASS")


def listed_tools(plugins: Any, ctx: Any, versions: Any) -> list[dict[str, Any]]:
    """Ask every registered renderer, then every secret resolver that has one, for its
    ``tool_version(ctx)``: one entry per answer, ``{"name", "text", "binaries"}`` with the
    binaries it asked ``versions`` (which must note them in ``asked``), or ``"error"`` when
    the tool is missing. Answers that name no tool ('') are left out; the core names none."""
    from kiln.core.errors import ToolError

    entries: list[dict[str, Any]] = []
    for registry in (plugins.renderers, plugins.resolvers):
        for name in registry:
            ask = registry.member(registry.get(name), "tool_version")
            versions.asked.clear()
            try:
                text = str(ask(ctx))
            except ToolError as exc:
                entries.append({"name": name, "error": exc.message})
                continue
            binaries = sorted({os.path.realpath(b) for b in versions.asked})
            if text:
                entries.append({"name": name, "text": text, "binaries": binaries})
    return entries


def listing_lines(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per tool: ``helm v3.17.3+g… (/usr/bin/helm)``, or ``helm: <why it is
    missing>``; an in-process tool (no binary) has no parentheses."""
    lines = []
    for entry in entries:
        if "error" in entry:
            lines.append(f"{entry['name']}: {entry['error']}")
            continue
        where = f" ({', '.join(entry['binaries'])})" if entry["binaries"] else ""
        lines.append(f"{entry['name']} {' '.join(str(entry['text']).split())}{where}")
    return lines


def listing_key(env: Mapping[str, str], version: str) -> str:
    """What the tool listing depends on besides the binaries themselves: kiln's version, the
    interpreter, the installed distributions (each ``sys.path`` directory's mtime), ``PATH``
    and the ``KILN_*`` variables (which locate tools and disable plugins) — hashed, and
    credential-named variables left out, so nothing secret is written."""
    paths = []
    for entry in sys.path[1:]:
        try:
            paths.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            paths.append([entry, None])
    names = sorted(n for n in env if n.startswith("KILN_")
                   and not any(w in n for w in _SECRET_WORDS))
    data = {"format": LISTING_FORMAT, "kiln": version, "python": sys.executable,
            "sys.path": paths, "env": [[n, env[n]] for n in [*names, "PATH"] if n in env]}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _stamp(binary: str) -> list[object] | None:
    try:
        st = os.stat(binary)
    except OSError:
        return None
    return [binary, st.st_size, st.st_mtime_ns]


def remembered_listing(directory: Path, key: str) -> list[str] | None:
    """The lines remembered under ``directory`` for ``key`` while every binary they name is
    unchanged (size, mtime); None otherwise (standard library only: ``kiln --version``)."""
    try:
        memo = json.loads((directory / LISTING_FILE).read_text())
        if memo.get("key") != key:
            return None
        if any(_stamp(str(s[0])) != s for s in memo["stamps"]):
            return None
        return [str(line) for line in memo["lines"]]
    except (OSError, ValueError, AttributeError, KeyError, TypeError, IndexError):
        return None


def remember_listing(directory: Path, key: str, entries: Sequence[Mapping[str, Any]]) -> None:
    """Keep the lines of ``entries`` under ``directory`` for :func:`remembered_listing`."""
    binaries = sorted({b for e in entries for b in e.get("binaries", ())})
    stamps = [s for s in map(_stamp, binaries) if s is not None]
    memo = {"key": key, "lines": listing_lines(entries), "stamps": stamps}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{LISTING_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, directory / LISTING_FILE)
    except OSError as exc:
        import logging

        logging.getLogger("kiln.tools").debug("cannot remember the tool listing: %s", exc)
