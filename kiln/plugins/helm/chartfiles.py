"""The files of a local chart, as Helm's loader sees them (``.helmignore`` honoured).

Listing errs on the side of too many files, never too few: a file Helm would ignore but kiln
digests only costs a needless cache miss, while the opposite would be a stale hit. So negated
``.helmignore`` rules (which in Helm only ever ignore *more*) are not applied.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.core.errors import InputError
from kiln.core.manifests import load_yaml_documents
from kiln.core.paths import read_bytes_capped

HELMIGNORE = ".helmignore"
CHART_FILE = "Chart.yaml"
CHART_FILE_MAX_BYTES = 1 << 20
DEFAULT_RULES = ("templates/.?*",)
"""Helm always ignores dot-files under templates/."""


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    dir_only: bool
    with_slash: bool


def _translate(pattern: str) -> re.Pattern[str]:
    """Compile a Go ``filepath.Match`` pattern: ``*``/``?`` never cross ``/``, ``[^...]``."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                negate = body[:1] in ("^", "!")
                body = body[1:] if negate else body
                out.append(f"[{'^' if negate else ''}{body}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _rules(chart_dir: Path) -> list[_Rule]:
    lines = list(DEFAULT_RULES)
    path = chart_dir / HELMIGNORE
    if path.is_file():
        data = read_bytes_capped(path, CHART_FILE_MAX_BYTES)
        lines += data.decode("utf-8", "replace").splitlines()
    rules = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("!") or "**" in line:
            continue
        dir_only = line.endswith("/")
        line = line.rstrip("/").lstrip("/")
        if line:
            rules.append(_Rule(_translate(line), dir_only, "/" in line))
    return rules


def _ignored(rel: str, is_dir: bool, rules: list[_Rule]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    for rule in rules:
        if rule.dir_only and not is_dir:
            continue
        if rule.regex.match(rel if rule.with_slash else name):
            return True
    return False


def chart_files(chart_dir: Path, max_bytes: int) -> list[Path]:
    """Every file Helm loads from ``chart_dir``, sorted; refuse a chart over ``max_bytes``."""
    rules = _rules(chart_dir)
    found: list[Path] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(chart_dir, followlinks=True):
        rel_dir = os.path.relpath(dirpath, chart_dir)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        dirnames[:] = sorted(d for d in dirnames if not _ignored(prefix + d, True, rules))
        for name in filenames:
            if _ignored(prefix + name, False, rules):
                continue
            path = Path(dirpath) / name
            try:
                total += path.stat().st_size
            except OSError as exc:
                raise InputError(f"cannot read: {exc.strerror}", source=str(path)) from None
            if total > max_bytes:
                raise InputError(f"chart is larger than the {max_bytes}-byte limit "
                                 "(helm.maxChartBytes)", source=str(chart_dir))
            found.append(path)
    return sorted(found)


def read_chart_file(chart_dir: Path) -> dict[str, Any]:
    """Parse ``Chart.yaml``: a mapping with a ``name``, else an InputError naming the file."""
    path = chart_dir / CHART_FILE
    source = str(path)
    if not path.is_file():
        raise InputError("no Chart.yaml: not a Helm chart", source=str(chart_dir))
    text = read_bytes_capped(path, CHART_FILE_MAX_BYTES).decode("utf-8", "replace")
    docs = [d for d in load_yaml_documents(text, source) if d is not None]
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise InputError("malformed Chart.yaml: expected one mapping", source=source)
    chart = docs[0]
    if not isinstance(chart.get("name"), str) or not chart["name"]:
        raise InputError("malformed Chart.yaml: no chart name", source=source)
    deps = chart.get("dependencies") or []
    if not isinstance(deps, list) or not all(
        isinstance(d, dict) and isinstance(d.get("name"), str) for d in deps
    ):
        raise InputError("malformed Chart.yaml: dependencies must be a list of mappings "
                         "with a name", source=source)
    return chart
