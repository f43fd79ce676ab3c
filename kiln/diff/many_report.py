"""Reports of ``kiln diff --applications``: text, JSON and a size-bounded Markdown comment.

Built from a :class:`kiln.diff.many.ManyDiff` alone, whose diffs were made of masked objects
(nothing here sees a secret value). Names and paths come from the repository: control
characters are escaped in text, and Markdown escapes them so an Application cannot inject
markup into a pull-request comment.
"""

from __future__ import annotations

import html
import json
from typing import Any, Literal

from kiln.diff.many import ManyDiff
from kiln.diff.objects import printable
from kiln.diff.report import markdown_details, md_text, object_dict

Format = Literal["text", "json", "markdown"]
MARKDOWN_LIMIT = 65_536
"""GitHub's limit on the body of a pull-request comment, in characters."""
_CUT = "\n(summary table cut)\n"
_COUNTED = ("added", "changed", "removed", "unchanged")


def _app_line(app: Any) -> str:
    where = printable(app.path)
    if app.moved:
        where = f"{printable(app.before_path)} -> {printable(app.after_path)}"
    note = ", path changed" if app.moved else ""
    return f"{printable(app.name)} ({where}): {app.state}{note}"


def _counts(app: Any) -> dict[str, int]:
    return app.result.counts() if app.result is not None else dict.fromkeys(_COUNTED, 0)


def _listed(diff: ManyDiff) -> list[Any]:
    """The apps a summary lists: every app that is not unchanged, and moved ones."""
    return [a for a in diff.apps if a.state != "unchanged" or a.moved]


def summary_line(diff: ManyDiff) -> str:
    """``N apps: N added, N changed, N removed, N unchanged, N failed``."""
    counts = diff.counts()
    parts = ", ".join(f"{counts[s]} {s}" for s in ("added", "changed", "removed", "unchanged",
                                                   "failed"))
    return f"{len(diff.apps)} apps: {parts}"


def summary_table(diff: ManyDiff) -> str:
    """A plain-text table of the apps that are not unchanged (app, path, state and object
    counts), then :func:`summary_line`."""
    header = ("APP", "PATH", "STATE", "ADDED", "CHANGED", "REMOVED", "UNCHANGED")
    rows = []
    for app in _listed(diff):
        counts = _counts(app)
        path = f"{app.before_path} -> {app.after_path}" if app.moved else app.path
        state = f"{app.state} (moved)" if app.moved else app.state
        rows.append((printable(app.name), printable(path), state,
                     *(str(counts[s]) for s in _COUNTED)))
    lines = []
    if rows:
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
        for row in (header, *rows):
            lines.append("  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True))
                         .rstrip())
    lines.append(summary_line(diff))
    return "".join(f"{line}\n" for line in lines)


def render_text(diff: ManyDiff) -> str:
    """Per app that is not unchanged: a ``=== app`` header line and the unified diff of each
    object that is not unchanged; then a blank line and :func:`summary_table`."""
    out = []
    for app in _listed(diff):
        out.append(f"=== {_app_line(app)}\n")
        if app.state == "failed":
            out.append("(not compared: see the errors on stderr)\n")
            continue
        out.extend(o.diff for o in app.result.objects if o.state != "unchanged")
    body = "".join(out)
    return f"{body}\n{summary_table(diff)}" if body else summary_table(diff)


def to_dict(diff: ManyDiff) -> dict[str, Any]:
    """``{"against", "base", "changed", "apps": [{"name", "path", "changed", "state",
    "objects", "summary", "pathBefore"?, "errors"?}], "summary": {state: count}}``."""
    apps = []
    for app in diff.apps:
        item: dict[str, Any] = {"name": app.name, "path": app.path, "changed": app.changed,
                                "state": app.state}
        if app.moved:
            item["pathBefore"] = app.before_path
        item["objects"] = [object_dict(o) for o in app.result.objects] \
            if app.result is not None else []
        item["summary"] = _counts(app)
        if app.errors:
            item["errors"] = list(app.errors)
        apps.append(item)
    return {"against": diff.labels[0], "base": diff.base, "changed": diff.changed,
            "apps": apps, "summary": diff.counts()}


def render_json(diff: ManyDiff) -> str:
    """:func:`to_dict` as indented JSON."""
    return json.dumps(to_dict(diff), indent=2, ensure_ascii=False) + "\n"


def markdown_table(diff: ManyDiff) -> list[str]:
    """The Markdown summary: table lines (apps that are not unchanged) then the count line."""
    rows = _listed(diff)
    if not rows:
        return [f"No differences ({md_text(summary_line(diff))})."]
    lines = ["| app | path | state | added | changed | removed | unchanged |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for app in rows:
        counts = _counts(app)
        path = md_text(app.path)
        if app.moved:
            path = f"{md_text(app.before_path or '')} → {path}"
        state = f"{app.state} (moved)" if app.moved else app.state
        lines.append(f"| {md_text(app.name)} | {path} | {state} | "
                     + " | ".join(str(counts[s]) for s in _COUNTED) + " |")
    return [*lines, "", md_text(summary_line(diff))]


def _details(app: Any) -> str:
    summary = html.escape(_app_line(app))
    if app.state == "failed":
        body = "Not compared: " + md_text("; ".join(app.errors)) + "\n"
    else:
        body = markdown_details(app.result) or "No object changed.\n"
    return f"<details><summary>{summary}</summary>\n\n{body}\n</details>\n"


def _note(left_out: int) -> str:
    return (f"\n**{left_out} app(s) left out**: the comment would exceed GitHub's limit of "
            f"{MARKDOWN_LIMIT:,} characters; run `kiln diff --applications` locally for the "
            "whole diff.\n")


def render_markdown(diff: ManyDiff, *, title: str = "kiln diff",
                    limit: int = MARKDOWN_LIMIT) -> str:
    """A pull-request comment: a heading, the summary table, then one collapsed
    ``<details>`` block per app that is not unchanged. At most ``limit`` characters: what
    does not fit (whole app blocks, then table rows) is left out, with a note saying how
    many apps were."""
    head = f"### {md_text(title)}\n\n"
    table = markdown_table(diff)
    blocks = [_details(a) for a in _listed(diff)]
    reserve = len(_note(len(blocks) + len(table))) + len(_CUT) + 1
    text = head
    kept_rows = 0
    for line in table:
        if len(text) + len(line) + 1 + reserve > limit:
            break
        text += line + "\n"
        kept_rows += 1
    left_out = 0
    if kept_rows < len(table):
        left_out = len(blocks)
        text += _CUT
    else:
        text += "\n"
        for index, block in enumerate(blocks):
            if len(text) + len(block) + 1 + reserve > limit:
                left_out = len(blocks) - index
                break
            text += block + "\n"
    if left_out:
        text += _note(left_out)
    return text


def render(diff: ManyDiff, fmt: Format, *, title: str = "kiln diff") -> str:
    """The report of ``diff`` in ``fmt`` (``text``, ``json`` or ``markdown``)."""
    if fmt == "json":
        return render_json(diff)
    if fmt == "markdown":
        return render_markdown(diff, title=title)
    return render_text(diff)
