"""Manifest stream parsing: safe loading, duplicate keys, alias bombs, flattening, validation."""

from __future__ import annotations

import time

import pytest

from kiln.core.errors import InputError
from kiln.core.manifests import dump_yaml_stream, load_json, parse_stream


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
