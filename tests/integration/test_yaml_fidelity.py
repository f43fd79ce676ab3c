"""kiln reads and writes YAML exactly as Argo CD does, with helm as the oracle.

Argo CD reads a tool's output with sigs.k8s.io/yaml (go-yaml v2's rules, then a JSON round
trip). helm's ``fromYaml`` is that same function, so a chart template
``{{ .Files.Get "doc.yaml" | fromYaml | toJson }}`` prints what a document means to Argo CD, as
JSON, and ``{"Error": ...}`` where Argo CD would refuse it. Over a corpus of ambiguous scalars
(YAML 1.1 and 1.2 booleans, nulls, integers, floats, timestamps, merges, sexagesimals, tags) as
keys and as values:

* kiln's objects equal helm's JSON for the same text, and kiln refuses exactly what helm
  refuses;
* kiln's own output text, run through the same oracle, gives the same JSON again.

helm runs once for the whole corpus (the documents, kiln's re-emitted texts and the texts kiln
writes for objects the test chose), see ``tests/integration/argo_yaml.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from kiln.core.errors import InputError
from kiln.core.manifests import dump_yaml_stream, load_yaml_documents
from tests.integration.argo_yaml import argo_read

pytestmark = pytest.mark.integration

BOOLS = ["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE",
         "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "yEs", "tRUE", "oN",
         "nO", "fAlSe"]
NULLS = ["~", "null", "Null", "NULL", "nULL", "nil", "None"]
INTS = [
    "0", "-0", "+0", "7", "+7", "-7", "012", "-012", "08", "09", "0o12", "0O12", "0o19",
    "0x1F", "0X1f", "-0x1F", "+0x1F", "0x_1F", "0xG", "0x", "0b1010", "0B1010", "-0b1010",
    "+0b1010", "0b_1010", "0b12", "0b", "1_000", "1__000", "_1000", "1000_", "+685_230",
    "01_0", "00", "0_0", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "18446744073709551615", "18446744073709551616",
    "+9223372036854775808", "0xFFFFFFFFFFFFFFFF", "0x1FFFFFFFFFFFFFFFF", "0o1777777777777777777777",
    "99999999999999999999999", "9007199254740993", "1,000", "+-1", "--1", "1-2",
]
FLOATS = [
    "1.0", "-1.5", "+1.5", "1.", "-1.", ".5", "-.5", "+.5", "0.", "-0.0", "1e3", "1E3",
    "1e+3", "1e-3", "12e3", "1E5", "-1e3", "+1e3", "6.8523015e+5", "685.230_15e+03",
    "685_230.15", "1_0.5", "0.1", "0.3", "3.14159265358979", "1e21", "1e20", "1e-7", "1e6",
    "1.5e6", "1234567.0", "123456789012345678901234", "1e400", "-1e400", "1e-400",
    ".5_5", "._5", ".5e1_0", ".5e3", ".5E-3", ".e3", "1e", "e3", "1.2.3", "09.5", "0x1p3",
    ".inf", ".Inf", ".INF", "+.inf", "-.inf", "-.Inf", ".nan", ".NaN", ".NAN", "-.nan",
    "nan", "NaN", "inf", "Inf", "Infinity", "-Infinity", ".", "+", "-", "+.", "-.",
]
TIMESTAMPS = [
    "2001-12-14T21:59:43Z", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5",
    "2001-12-15T02:59:43.1Z", "2002-12-14", "2001-12-14 21:59:43.10", "2001-1-2",
    "2001-12-14T21:59:43+01:00", "20011214",
]
SEXAGESIMALS = ["12:30", "1:20", "190:20:30", "-1:30", "+1:30", "1:30.5", "190:20:30.15",
                "0:0", "12:60"]
OTHERS = ["=", "<<", "a", "ab c", "$1", "0.0.0.0", "1.2.3.4", "v1", "1Gi", "100m", "0755",
          "true_", "yes!", "@", "`"]
SCALARS = BOOLS + NULLS + INTS + FLOATS + TIMESTAMPS + SEXAGESIMALS + OTHERS

TAGGED = [
    "!!str 1", "!!str yes", "!!int 0x1F", '!!int "12"', "!!int abc", "!!int 1.5",
    "!!float 1", "!!float 1e3", "!!float abc", "!!bool yes", "!!bool 1", "!!null ''",
    "!!null ~", "!!null x", "!!binary aGVsbG8=", "!!binary '!!'", "!foo bar", "!foo 12",
    "!!timestamp 2001-12-14", "!!timestamp 2001-12-14T21:59:43.123456789123Z",
    "!!timestamp 2001-12-14 21:59:43.10 -5", "!!timestamp 2001-12-14 21:59:43",
    "!!timestamp 2001-13-14", "!!timestamp 2001-02-29", "!!timestamp 2000-02-29",
    "!!timestamp 2001-12-14 24:00:00", "!!timestamp 12:30", "!!merge x", "! 12",
    "!!set {a, b}", "!!omap [{a: 1}]",
    "!!str [a]",
]
STRUCTURES = [
    "a: 1\n<<: {a: 2}\n", "<<: {a: 2}\na: 1\n", "<<: [{a: 1, b: 1}, {a: 2, c: 2}]\n",
    "<<: x\n", "<<: [x]\n", "<<: ~\n", "b: &x {a: 1}\nc:\n  <<: *x\n  d: 2\n",
    "'<<': v\n", "!!merge <<: {a: 1}\n", "<<: {<<: {a: 1}}\n",
    "a: &s [1, 2]\nb: *s\n", "a: &r [*r]\n", "[a]: v\n", "{a: 1}: v\n", ": v\n",
    "? ~\n: v\n", "a:\n  - - 1\n    - y\n", "a: {y: n, on: off}\n",
    "a: 'y'\nb: \"n\"\nc: |\n  y\nd: >\n  1e3\n",
    "n: x\nN: y\n", "a: &v 1\nb: *v\n", "k: \"\\u00e9\\t\"\n",
    "1.0000001: x\n", "1.5e6: x\n", "1e-7: x\n", "0.000123: x\n", "100000: x\n",
    "1000000: x\n", "-0.0: x\n", "3.14159265358979: x\n", "123456789012345678901234: x\n",
]


def corpus() -> list[str]:
    """Every scalar as a value, a key, in a flow sequence and quoted; then tags and structures."""
    docs: list[str] = []
    for s in SCALARS:
        docs += [f"v: {s}\n", f"{s}: v\n", f"v: [{s}]\n", f"v: {{{s}: {s}}}\n",
                 f"v: '{s}'\n", f"v: \"{s}\"\n", f"v:\n- {s}\n"]
    for t in TAGGED:
        docs += [f"v: {t}\n", f"v: [{t}]\n"]
    return docs + STRUCTURES


def kiln_reads(text: str) -> Any:
    """kiln's object for a one-document text, or the InputError it raises."""
    try:
        (doc,) = list(load_yaml_documents(text, "doc.yaml"))
    except InputError as exc:
        return exc
    return doc


