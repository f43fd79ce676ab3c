"""Manifest stream parsing: safe loading, duplicate keys, alias bombs, flattening, validation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from kiln.core.errors import InputError
from kiln.core.manifests import (
    MAX_DEPTH,
    dump_json,
    dump_yaml_stream,
    load_json,
    load_yaml_documents,
    normalise,
    parse_stream,
)


def test_multi_document_stream_drops_empty_documents() -> None:
    text = ("---\napiVersion: v1\nkind: A\n---\n---\n# only a comment\n---\n"
            "apiVersion: v1\nkind: B\n")
    assert [o["kind"] for o in parse_stream(text, "s.yaml")] == ["A", "B"]


def test_list_kinds_are_flattened_in_order() -> None:
    text = """apiVersion: v1
kind: ConfigMapList
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: one}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: two}}
---
apiVersion: v1
kind: List
items: null
"""
    objects = parse_stream(text, "s.yaml")
    assert [o["metadata"]["name"] for o in objects] == ["one", "two"]


def test_duplicate_keys_are_rejected_with_line() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n"
    with pytest.raises(InputError) as err:
        parse_stream(text, "dup.yaml")
    assert "duplicate key 'name'" in err.value.one_line()
    assert err.value.source == "dup.yaml"


def test_duplicate_json_keys_are_rejected() -> None:
    with pytest.raises(InputError, match="duplicate key 'kind'"):
        load_json('{"kind": "A", "kind": "B"}', "x.json")


def test_malformed_yaml_names_line() -> None:
    with pytest.raises(InputError) as err:
        parse_stream("apiVersion: v1\nkind: [unclosed\n", "bad.yaml")
    assert "malformed YAML: line" in err.value.message


@pytest.mark.parametrize(("text", "what"), [
    ("- a\n- b\n", "got str"),
    ("just a string\n", "got str"),
    ("42\n", "got int"),
    ("kind: ConfigMap\n", "no apiVersion"),
    ("apiVersion: v1\n", "no kind"),
])
def test_documents_must_be_kubernetes_objects(text: str, what: str) -> None:
    with pytest.raises(InputError) as err:
        parse_stream(text, "f.yaml")
    assert what in err.value.message
    assert "document 0" in err.value.message


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    text = "apiVersion: v1\nkind: ConfigMap\n" + "\n".join(lines) + "\n"
    started = time.perf_counter()
    with pytest.raises(InputError, match="alias bomb"):
        parse_stream(text, "bomb.yaml")
    assert time.perf_counter() - started < 5  # bounded: the expansion is never materialised


def test_modest_aliases_are_allowed() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: a}\ndata:\n  copy: *m\n"
    (obj,) = parse_stream(text, "ok.yaml")
    assert obj["data"]["copy"] == {"name": "a"}


def test_yaml_stream_round_trips_and_keeps_key_order() -> None:
    objects = [{"kind": "B", "apiVersion": "v1", "z": 1, "a": 2}, {"apiVersion": "v1", "kind": "C"}]
    text = dump_yaml_stream(objects)
    assert text.index("kind: B") < text.index("apiVersion: v1")
    assert text.count("---") == 1
    assert parse_stream(text, "rt") == objects


# -- go-yaml v2 / sigs.k8s.io/yaml semantics (the values are go-yaml's documented rules; the
# integration test tests/integration/test_yaml_fidelity.py checks them against helm) --------

def one(text: str) -> Any:
    (doc,) = list(load_yaml_documents(text, "doc.yaml"))
    return doc


@pytest.mark.parametrize(("plain", "value"), [
    ("2001-12-14T21:59:43Z", "2001-12-14T21:59:43Z"),  # PyYAML: a datetime
    ("2002-12-14", "2002-12-14"),
    ("12:30", "12:30"),  # PyYAML: 750 (sexagesimal)
    ("1:20", "1:20"),  # PyYAML: 80
    ("=", "="),  # PyYAML: refused as malformed
    ("y", True), ("Y", True), ("n", False), ("N", False), ("on", True), ("Off", False),
    ("yEs", "yEs"), ("~", None), ("", None), ("Null", None),
    ("1e3", 1000), ("12e3", 12000), ("1E5", 100000), ("0o17", 15), ("017", 15),
    ("0x1F", 31), ("0b101", 5), ("-0b101", -5), ("1_000", 1000), ("08", 8),
    ("-.5", -0.5), ("+.5", 0.5), ("1.5", 1.5), ("1e400", "1e400"), ("0x", "0x"),
    ("9223372036854775807", 2 ** 63 - 1), ("18446744073709551615", float(2 ** 64 - 1)),
    ("<<", "<<"), (".nanx", ".nanx"), ("-.nan", "-.nan"),
])
def test_plain_scalars_read_as_argo_cd_reads_them(plain: str, value: Any) -> None:
    got = one(f"v: {plain}\n")["v"]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("key", "text"), [
    ("true", "true"), ("n", "false"), ("on", "true"), ("1", "1"), ("0x10", "16"),
    ("1.5", "1.5"), ("1e3", "1000"), ("1e6", "1e+06"), ("1.00000001", "1"),
    ("1.0000001", "1.0000001"),
    ("3.14159265358979", "3.1415927"), ("1e-7", "1e-07"), ("-0.0", "-0"), (".inf", ".inf"),
    ("-.Inf", "-.inf"), (".NaN", ".nan"), ("2001-12-14", "2001-12-14"), ("'1'", "1"),
])
def test_keys_become_strings_as_sigs_k8s_yaml_writes_them(key: str, text: str) -> None:
    assert one(f"{key}: x\n") == {text: "x"}


@pytest.mark.parametrize(("doc", "problem"), [
    ("~: x\n", "null mapping key"),
    ("null: x\n", "null mapping key"),
    ("? \n: x\n", "null mapping key"),
    ("9223372036854775808: x\n", "unsigned 64-bit"),
    ("[a]: x\n", "mapping or a sequence"),
    ("{a: 1}: x\n", "mapping or a sequence"),
    ("v: .nan\n", "not a JSON number"),
    ("v: -.inf\n", "not a JSON number"),
    ("y: 1\ntrue: 2\n", "duplicate key 'true'"),
    ("1: a\n'1': b\n", "duplicate key '1'"),
    ("<<: x\n", "map merge requires"),
    ("a: &r [*r]\n", "contains itself"),
    ("v: !!int abc\n", "cannot decode !!str `abc` as a !!int"),
    ("v: !!binary '!!'\n", "invalid base64"),
])
def test_what_argo_cd_refuses_is_a_one_line_input_error(doc: str, problem: str) -> None:
    with pytest.raises(InputError) as err:
        one(doc)
    line = err.value.one_line()
    assert line.startswith("doc.yaml: line ") and problem in line and "\n" not in line


def test_merge_keys_follow_go_yaml_v2() -> None:
    text = ("base: &b {a: 1, b: 1}\nother: &o {b: 2, c: 2}\n"
            "before: {a: 0, <<: *b}\n"  # a merge replaces keys set before it
            "after: {<<: *b, a: 9}\n"  # an explicit key after it wins
            "list: {<<: [*b, *o]}\n"  # in a list, the first mapping wins
            "quoted: {'<<': x}\n")
    doc = one(text)
    assert doc["before"] == {"a": 1, "b": 1}
    assert doc["after"] == {"a": 9, "b": 1}
    assert doc["list"] == {"a": 1, "b": 1, "c": 2}
    assert doc["quoted"] == {"<<": "x"}


def test_tags() -> None:
    doc = one("a: !!str 12\nb: !!int '12'\nc: !!float 1\nd: !!binary aGVsbG8=\n"
              "e: !custom 12\nf: ! 12\ng: !!set {x}\nh: !!timestamp 2001-12-14\n")
    assert doc == {"a": "12", "b": 12, "c": 1, "d": "hello", "e": "12", "f": "12",
                   "g": {"x": None}, "h": "2001-12-14"}


def test_every_ambiguous_string_is_quoted_on_output() -> None:
    for text in ("y", "n", "Y", "N", "on", "1e3", "12e3", "1E5", "0o17", "-.5", "+.5",
                 "017", "0x1F", "1_000", "~", "", "null", "<<", ".inf", "true"):
        out = dump_yaml_stream([{"apiVersion": "v1", "kind": "K", "v": text, text: "k"}])
        assert parse_stream(out, "out") == [{"apiVersion": "v1", "kind": "K", "v": text,
                                             text: "k"}]
        assert f"v: {text}\n" not in out


def test_strings_go_yaml_reads_as_strings_stay_plain() -> None:
    out = dump_yaml_stream([{"apiVersion": "v1", "kind": "K",
                             "v": ["12:30", "=", "2001-12-14", "yes!", "1.2.3"]}])
    assert "- 12:30\n- =\n- 2001-12-14\n- yes!\n- 1.2.3\n" in out


def test_shared_objects_are_written_in_full_not_as_anchors() -> None:
    (obj,) = parse_stream("apiVersion: v1\nkind: K\na: &x {b: 1}\nc: *x\n", "s.yaml")
    out = dump_yaml_stream([obj])
    assert "&" not in out and "*" not in out
    assert parse_stream(out, "out") == [obj]


def nested(levels: int) -> str:
    """A manifest of ``levels`` nested mappings, the top-level object included."""
    body = "x"
    for _ in range(levels - 1):
        body = "{a: " + body + "}"
    return "apiVersion: v1\nkind: ConfigMap\ndata: " + body + "\n"


def test_nesting_up_to_the_bound_renders_and_round_trips() -> None:
    objects = parse_stream(nested(MAX_DEPTH), "deep.yaml")
    assert parse_stream(dump_yaml_stream(objects), "again") == objects
    assert dump_json(objects)


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 600, 999, 5000])
def test_deeper_nesting_is_a_one_line_error_naming_the_file(levels: int) -> None:
    with pytest.raises(InputError) as err:
        parse_stream(nested(levels), "deep.yaml")
    line = err.value.one_line()
    assert line.startswith("deep.yaml: ") and ("deeper than 200" in line or "depth" in line)


def test_objects_from_json_are_conformed_or_refused() -> None:
    good = {"apiVersion": "v1", "kind": "K", "f": 2.0, "big": 2 ** 70, "x": [1.5]}
    assert normalise([good], "r") == [{"apiVersion": "v1", "kind": "K", "f": 2,
                                       "big": float(2 ** 70), "x": [1.5]}]
    for bad, problem in ((float("nan"), "not a JSON number"), ({1: "a"}, "not a string"),
                         (b"x", "not JSON data")):
        with pytest.raises(InputError, match=problem):
            normalise([{"apiVersion": "v1", "kind": "K", "v": bad}], "r")
    deep: dict[str, Any] = {"apiVersion": "v1", "kind": "K"}
    cursor = deep
    for _ in range(MAX_DEPTH + 5):
        cursor["a"] = {}
        cursor = cursor["a"]
    with pytest.raises(InputError, match="deeper than"):
        normalise([deep], "r")
    with pytest.raises(InputError, match="not a JSON number"):
        normalise([load_json('{"apiVersion": "v1", "kind": "K", "v": NaN}', "j")], "j")


def test_directory_json_files_are_conformed_and_errors_name_the_file(tmp_path: Path) -> None:
    from kiln import App, Engine

    (tmp_path / "a.json").write_text('{"apiVersion": "v1", "kind": "K", "v": NaN}')
    engine = Engine(use_cache=False, entry_points=False)
    with pytest.raises(InputError) as err:
        engine.render(App(path=tmp_path))
    assert err.value.source == str(tmp_path / "a.json")
    assert "not a JSON number" in err.value.message
    (tmp_path / "a.json").write_text('{"apiVersion": "v1", "kind": "K", "v": 2.0, "w": "y"}')
    text = engine.render(App(path=tmp_path)).to_yaml()
    assert text == "apiVersion: v1\nkind: K\nv: 2\nw: 'y'\n"
