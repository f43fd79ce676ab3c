"""Reports (kiln.diff.report): the JSON shape, the text summary, Markdown that a rendered
object cannot break out of (checked by parsing the Markdown back with the fence rules)."""

from __future__ import annotations

import json
import re

from kiln.diff.mask import MaskPolicy
from kiln.diff.objects import DiffResult, ObjectDiff, diff_objects
from kiln.diff.report import render, render_markdown, render_text, to_dict


def sample() -> DiffResult:
    return DiffResult((
        ObjectDiff("ConfigMap/a/c", "changed", "--- live/x\n+++ desired/x\n@@ -1 +1 @@\n-a\n+b\n"),
        ObjectDiff("Secret/a/s", "unchanged", "", {"k": "unchanged"}),
        ObjectDiff("Secret/a/t", "added", "--- live/t\n+++ desired/t\n", {"k": "added"},
                   {"k": {"after": "hmac-sha256:0123456789abcdef"}}),
    ))


def test_json_shape() -> None:
    out = json.loads(render(sample(), "json"))
    assert out == {
        "changed": True,
        "objects": [
            {"ref": "ConfigMap/a/c", "state": "changed",
             "diff": "--- live/x\n+++ desired/x\n@@ -1 +1 @@\n-a\n+b\n"},
            {"ref": "Secret/a/s", "state": "unchanged", "keys": {"k": "unchanged"}},
            {"ref": "Secret/a/t", "state": "added", "diff": "--- live/t\n+++ desired/t\n",
             "keys": {"k": "added"},
             "fingerprints": {"k": {"after": "hmac-sha256:0123456789abcdef"}}},
        ],
        "summary": {"added": 1, "removed": 0, "changed": 1, "unchanged": 1},
    }
    assert to_dict(DiffResult()) == {"changed": False, "objects": [], "summary": {
        "added": 0, "removed": 0, "changed": 0, "unchanged": 0}}


def test_text_is_the_diffs_then_a_summary_table() -> None:
    text = render_text(sample())
    assert text.startswith("--- live/x\n+++ desired/x\n")
    tail = text.split("\n\n")[-1].splitlines()
    assert tail[0].split() == ["STATE", "OBJECT", "KEYS"]
    assert tail[1].split() == ["changed", "ConfigMap/a/c"]
    assert tail[2].split() == ["added", "Secret/a/t", "k", "(added)"]
    assert tail[-1] == "1 added, 1 changed, 0 removed, 1 unchanged"
    assert render_text(DiffResult()) == "0 added, 0 changed, 0 removed, 0 unchanged\n"


def test_markdown_cannot_be_broken_by_what_the_repository_rendered() -> None:
    hostile = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "c", "namespace": "x|y<script>"},
               "data": {"k": "```\n</details>\n# heading\n````"}}
    result = diff_objects([], [hostile], policy=MaskPolicy())
    text = render_markdown(result, title="kiln diff | <b>")
    outside = re.sub(r"^(`{3,})diff$.*?^\1$", "", text, flags=re.M | re.S)
    assert "<script>" not in outside and "<b>" not in outside
    assert outside.count("<details>") == outside.count("</details>") == 1
    table_rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert all(len(re.findall(r"(?<!\\)\|", row)) == 4 for row in table_rows), table_rows
    # The diff sits in one fence longer than any backtick run inside it.
    opening = re.search(r"^(`{3,})diff$", text, re.M)
    assert opening is not None and len(opening.group(1)) == 5
    body = text[opening.end():]
    closing = re.search(rf"^{opening.group(1)}$", body, re.M)
    assert closing is not None
    assert "</details>" in body[:closing.start()]  # inside the fence, not markup
    assert body[closing.end():].strip() == "</details>"


def test_markdown_without_changes() -> None:
    text = render_markdown(DiffResult((ObjectDiff("ConfigMap/a/c", "unchanged"),)))
    assert "No differences" in text and "<details>" not in text


def test_names_cannot_forge_lines_or_drive_a_terminal() -> None:
    hostile = {"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "x\n+++ desired/forged\x1b[31m", "namespace": "a"},
               "data": {"k\x1b]0;title\x07": "dmFsdWU="}, "type": "t\nx"}
    result = diff_objects([], [hostile], policy=MaskPolicy())
    for fmt in ("text", "json", "markdown"):
        text = render(result, fmt)  # type: ignore[arg-type]
        assert "\x1b" not in text and "\x07" not in text, fmt
        assert "\n+++ desired/forged" not in text, fmt