def comparable(value: Any) -> Any:
    """JSON data with every number as a float: helm's oracle decodes numbers as float64."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    return [comparable(v) for v in value]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The corpus, kiln's reading and re-emitted text of each document, and helm's verdicts."""
    docs = corpus()
    read = {f"in{i:04d}": kiln_reads(text) for i, text in enumerate(docs)}
    texts = {f"in{i:04d}": text for i, text in enumerate(docs)}
    for name, obj in read.items():
        if not isinstance(obj, InputError):
            texts["out" + name[2:]] = dump_yaml_stream([obj])
    chosen = {f"em{i:04d}": obj for i, obj in enumerate(emitted_objects())}
    for name, obj in chosen.items():
        texts[name] = dump_yaml_stream([obj])
    oracle = argo_read(texts, tmp_path_factory.mktemp("fidelity"))
    return {"docs": docs, "read": read, "texts": texts, "oracle": oracle, "chosen": chosen}


def emitted_objects() -> list[dict[str, Any]]:
    """Objects the test chose: every corpus scalar as a string key and value, and other
    strings that need care (blank, spaces, indicators, line breaks, non-ASCII, long)."""
    strings = [*SCALARS, "", " ", " a", "a ", "#a", "a #b", "a: b", "- a", "? a", "[a]",
               "{a}", "*a", "&a", "!a", "%a", "|", ">", "'", '"', "a\nb", "a\n", "\ta",
               "é", "\u2028", "\x85", "\ufeffa", "x" * 200, "---", "...", "a\rb"]
    objects: list[dict[str, Any]] = [{"v": text, text: "k"} for text in strings if text != "v"]
    objects.append({"n": [True, False, None, 0, -1, 1.5, 1e21, 1e-7, 2 ** 63 - 1, -(2 ** 63)]})
    return objects


