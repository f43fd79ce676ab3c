"""Reports of a diff: text (unified diffs and a summary table), JSON, and Markdown for a
pull-request comment.

Every report is built from a :class:`kiln.diff.objects.DiffResult` alone, whose diffs were made
of masked objects: nothing here sees a secret value. Markdown escapes what the repository
chose (kinds, names, key names), so a rendered object cannot inject markup into a comment.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any, Literal

from kiln.diff.objects import DiffResult, ObjectDiff, printable

Format = Literal["text", "json", "markdown"]
FORMATS: tuple[Format, ...] = ("text", "json", "markdown")


def object_dict(item: ObjectDiff) -> dict[str, Any]:
    """One object as ``-o json`` shows it: ``ref``, ``state``, ``diff`` (unless unchanged),
    ``keys`` (masked kinds) and ``fingerprints`` (when asked for)."""
    out: dict[str, Any] = {"ref": item.ref, "state": item.state}
    if item.state != "unchanged":
        out["diff"] = item.diff
    if item.keys is not None:
        out["keys"] = dict(item.keys)
    if item.fingerprints is not None:
        out["fingerprints"] = {k: dict(v) for k, v in item.fingerprints.items()}
    return out


def to_dict(result: DiffResult) -> dict[str, Any]:
    """``{"changed": bool, "objects": [...], "summary": {state: count}}``."""
    return {"changed": result.changed, "objects": [object_dict(o) for o in result.objects],
            "summary": result.counts()}


def summary_line(result: DiffResult) -> str:
    """``N added, N changed, N removed, N unchanged``."""
    counts = result.counts()
    return ", ".join(f"{counts[s]} {s}" for s in ("added", "changed", "removed", "unchanged"))


def _keys_text(item: ObjectDiff) -> str:
    if not item.keys:
        return ""
    return ", ".join(f"{printable(k)} ({v})" for k, v in item.keys.items())


def summary_table(result: DiffResult) -> str:
    """A plain-text table of every object that is not unchanged (state, ref, masked keys),
    then :func:`summary_line`."""
    rows = [(o.state, printable(o.ref), _keys_text(o)) for o in result.objects
            if o.state != "unchanged"]
    lines = []
    if rows:
        width = max(len("STATE"), *(len(r[0]) for r in rows))
        ref_width = max(len("OBJECT"), *(len(r[1]) for r in rows))
        lines.append(f"{'STATE':<{width}}  {'OBJECT':<{ref_width}}  KEYS".rstrip())
        lines += [f"{s:<{width}}  {r:<{ref_width}}  {k}".rstrip() for s, r, k in rows]
    lines.append(summary_line(result))
    return "".join(f"{line}\n" for line in lines)


def render_text(result: DiffResult) -> str:
    """Every unified diff in order, then a blank line and :func:`summary_table`."""
    diffs = "".join(o.diff for o in result.objects if o.state != "unchanged")
    return f"{diffs}\n{summary_table(result)}" if diffs else summary_table(result)


def render_json(result: DiffResult) -> str:
    """:func:`to_dict` as indented JSON."""
    return json.dumps(to_dict(result), indent=2, ensure_ascii=False) + "\n"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_text(text: str) -> str:
    """``text`` safe in a Markdown table cell or heading: HTML escaped, Markdown punctuation
    backslash-escaped, line breaks flattened."""
    flat = printable(" ".join(text.split()))
    return _MD_SPECIAL.sub(r"\\\1", html.escape(flat, quote=True))


def _fence(text: str) -> str:
    """A backtick fence longer than any backtick run in ``text``."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def markdown_table(result: DiffResult) -> str:
    """The summary as a Markdown table of every object that is not unchanged."""
    rows = [o for o in result.objects if o.state != "unchanged"]
    if not rows:
        return f"No differences ({md_text(summary_line(result))}).\n"
    lines = ["| object | state | masked keys |", "| --- | --- | --- |"]
    lines += [f"| {md_text(o.ref)} | {o.state} | {md_text(_keys_text(o))} |" for o in rows]
    return "\n".join(lines) + f"\n\n{md_text(summary_line(result))}\n"


def markdown_details(result: DiffResult) -> str:
    """One collapsed ``<details>`` block per object that is not unchanged, holding its diff."""
    blocks = []
    for item in result.objects:
        if item.state == "unchanged":
            continue
        fence = _fence(item.diff)
        blocks.append(f"<details><summary>{html.escape(item.ref)} ({item.state})</summary>\n\n"
                      f"{fence}diff\n{item.diff}{fence}\n\n</details>\n")
    return "\n".join(blocks)


def render_markdown(result: DiffResult, *, title: str = "kiln diff") -> str:
    """A pull-request comment: a heading, :func:`markdown_table`, then
    :func:`markdown_details`."""
    details = markdown_details(result)
    head = f"### {md_text(title)}\n\n{markdown_table(result)}"
    return f"{head}\n{details}" if details else head


def render(result: DiffResult, fmt: Format, *, title: str = "kiln diff") -> str:
    """The report of ``result`` in ``fmt`` (``text``, ``json`` or ``markdown``)."""
    if fmt == "json":
        return render_json(result)
    if fmt == "markdown":
        return render_markdown(result, title=title)
    return render_text(result)

