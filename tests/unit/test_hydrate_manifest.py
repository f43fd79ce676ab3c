"""``manifest.yaml`` bytes against go-yaml v3's own expectations.

The oracles are the go-yaml v3 project's test tables (``encode_test.go``: the scalar cases,
which do not depend on the indent; ``TestSortedOutput``: the order of map keys) and, for the
indentation Argo CD's commit server asks for (``SetIndent(2)``), the rule of go-yaml v3's
``yaml_emitter_increase_indent_compact`` worked out by hand: with an indent of 2 every nested
block (a sequence under a key, a mapping in a sequence item, a literal block) sits two columns
deeper than its parent. Round trips through a Go YAML reader are in
``tests/integration/test_hydrate.py``.
"""

from __future__ import annotations

import math
import random

import pytest
import yaml

from kiln.hydrate.manifest import dump_manifests, go_float, key_order, plain_tag

# (value, what go-yaml v3 writes after "v: "), from go-yaml v3's encode_test.go
GO_YAML_SCALARS = [
    ("hi", "hi"), ("true", '"true"'), ("false", '"false"'), (True, "true"), (False, "false"),
    (10, "10"), (-10, "-10"), (4294967296, "4294967296"), ("10", '"10"'), (0.1, "0.1"),
    (-0.1, "-0.1"), (math.inf, ".inf"), (-math.inf, "-.inf"), (math.nan, ".nan"),
    (None, "null"), ("", '""'), ("-", "'-'"), ("off", '"off"'), ("b\nc", "|-\n  b\n  c"),
]


@pytest.mark.parametrize(("value", "expected"), GO_YAML_SCALARS)
def test_scalars_as_go_yaml_v3_writes_them(value: object, expected: str) -> None:
    assert dump_manifests([{"v": value}]).decode() == f"v: {expected}\n"


# go-yaml v3's TestSortedOutput, the string keys, in the order it asserts
GO_YAML_KEY_ORDER = [
    "", ".1", ".2", ".a", "1", "2", "a!10", "a/0001", "a/002", "a/3", "a/10", "a/11",
    "a/0012", "a/100", "a~10", "ab/1", "b/1", "b/01", "b/2", "b/02", "b/3", "b/03", "b1", "b01",
    "b3", "c2.10", "c10.2", "d1", "d7", "d7abc", "d12", "d12a", "e2b", "e4b", "e21a",
]


def test_keys_in_go_yaml_v3_order() -> None:
    shuffled = list(GO_YAML_KEY_ORDER)
    random.Random(7).shuffle(shuffled)
    assert sorted(shuffled, key=key_order) == GO_YAML_KEY_ORDER
    text = dump_manifests([dict.fromkeys(shuffled, 1)]).decode()
    assert list(yaml.safe_load(text)) == GO_YAML_KEY_ORDER  # PyYAML keeps the text's order


def test_indent_two_and_documents() -> None:
    objects = [
        {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "a"},
         "data": {"script": "echo a\necho b\n"}},
        {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}], "args": ["x"]}]},
         "kind": "Pod", "apiVersion": "v1"},
    ]
    assert dump_manifests(objects).decode() == (
        "apiVersion: v1\n"
        "data:\n"
        "  script: |\n"
        "    echo a\n"
        "    echo b\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: a\n"
        "---\n"
        "apiVersion: v1\n"
        "kind: Pod\n"
        "spec:\n"
        "  containers:\n"
        "    - args:\n"
        "        - x\n"
        "      name: c\n"
        "      ports:\n"
        "        - containerPort: 80\n")


@pytest.mark.parametrize("text", ["yes", "Y", "n", "ON", "1:20", "2024-01-31", "0x1F", "0o17",
                                  "017", "1_000", "+5", "1e3", ".5", "-.inf", "~", "null",
                                  "<<", "2001-12-14t21:59:43.10-05:00"])
def test_strings_go_yaml_v3_reads_otherwise_are_quoted(text: str) -> None:
    assert plain_tag(text) != "tag:yaml.org,2002:str"
    assert dump_manifests([{"v": text}]).decode() == f'v: "{text}"\n'


@pytest.mark.parametrize("text", ["hello", "2024-13-45", "1.2.3", "v1", "._5", "0x", "=",
                                  "1e", "abc:def", "-x"])
def test_strings_go_yaml_v3_reads_as_strings_stay_plain(text: str) -> None:
    assert plain_tag(text) == "tag:yaml.org,2002:str"
    assert dump_manifests([{"v": text}]).decode() == f"v: {text}\n"


# strconv.FormatFloat(f, 'g', -1, 64), from Go's documented examples and ftoa_test.go
@pytest.mark.parametrize(("value", "expected"), [
    (1e6, "1e+06"), (123456.0, "123456"), (1234567.0, "1.234567e+06"), (1e-5, "1e-05"),
    (0.0001, "0.0001"), (3.0, "3"), (-2.5, "-2.5"), (1e21, "1e+21"), (100.0, "100"),
    (0.1 + 0.2, "0.30000000000000004"), (5e-324, "5e-324"), (-0.0, "-0"),
])
def test_floats_as_go_formats_them(value: float, expected: str) -> None:
    assert go_float(value) == expected


def test_same_objects_same_bytes_and_unicode_kept() -> None:
    objects = [{"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "ü"},
                "data": {"b": "é", "a": "x"}}]
    first = dump_manifests(objects)
    assert first == dump_manifests([dict(reversed(list(objects[0].items())))])
    assert "ü".encode() in first
    assert dump_manifests([]) == b""