def test_corpus_is_large_and_covers_both_outcomes(results: dict[str, Any]) -> None:
    read = results["read"]
    refused = [n for n, v in read.items() if isinstance(v, InputError)]
    assert len(read) > 1000
    assert 20 < len(refused) < len(read) // 4


DUPLICATES = {"v: {1,000: 1,000}\n", "a: {y: n, on: off}\n", "n: x\nN: y\n"}
"""Two keys that are one key to Argo CD (``1``/``000``... ``y``/``on``, ``n``/``N``): go-yaml
keeps the last, kiln refuses duplicate keys, as it always has (the one deliberate difference)."""


def test_kiln_reads_every_document_as_argo_cd_does(results: dict[str, Any]) -> None:
    wrong = []
    duplicates = set()
    for name, ours in results["read"].items():
        theirs = results["oracle"][name]
        helm_refused = set(theirs) == {"Error"}
        if isinstance(ours, InputError) and "duplicate key" in ours.message and not helm_refused:
            duplicates.add(results["texts"][name])
        elif isinstance(ours, InputError) or helm_refused:
            if not (isinstance(ours, InputError) and helm_refused):
                wrong.append((results["texts"][name], ours, theirs))
        elif comparable(ours) != comparable(theirs):
            wrong.append((results["texts"][name], ours, theirs))
    assert wrong == []
    assert duplicates == DUPLICATES


def test_kiln_output_means_the_same_to_argo_cd(results: dict[str, Any]) -> None:
    oracle = results["oracle"]
    wrong = [(results["texts"]["in" + name[3:]], results["texts"][name], oracle[name])
             for name in oracle if name.startswith("out")
             and oracle[name] != oracle["in" + name[3:]]]
    assert wrong == []


def test_issue_examples(results: dict[str, Any]) -> None:
    """The values named in the issue, checked against helm's reading of them."""
    by_text = dict(zip(results["docs"], results["read"].values(), strict=True))
    assert by_text["v: 2001-12-14T21:59:43Z\n"] == {"v": "2001-12-14T21:59:43Z"}
    assert by_text["v: 12:30\n"] == {"v": "12:30"}
    assert by_text["v: 1:20\n"] == {"v": "1:20"}
    assert by_text["v: =\n"] == {"v": "="}
    for word in ("y", "Y"):
        assert by_text[f"v: {word}\n"] == {"v": True}
    for word in ("n", "N"):
        assert by_text[f"v: {word}\n"] == {"v": False}
    assert by_text["n: v\n"] == {"false": "v"}
    assert by_text["true: v\n"] == {"true": "v"}
    for text in ("y", "n", "1e3", "0o17", "-.5", "+.5", "12e3", "1E5"):
        out = dump_yaml_stream([{"v": text}])
        assert out in (f"v: '{text}'\n", f'v: "{text}"\n'), out


def test_strings_kiln_writes_reach_argo_cd_unchanged(results: dict[str, Any]) -> None:
    oracle = results["oracle"]
    wrong = [(obj, results["texts"][name], oracle[name])
             for name, obj in results["chosen"].items()
             if comparable(oracle[name]) != comparable(obj)]
    assert wrong == []


def test_kiln_reads_its_own_output_back(results: dict[str, Any]) -> None:
    for name, obj in results["chosen"].items():
        assert kiln_reads(results["texts"][name]) == obj
