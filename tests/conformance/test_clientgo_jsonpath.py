"""client-go's own JSONPath tests, read from a fetched client-go, run through kiln's engine.

The cases come from ``util/jsonpath/jsonpath_test.go`` and ``parser_test.go`` at the mirror's
HEAD (``KILN_CLIENTGO_MIRROR``), extracted by :mod:`tests.conformance.gosource`: template,
input and expected output are client-go's. Inputs that client-go builds from JSON are decoded
as Go does (numbers are float64); the two Go struct inputs (``types``, ``storeData``) are
translated below by hand from the Go source, Go structs as ``OrderedDict`` (field order, JSON
names) and Go maps as ``dict``. ``test_case_counts`` prints run / not applicable.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

from kiln.core import jsonpath as jp
from tests.conformance.conftest import mirror
from tests.conformance.gosource import Case, git_show, jsonpath_cases, parser_cases

MIRROR = mirror("KILN_CLIENTGO_MIRROR")
JSONPATH_TEST = git_show(MIRROR, "util/jsonpath/jsonpath_test.go")
PARSER_TEST = git_show(MIRROR, "util/jsonpath/parser_test.go")


def _struct(**fields: Any) -> OrderedDict[str, Any]:
    return OrderedDict(fields)


# TestTypesInput's ``types`` (a map[string]interface{}), field for field.
TYPES: dict[str, Any] = {
    "bools": [True, False, True, False],
    "integers": [1, 2, 3, 4],
    "floats": [1.0, 2.2, 3.3, 4.0],
    "strings": ["one", "two", "three", "four"],
    "interfaces": [True, "one", 1, 1.1],
    "maps": [{"name": "one", "value": 1}, {"name": "two", "value": 2.02},
             {"name": "three", "value": 3.03}, {"name": "four", "value": 4.04}],
    "structs": [_struct(name="one", value=1, type="integer"),
                _struct(name="two", value=2.002, type="float"),
                _struct(name="three", value=3, type="integer"),
                _struct(name="four", value=4.004, type="float")],
}

# TestStructInput's ``storeData`` (a store struct; its fields have no json tags).
STORE = _struct(
    Book=[_struct(Category="reference", Author="Nigel Rees", Title="Sayings of the Centurey",
                  Price=8.95),
          _struct(Category="fiction", Author="Evelyn Waugh", Title="Sword of Honour",
                  Price=12.99),
          _struct(Category="fiction", Author="Herman Melville", Title="Moby Dick", Price=8.99)],
    Bicycle=[_struct(Color="red", Price=19.95, IsNew=True),
             _struct(Color="green", Price=20.01, IsNew=False)],
    Name="jsonpath",
    Labels={"engieer": 10, "web/html": 15, "k8s-app": 20},
    Employees={"jason": "manager", "dan": "clerk"},
)

TRANSLATED = {"types": TYPES, "storeData": STORE}

# Error texts that name a Go static type Python data cannot have.
GO_TYPE_MESSAGES = {"map[string]int is not array or slice"}


def _resolve(case: Case) -> Case:
    if case.na and case.na.startswith("input "):
        var = case.na.split()[1]
        if var in TRANSLATED:
            case.input, case.na = TRANSLATED[var], None
    if case.na is None and case.mode == "error-message" and case.expect in GO_TYPE_MESSAGES:
        case.na = f"the message names the Go static type {case.expect.split()[0]}"
    return case


CASES = [_resolve(c) for c in jsonpath_cases(JSONPATH_TEST)]
RUNNABLE = [c for c in CASES if c.na is None]
PARSER_CASES = parser_cases(PARSER_TEST)


def test_case_counts() -> None:
    """The extractor found client-go's tables (a broken extractor must not pass quietly)."""
    not_applicable = [c for c in CASES if c.na is not None]
    print(f"\nclient-go jsonpath cases: {len(CASES)} found, {len(RUNNABLE)} run, "
          f"{len(not_applicable)} not applicable; parser cases: {len(PARSER_CASES)}")
    for case in not_applicable:
        print(f"  N/A {case.id}: {case.na}")
    assert len(CASES) >= 100
    assert len(RUNNABLE) >= len(CASES) - 5
    assert len(PARSER_CASES) >= 25


@pytest.mark.parametrize("case", RUNNABLE, ids=[c.id for c in RUNNABLE])
def test_clientgo_jsonpath_case(case: Case) -> None:
    """kiln prints what client-go's test expects (or fails where it expects an error)."""
    try:
        template = jp.parse(case.template)
    except jp.JSONPathError as exc:
        assert case.expect_error or case.mode == "error-message", f"parse error {exc}"
        if case.mode == "error-message":
            assert str(exc) == case.expect
        return
    if case.mode == "error-message":
        try:
            template.execute(case.input, allow_missing_keys=case.allow_missing)
        except jp.JSONPathError as exc:
            assert str(exc) == case.expect
        else:
            assert case.expect == "nil"
        return
    if case.expect_error:
        with pytest.raises(jp.JSONPathError):
            template.execute(case.input, allow_missing_keys=case.allow_missing)
        return
    out = template.execute(case.input, allow_missing_keys=case.allow_missing)
    if case.mode == "sorted":
        assert sorted(out.split()) == sorted(case.expect.split())
    else:
        assert out == case.expect


def _go_string(node: jp.Node) -> str:
    """client-go's ``Node.String()`` for kiln's node."""
    if isinstance(node, jp.ListNode):
        return "NodeList"
    if isinstance(node, jp.TextNode):
        return f"NodeText: {node.text}"
    if isinstance(node, jp.FieldNode):
        return f"NodeField: {node.name}"
    if isinstance(node, jp.IdentifierNode):
        return f"NodeIdentifier: {node.name}"
    if isinstance(node, jp.ArrayNode):
        params = " ".join(f"{{{p.value} {str(p.known).lower()} {str(p.derived).lower()}}}"
                          for p in node.params)
        return f"NodeArray: [{params}]"
    if isinstance(node, jp.FilterNode):
        return f"NodeFilter: NodeList {node.op} NodeList"
    if isinstance(node, jp.IntNode):
        return f"NodeInt: {node.value}"
    if isinstance(node, jp.FloatNode):
        return f"NodeFloat: {node.value:f}"
    if isinstance(node, jp.BoolNode):
        return f"NodeBool: {str(node.value).lower()}"
    if isinstance(node, jp.WildcardNode):
        return "NodeWildcard"
    if isinstance(node, jp.RecursiveNode):
        return "NodeRecursive"
    return "NodeUnion"


def _collect(node: jp.Node, out: list[str]) -> None:
    """client-go's ``collectNode``: the node, then its children in order."""
    out.append(_go_string(node))
    if isinstance(node, jp.ListNode):
        for child in node.nodes:
            _collect(child, out)
    elif isinstance(node, jp.FilterNode):
        _collect(node.left, out)
        _collect(node.right, out)
    elif isinstance(node, jp.UnionNode):
        for arm in node.arms:
            _collect(arm, out)


@pytest.mark.parametrize("case", PARSER_CASES, ids=[c.name for c in PARSER_CASES])
def test_clientgo_parser_case(case: Any) -> None:
    """kiln's parse tree prints as client-go's; its parse errors read as client-go's."""
    if case.should_error:
        with pytest.raises(jp.JSONPathError) as info:
            jp.parse(case.text)
        if case.error is not None:
            assert str(info.value) == case.error
        return
    got: list[str] = []
    for node in jp.parse(case.text).nodes:
        _collect(node, got)
    assert got == case.nodes
