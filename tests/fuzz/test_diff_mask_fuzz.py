"""Property-based fuzz of Secret masking: for random Secrets before and after, no report (text,
JSON, Markdown) holds a value, its base64, or its length next to it, and two inputs that differ
only in values — with the same per-key change states — give byte-identical reports.

Values are drawn from an alphabet key names and the report vocabulary never use (upper-case
letters, digits, symbols), so a substring hit is a real leak, not a coincidence.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kiln.diff.mask import MaskPolicy
from kiln.diff.objects import diff_objects
from kiln.diff.report import render
from tests.fuzz.bounds import FUZZ

STATES = ("added", "removed", "changed", "unchanged")
KEYS = st.from_regex(r"[a-z][a-z0-9._-]{0,11}", fullmatch=True)
VALUE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789#%&@!?=+$"
VALUES = st.text(VALUE_ALPHABET, min_size=4, max_size=40).map(lambda v: "V@" + v)
FIELDS = st.sampled_from(["data", "stringData"])
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


Layout = tuple[dict[str, tuple[str, str, str]], bool]


@st.composite
def layouts(draw: st.DrawFn) -> Layout:
    """(key -> (state, field before, field after), with a last-applied copy): the shape of a
    change, no values yet."""
    keys = draw(st.lists(KEYS, min_size=1, max_size=8, unique=True))
    return ({k: (draw(st.sampled_from(STATES)), draw(FIELDS), draw(FIELDS)) for k in keys},
            draw(st.booleans()))


@st.composite
def assignments(draw: st.DrawFn, layout: Layout
                ) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Two Secrets with the layout's states, values drawn fresh (equal values across keys
    allowed: the report must not show it)."""
    shape, with_copy = layout
    pool = draw(st.lists(VALUES, min_size=1, max_size=4, unique=True))
    before: dict[str, dict[str, str]] = {"data": {}, "stringData": {}}
    after: dict[str, dict[str, str]] = {"data": {}, "stringData": {}}
    used: list[str] = []
    for key, (state, field_b, field_a) in shape.items():
        old = draw(st.one_of(st.sampled_from(pool), VALUES))
        new = old if state == "unchanged" else draw(VALUES.filter(lambda v, o=old: v != o))
        used += [old, new]
        if state != "added":
            before[field_b][key] = old
        if state != "removed":
            after[field_a][key] = new

    def secret(fields: dict[str, dict[str, str]], copy: bool) -> dict[str, Any]:
        obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                               "metadata": {"name": "db", "namespace": "apps"}}
        if fields["data"]:
            obj["data"] = {k: base64.b64encode(v.encode()).decode()
                           for k, v in fields["data"].items()}
        if fields["stringData"]:
            obj["stringData"] = dict(fields["stringData"])
        if copy:  # a client-side apply's copy of the whole object, values and all
            obj["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(obj)}
        return obj

    return secret(before, with_copy), secret(after, with_copy), used


def reports(before: dict[str, Any], after: dict[str, Any]) -> dict[str, str]:
    result = diff_objects([before], [after], policy=MaskPolicy(), labels=("a", "b"))
    return {fmt: render(result, fmt) for fmt in ("text", "json", "markdown")}  # type: ignore[arg-type]


def leaks(text: str, values: list[str]) -> list[str]:
    found = []
    for value in values:
        raw = value.encode()
        forms = {value}
        for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            forms |= {enc.decode(), enc.decode().rstrip("=")}
        found += [f for f in forms if f in text]
        length = len(raw)
        if re.search(rf"(?<![0-9]){length}(?![0-9])\s*(?:bytes?|chars?|characters|B\b)", text):
            found.append(f"length {length}")
    return found


@FUZZ
@given(st.data())
def test_reports_show_states_never_values(data: st.DataObject) -> None:
    layout = data.draw(layouts())
    before, after, values = data.draw(assignments(layout))
    out = reports(before, after)
    for fmt, text in out.items():
        assert not leaks(text, values), (fmt, leaks(text, values))
        assert "*" * 3 not in text.replace("\\*", "")
    keys = json.loads(out["json"])["objects"][0].get("keys", {})
    assert keys == {k: state for k, (state, _, _) in layout[0].items()}


@FUZZ
@given(st.data())
def test_reports_depend_on_states_only(data: st.DataObject) -> None:
    layout = data.draw(layouts())
    first = data.draw(assignments(layout))
    second = data.draw(assignments(layout))
    assert reports(first[0], first[1]) == reports(second[0], second[1])


ECHO = st.sampled_from(["Invalid value: ", "Unsupported value: ", "Duplicate value: "])
NOISE = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


def go_quoted(value: str) -> str:
    """``value`` as Go's %q writes it (enough of it: quotes and backslashes escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@FUZZ
@given(st.lists(st.tuples(NOISE, ECHO, VALUES, st.booleans()), min_size=1, max_size=5),
       NOISE)
def test_error_text_never_keeps_an_echoed_value(parts: list[tuple[str, str, str, bool]],
                                                tail: str) -> None:
    from kiln.diff.mask import mask_error_text
    from tests.fuzz.bounds import within

    text = "".join(f"{noise}field: {echo}" + (go_quoted(value) if quoted else
                                             f"map[string]interface {{}}{{{value}}}") + ": bad"
                   for noise, echo, value, quoted in parts) + tail
    with within(5):
        out = mask_error_text(text)
    assert "\n" not in out and "\r" not in out
    for _, _, value, _ in parts:
        assert value not in out, (text, out)
