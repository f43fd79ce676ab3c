"""Property-based fuzzing of manifest files: every input ends in a correct render or a one-line
KilnError, never another exception and never a hang.

Three kinds of input: arbitrary text; text assembled from YAML's own pieces (indicators,
anchors, aliases, tags, merges, the ambiguous scalars, flow and block nesting, deep nesting);
and objects the test chose, written out by kiln and rendered back, where "correct" means the
very objects chosen.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln import App, Engine
from kiln.core.errors import KilnError
from kiln.core.manifests import MAX_DEPTH, dump_yaml_stream, parse_stream

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SECONDS = 5.0
"""No single input may take longer than this (a hang or a blow-up would)."""

AMBIGUOUS = ["y", "n", "Y", "N", "yes", "no", "on", "off", "true", "False", "~", "null", "",
             "1e3", "12e3", "1E5", "0o17", "017", "0x1F", "0b101", "-.5", "+.5", ".inf", "-.inf",
             ".nan", "12:30", "1:20", "=", "<<", "2001-12-14T21:59:43Z", "2002-12-14", "1_000",
             "9223372036854775808", "18446744073709551616", "1e400", "08", "-0", "0.1"]
PIECES = [*AMBIGUOUS,
    "a", "apiVersion", "kind", "v1", "ConfigMap", ": ", ":", "- ", "-", "? ", "---", "...",
    "\n", "\n  ", "\n    ", "  ", "\t", "[", "]", "{", "}", ",", "#", "&a ", "*a", "&b ", "*b",
    "!!str ", "!!int ", "!!float ", "!!binary ", "!!merge ", "!!map ", "!!seq ", "!x ", "! ",
    "'", '"', "|", ">", "|-", "\\", "%YAML 1.1\n", "%TAG ! tag:x:\n", "<<: *a", "é", "\x00",
    "\ufeff", "\u2028", "\r", "@", "`",
]


def check_render(text: str) -> list[dict[str, Any]] | None:
    """Render ``text`` as a directory app's only manifest: the objects, or None after a clean
    one-line KilnError. Any other exception fails the test."""
    with tempfile.TemporaryDirectory() as tmp:
        app_dir = Path(tmp) / "app"
        app_dir.mkdir()
        (app_dir / "manifest.yaml").write_text(text, encoding="utf-8")
        engine = Engine(use_cache=False, entry_points=False)
        started = time.perf_counter()
        try:
            result = engine.render(App(path=app_dir))
            objects = result.objects
            yaml_text = result.to_yaml()
            json_text = result.to_json()
        except KilnError as exc:
            line = exc.one_line()
            assert line and "\n" not in line
            assert "Traceback" not in line
            return None
        finally:
            assert time.perf_counter() - started < SECONDS
    # A render is correct when what kiln prints, as YAML or JSON, reads back as the objects.
    assert parse_stream(yaml_text, "output") == objects
    assert json.loads(json_text) == objects
    return objects


def assembled() -> st.SearchStrategy[str]:
    """Text built from YAML's own pieces, often starting like a Kubernetes object."""
    body = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
    head = st.sampled_from(["", "apiVersion: v1\nkind: ConfigMap\n",
                            "apiVersion: v1\nkind: ConfigMap\ndata:\n  "])
    return st.tuples(head, body).map("".join)


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    check_render(text)


@FUZZ
@given(assembled())
def test_text_assembled_from_yaml_pieces(text: str) -> None:
    check_render(text)


@FUZZ
@given(st.integers(min_value=1, max_value=3 * MAX_DEPTH), st.sampled_from(["flow", "block",
                                                                          "list"]))
def test_deep_nesting_renders_or_is_refused_cleanly(levels: int, style: str) -> None:
    if style == "flow":
        body = "[" * levels + "]" * levels
    elif style == "list":
        body = "\n" + "".join("  " * i + "-\n" for i in range(levels)) + "  " * levels + "x"
    else:
        body = "\n" + "".join("  " * (i + 1) + "a:\n" for i in range(levels)) + \
            "  " * (levels + 1) + "x"
    objects = check_render("apiVersion: v1\nkind: ConfigMap\ndata: " + body + "\n")
    assert (objects is not None) == (levels + 1 <= MAX_DEPTH)


KEYS = st.one_of(st.sampled_from(AMBIGUOUS), st.text(max_size=12))
SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),  # integral ones come back as ints
    st.sampled_from(AMBIGUOUS), st.text(max_size=20),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)), max_leaves=25)


@FUZZ
@given(st.lists(st.dictionaries(KEYS, VALUES, max_size=5), min_size=1, max_size=3))
def test_chosen_objects_render_back_exactly(data: list[dict[str, Any]]) -> None:
    chosen = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"o{i}"},
               "data": d} for i, d in enumerate(data)]
    assert check_render(dump_yaml_stream(chosen)) == chosen
