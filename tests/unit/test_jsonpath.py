"""kiln's JSONPath engine (kubectl's template language) and the ``jsonPath`` modifier.

Expected outputs are written by hand from kubectl's documented JSONPath semantics
(https://kubernetes.io/docs/reference/kubectl/jsonpath/) and client-go's printing rules:
results of one action joined by a space, strings raw, maps and lists as compact JSON with
sorted keys, Go's number formatting. None of them was produced by running kiln. client-go's
own tables run separately, from a fetched client-go (tests/conformance).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln.core import jsonpath as jp
from kiln.core import placeholders as ph
from kiln.core import secrets as s
from kiln.core.errors import KilnError, SecretError
from kiln.core.secret_modifiers import ModifierError, apply_modifier

# The example object of kubectl's JSONPath page (numbers as Go's json.Unmarshal reads them).
DOC = jp.loads_json("""{
  "kind": "List",
  "items": [
    {"kind": "None", "metadata": {"name": "127.0.0.1",
                                  "labels": {"kubernetes.io/hostname": "127.0.0.1"}},
     "status": {"capacity": {"cpu": "4"}, "ready": true,
                "addresses": [{"type": "LegacyHostIP", "address": "127.0.0.1"}]}},
    {"kind": "None", "metadata": {"name": "127.0.0.2",
                                  "labels": {"kubernetes.io/hostname": "127.0.0.2"}},
     "status": {"capacity": {"cpu": "8"}, "ready": false,
                "addresses": [{"type": "LegacyHostIP", "address": "127.0.0.2"},
                              {"type": "another", "address": "127.0.0.3"}]}}
  ],
  "users": [
    {"name": "myself", "user": {}},
    {"name": "e2e", "user": {"username": "admin", "password": "secret"}}
  ]
}""")

NUMS = {"n": [0, 1, 2, 3, 4, 5], "pods": [
    {"name": "a", "cpu": 1, "ready": True, "zone": "x"},
    {"name": "b", "cpu": 3, "ready": False},
    {"name": "c", "cpu": 5, "ready": True, "zone": "y"},
]}


def r(template: str, data: Any = DOC, **kw: Any) -> str:
    return jp.render(template, data, **kw)


# -- the kubectl documentation's table --------------------------------------------------------

@pytest.mark.parametrize(("template", "expected"), [
    ("{.kind}", "List"),
    ("{['kind']}", "List"),
    ("{$.kind}", "List"),
    ("{@.kind}", "List"),
    ("{..name}", "127.0.0.1 127.0.0.2 myself e2e"),
    ("{.items[*].metadata.name}", "127.0.0.1 127.0.0.2"),
    ("{.users[0].name}", "myself"),
    ("{.items[*]['metadata.name', 'status.capacity']}",
     '127.0.0.1 127.0.0.2 {"cpu":"4"} {"cpu":"8"}'),
    ('{.users[?(@.name=="e2e")].user.password}', "secret"),
    ("{range .items[*]}[{.metadata.name}, {.status.capacity}] {end}",
     '[127.0.0.1, {"cpu":"4"}] [127.0.0.2, {"cpu":"8"}] '),
    ("{range .items[*]}{.metadata.name}{'\\t'}{end}", "127.0.0.1\t127.0.0.2\t"),
    ("{.items[0].metadata.labels.kubernetes\\.io/hostname}", "127.0.0.1"),
    ("{.items[*].status.addresses[*].address}", "127.0.0.1 127.0.0.2 127.0.0.3"),
])
def test_kubectl_documented_examples(template: str, expected: str) -> None:
    assert r(template) == expected


# -- text, fields and printing ----------------------------------------------------------------

def test_text_outside_actions_is_literal() -> None:
    assert r("no actions here") == "no actions here"
    assert r("kind={.kind}; first={.users[0].name}.") == "kind=List; first=myself."
    assert r("") == ""


def test_actions_concatenate_and_results_of_one_action_join_with_a_space() -> None:
    assert r("{.users[0].name}{.users[1].name}") == "myselfe2e"
    assert r("{.users[*].name}") == "myself e2e"


@pytest.mark.parametrize(("value", "printed"), [
    ("raw <string> & \"quotes\"", "raw <string> & \"quotes\""),
    ("héllo ✓", "héllo ✓"),
    (True, "true"),
    (False, "false"),
    (None, "null"),
    (7, "7"),
    (-12, "-12"),
    (2.0, "2"),
    (2.5, "2.5"),
    (1000000.0, "1e+06"),
    (123456.0, "123456"),
    (1234567.0, "1.234567e+06"),
    (0.0001, "0.0001"),
    (0.00001, "1e-05"),
    (-3.25, "-3.25"),
    (12345678901234567890, "12345678901234567890"),
])
def test_scalars_print_like_go_fmt(value: Any, printed: str) -> None:
    assert r("{.v}", {"v": value}) == printed


@pytest.mark.parametrize(("value", "printed"), [
    ({"b": 1, "a": [1, 2.5, "x"]}, '{"a":[1,2.5,"x"],"b":1}'),
    ([{"z": None, "y": True}], '[{"y":true,"z":null}]'),
    ({"html": "<a&b>"}, '{"html":"\\u003ca\\u0026b\\u003e"}'),
    ({"ctl": "a\nb\tc\u0001\"\\"}, '{"ctl":"a\\nb\\tc\\u0001\\"\\\\"}'),
    ({"u": "é\u2028"}, '{"u":"é\\u2028"}'),
    ([1e21, 1e20, 1e-7, 0.000001, 3.0], "[1e+21,100000000000000000000,1e-7,0.000001,3]"),
    ({}, "{}"),
    ([], "[]"),
    (OrderedDict([("z", 1), ("a", 2)]), '{"z":1,"a":2}'),
])
def test_maps_and_lists_print_as_go_json(value: Any, printed: str) -> None:
    assert r("{.v}", {"v": value}) == printed


def test_root_prints_whole_value() -> None:
    assert r("{$}", {"b": [1], "a": "x"}) == '{"a":"x","b":[1]}'
    assert r("{@}", [1, "two"]) == '[1,"two"]'


def test_escaped_dots_and_slashes_and_dashes_in_field_names() -> None:
    data = {"a.b": {"c": 1}, "web/html": 2, "k8s-app": 3}
    assert r("{.a\\.b.c}", data) == "1"
    assert r("{.web/html}", data) == "2"
    assert r("{.k8s-app}", data) == "3"
    assert r("{['web/html']}", data) == "2"


def test_bracket_key_with_a_dot_is_a_path_like_client_go() -> None:
    assert r("{['metadata.name']}", {"metadata": {"name": "n"}}) == "n"


def test_quoted_literals_with_go_escapes() -> None:
    assert r("{'{'}{.kind}{'}'}") == "{List}"
    assert r('{"a\\tb\\n"}') == "a\tb\n"
    assert r('{"caf\\u00e9"}') == "café"
    assert r("{'it\\'s'}") == "it's"
    assert r('{"say \\"hi\\""}') == 'say "hi"'


def test_number_and_bool_literals_print_themselves() -> None:
    assert r("{1}{' '}{-2}{' '}{2.5}{' '}{true}", {}) == "1 -2 2.5 true"


# -- arrays -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("template", "expected"), [
    ("{.n[0]}", "0"),
    ("{.n[5]}", "5"),
    ("{.n[-1]}", "5"),
    ("{.n[-6]}", "0"),
    ("{.n[1:3]}", "1 2"),
    ("{.n[:2]}", "0 1"),
    ("{.n[4:]}", "4 5"),
    ("{.n[-2:]}", "4 5"),
    ("{.n[1:-1]}", "1 2 3 4"),
    ("{.n[::2]}", "0 2 4"),
    ("{.n[1::2]}", "1 3 5"),
    ("{.n[0:6:3]}", "0 3"),
    ("{.n[0:5:10]}", "0"),
    ("{.n[2:2]}", ""),
    ("{.n[*]}", "0 1 2 3 4 5"),
    ("{.n}", "[0,1,2,3,4,5]"),
    ("{.n[0,2,-1]}", "0 2 5"),
    ("{.n[0:2, 4]}", "0 1 4"),
])
def test_indices_slices_steps_and_unions(template: str, expected: str) -> None:
    assert r(template, NUMS) == expected


@pytest.mark.parametrize(("template", "message"), [
    ("{.n[6]}", "array index out of bounds: index 6, length 6"),
    ("{.n[-7]}", "array index out of bounds: index -1, length 6"),
    ("{.n[0:7]}", "array index out of bounds: index 6, length 6"),
    ("{.n[4:2]}", "starting index 4 is greater than ending index 2"),
    ("{.n[0:4:0]}", "step must be > 0"),
    ("{.n[0:4:-1]}", "step must be > 0"),
    ("{.pods[0].name[0]}", "string is not array or slice"),
    ("{.pods[0][0]}", "map[string]interface {} is not array or slice"),
])
def test_array_errors(template: str, message: str) -> None:
    with pytest.raises(jp.JSONPathError) as info:
        r(template, NUMS)
    assert str(info.value) == message


def test_union_of_keys_on_a_map() -> None:
    assert r("{.pods[0]['name', 'zone']}", NUMS) == "a x"


# -- wildcards and recursive descent ----------------------------------------------------------

def test_wildcard_on_a_map_yields_values_in_order() -> None:
    assert r("{.m.*}", {"m": {"x": 1, "y": "two", "z": [3]}}) == "1 two [3]"


def test_recursive_descent() -> None:
    data = {"a": {"name": "1", "b": [{"name": "2"}, {"c": {"name": "3"}}]}, "name": "0"}
    assert r("{..name}", data) == "0 1 2 3"
    assert r("{...name}", data) == "0 1 2 3"
    assert r("{..c.name}", data) == "3"
    # '..' alone: the value and every descendant that has children (non-empty strings too).
    assert r("{..}", [1, [2]]) == "[1,[2]] [2]"


def test_more_than_two_dots_is_an_error() -> None:
    with pytest.raises(jp.JSONPathError, match="invalid multiple recursive descent"):
        jp.parse("{....name}")


# -- filters ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("template", "expected"), [
    ('{.pods[?(@.name=="b")].cpu}', "3"),
    ("{.pods[?(@.name=='b')].cpu}", "3"),
    ('{.pods[?(@.name!="b")].name}', "a c"),
    ("{.pods[?(@.cpu<3)].name}", "a"),
    ("{.pods[?(@.cpu<=3)].name}", "a b"),
    ("{.pods[?(@.cpu>3)].name}", "c"),
    ("{.pods[?(@.cpu>=3)].name}", "b c"),
    ("{.pods[?(@.cpu == 5)].name}", "c"),
    ("{.pods[?(@.ready==true)].name}", "a c"),
    ("{.pods[?(@.ready!=true)].name}", "b"),
    ("{.pods[?(@.zone)].name}", "a c"),
    ('{.pods[?(@.name>"a")].name}', "b c"),
    ("{.n[?(@>3)]}", "4 5"),
    ('{.pods[?(@.name=="c")]}', '{"cpu":5,"name":"c","ready":true,"zone":"y"}'),
])
def test_filters(template: str, expected: str) -> None:
    assert r(template, NUMS) == expected


def test_filter_on_a_missing_key_fails_unless_missing_keys_are_allowed() -> None:
    template = '{.pods[?(@.zone=="x")].name}'
    with pytest.raises(jp.JSONPathError, match="zone is not found"):
        r(template, NUMS)
    assert r(template, NUMS, allow_missing_keys=True) == "a"


def test_filter_comparisons_follow_go_kinds() -> None:
    floats = jp.loads_json('{"p": [{"v": 1}, {"v": 2}]}')
    # Go's json gives float64; an integer literal is an int: incompatible, as in AVP.
    with pytest.raises(jp.JSONPathError, match="incompatible types for comparison"):
        r("{.p[?(@.v==1)]}", floats)
    assert r("{.p[?(@.v==1.0)].v}", floats) == "1"
    with pytest.raises(jp.JSONPathError, match="invalid type for comparison"):
        r("{.p[?(@.v<true)]}", {"p": [{"v": True}]})
    with pytest.raises(jp.JSONPathError, match="invalid type for comparison"):
        r("{.p[?(@.v==1)]}", {"p": [{"v": None}]})
    with pytest.raises(jp.JSONPathError, match="unrecognized filter operator <>"):
        r("{.p[?(@.v<>1)]}", {"p": [{"v": 1}]})


def test_filter_needs_a_list() -> None:
    with pytest.raises(jp.JSONPathError) as info:
        r('{.m[?(@.a=="b")]}', {"m": {"a": "hunter2"}})
    assert str(info.value) == "map[string]interface {} is not array or slice and cannot be " \
                              "filtered"
    assert "hunter2" not in str(info.value)


# -- range ------------------------------------------------------------------------------------

def test_range_and_end() -> None:
    assert r("{range .pods[*]}{.name}={.cpu};{end}", NUMS) == "a=1;b=3;c=5;"
    assert r("{range .pods[*]}{.name}{'\\n'}{end}done", NUMS) == "a\nb\nc\ndone"


def test_nested_ranges() -> None:
    data = {"items": [{"n": "p1", "c": [{"n": "x"}, {"n": "y"}]}, {"n": "p2", "c": [{"n": "z"}]}]}
    assert r("{range .items[*]}{.n}:{range .c[*]}{.n},{end}|{end}", data) == "p1:x,y,|p2:z,|"


def test_range_over_nothing_prints_nothing() -> None:
    assert r("{range .items[*]}{.n}{end}end", {"items": []}, allow_missing_keys=True) == "end"


def test_end_without_range_is_an_error() -> None:
    with pytest.raises(jp.JSONPathError, match="not in range, nothing to end"):
        r("{range .n[*]}{@}{end}{end}", NUMS)


def test_unknown_identifier_is_an_error() -> None:
    with pytest.raises(jp.JSONPathError, match="unrecognized identifier hello"):
        r("{hello}", NUMS)


# -- missing keys and parse errors ------------------------------------------------------------

def test_missing_key_is_an_error_or_empty() -> None:
    with pytest.raises(jp.JSONPathError) as info:
        r("{.nope}", {"secret": "hunter2"})
    assert str(info.value) == "nope is not found"
    assert r("a{.nope}b", {}, allow_missing_keys=True) == "ab"


@pytest.mark.parametrize(("template", "message"), [
    ("{.kind", "unclosed action"),
    ("{.kind\n}", "unclosed action"),
    ("{*}", "unrecognized character in action: U+002A '*'"),
    ("{.a[1}", "unterminated array"),
    ("{.a[?(@.b}", "unterminated filter"),
    ("{.a[?(@.b)}", "unclosed array expect ]"),
    ("{+1.2.3}", "cannot parse number +1.2.3"),
    ("{'abc}", "unterminated quoted string"),
    ('{"\\q"}', 'unquote string "\\q" error invalid syntax'),
    ('{.a["x"]}', 'invalid array index "x"'),
    ("{.a[1 ]}", "invalid array index 1 "),
])
def test_parse_errors(template: str, message: str) -> None:
    with pytest.raises(jp.JSONPathError) as info:
        jp.parse(template)
    assert str(info.value) == message


# -- JSON input, limits -----------------------------------------------------------------------

def test_loads_json_reads_numbers_as_floats_and_rejects_nan() -> None:
    value = jp.loads_json('{"a": 1, "b": [2.5]}')
    assert value == {"a": 1.0, "b": [2.5]}
    assert isinstance(value["a"], float)
    for bad in ("NaN", '{"a": Infinity}', "1e400", "{", "hunter2"):
        with pytest.raises(jp.JSONPathError) as info:
            jp.loads_json(bad)
        assert "hunter2" not in str(info.value)


def test_work_is_bounded() -> None:
    level: Any = list(range(10))
    for _ in range(7):
        level = [level] * 10  # 10**7 nodes, shared: small in memory
    started = time.monotonic()
    with pytest.raises(jp.JSONPathError, match="evaluation exceeds"):
        r("{..}", level)
    assert time.monotonic() - started < 30


def test_output_is_bounded() -> None:
    big = "x" * (1024 * 1024)
    with pytest.raises(jp.JSONPathError, match="output exceeds"):
        r("{range .l[*]}{@}{end}", {"l": [big] * 20})


def test_yaml_keys_that_are_not_strings_match_their_text() -> None:
    # yamlParse may give int/bool/null keys; Go's YAML-to-JSON step names them by their text.
    data = {1: "one", None: "nil", False: "no"}
    assert r("{.1}/{.null}/{.false}", data) == "one/nil/no"
    assert r("{@}", data) == '{"1":"one","false":"no","null":"nil"}'


def test_lone_surrogates_print_as_replacement_characters() -> None:
    assert r("{.s}", {"s": "a\ud800b"}) == "a\ufffdb"
    assert r("{@}", {"s": "a\ud800b"}) == '{"s":"a\\ufffdb"}'


def test_deep_values_fail_cleanly() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(jp.JSONPathError):
        r("{@}", deep)


# -- the jsonPath modifier --------------------------------------------------------------------

def test_modifier_parses_json_strings_and_joins_args_with_spaces() -> None:
    cfg = json.dumps({"db": {"user": "dbu", "port": 5432, "hosts": ["h1", "h2"]}})
    mod = ph.Modifier("jsonPath", ("{.db.user}:{.db.port}",))
    assert apply_modifier(mod, cfg) == "dbu:5432"
    # AVP splits the pipeline on whitespace and joins the words with one space.
    mod = ph.Modifier("jsonPath", ("{range", ".db.hosts[*]}{@}{','}{end}"))
    assert apply_modifier(mod, cfg) == "h1,h2,"
    mod = ph.Modifier("jsonPath", ("{.a}",))
    assert apply_modifier(mod, {"a": {"b": 1}}) == '{"b":1}'


def test_modifier_errors_never_quote_the_value() -> None:
    for template, value in [("{.missing}", '{"k": "hunter2"}'), ("{.k}", "hunter2 not json"),
                            ("{.k[0]}", {"k": "hunter2"}), ("{.k", '{"k": "hunter2"}')]:
        with pytest.raises(ModifierError) as info:
            apply_modifier(ph.Modifier("jsonPath", (template,)), value)
        assert "hunter2" not in str(info.value)


# -- fuzz -------------------------------------------------------------------------------------

GRAMMAR = st.sampled_from([*"{}[]()?@$.,:*'\"\\ -+0123456789=!<>abnrt_\n\t",
                           "range", "end", "..", "[?(", "true", "{.a}", "[*]", "\\u00"])
TEMPLATES = st.lists(GRAMMAR | st.text(max_size=3), max_size=30).map("".join)
FUZZ_DATA = {"a": [{"b": 1, "c": "hunter2"}, {"b": 2.5, "d": None}], "b": {"x": [True, "s"]}}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEMPLATES)
def test_fuzz_engine_ends_in_text_or_jsonpath_error(template: str) -> None:
    try:
        out = jp.render(template, FUZZ_DATA)
    except jp.JSONPathError as exc:
        assert "\n" not in str(exc) or "\n" in template
        assert "hunter2" not in str(exc)
    else:
        assert isinstance(out, str)


class _OneSecret:
    """A backend holding one secret whose values must never appear in an error."""

    name = "mem"

    def open(self) -> None:
        """Nothing to open."""

    def read(self, key: s.ReadKey) -> dict[str, Any]:
        """Always the same secret."""
        return {"cfg": json.dumps(FUZZ_DATA), "plain": "hunter2"}


SAFE = TEMPLATES.map(lambda t: " ".join(t.translate(str.maketrans("", "", "|<>")).split()))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SAFE, st.sampled_from(["cfg", "plain"]))
def test_fuzz_modifier_ends_in_a_value_or_a_one_line_secret_error(template: str,
                                                                   key: str) -> None:
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
           "stringData": {"v": f"<path:kv/app#{key} | jsonPath {template}>"}}
    grammar = ph.Grammar(avp=True, schemes=frozenset({"mem"}))
    policy = s.FetchPolicy(concurrency=1, timeout=1, retries=0, backoff=0.001)
    try:
        ph.resolve_stream([obj], grammar, _OneSecret(), policy)
    except KilnError as exc:
        assert isinstance(exc, SecretError)
        for line in [exc.one_line(), *exc.details()]:
            assert "hunter2" not in line
            assert "\n" not in line
            assert "jsonPath: " in line  # the modifier is named
