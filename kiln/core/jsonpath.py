"""kubectl's JSONPath template language (``k8s.io/client-go/util/jsonpath``), in Python.

There is no maintained Python port of client-go's *template* JSONPath (``jsonpath-ng`` and
friends implement Goessner's dialect: no ``{range}``/``{end}``, no ``{'literal'}``, different
printing), so this module is a small, independent implementation of the grammar and the
evaluation and printing rules of client-go, written from its documented and observable
behaviour and checked against client-go's own test tables (``tests/conformance``).

Grammar: text outside ``{...}`` is literal. Inside an action: ``.field`` (``\\`` escapes a
terminator, ``.*`` is a wildcard), ``..`` recursive descent, ``['key']`` (a dotted key is a
path, as in client-go), ``[i]``, ``[start:end:step]`` (negative indices count from the end),
``[*]``, unions ``[a, b]``, filters ``[?(@.a == "b")]`` with ``== != < <= > >=`` or a bare
``[?(@.a)]`` for existence, ``@``/``$`` (the current value), ``'text'``/``"text"`` literals
(Go escapes), numbers, ``true``/``false``, and ``range``/``end``.

Printing (client-go's ``PrintResults``): the results of one action are joined by a space;
maps and lists print as compact JSON the way Go's ``encoding/json`` writes them (sorted keys,
``<>&`` escaped, floats in Go's format), strings raw, ``null`` for null, numbers with Go's
``%v`` (a float ``1e6`` prints ``1e+06``, ``2.0`` prints ``2``).

Values are JSON-shaped Python data. Like Go's ``json.Unmarshal`` into ``interface{}``,
:func:`loads_json` reads every number as a float (so comparisons against an integer literal
fail with "incompatible types", as they do in argocd-vault-plugin); Python ``int`` values
compare and print as Go integers. A :class:`collections.OrderedDict` stands for a Go struct
(its JSON keeps field order); every other mapping is a Go map (sorted keys).

Deviations, on purpose: error messages never quote a value (client-go prints the value that
cannot be filtered; kiln names its type), map wildcards visit keys in insertion order (Go's is
random), and evaluation has a work budget so a hostile template cannot hang the renderer.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["JSONPathError", "Template", "loads_json", "parse", "render"]

MAX_STEPS = 1_000_000
"""Values one execution may produce before it is stopped (client-go has no limit)."""

MAX_OUTPUT = 16 * 1024 * 1024
"""Characters one execution may print before it is stopped."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class JSONPathError(ValueError):
    """A template does not parse or cannot be evaluated; the message never quotes a value."""


class _Fail(JSONPathError):
    """An evaluation error carrying what client-go returns alongside it (used by ``exists``)."""

    def __init__(self, message: str, partial: list[Any]) -> None:
        super().__init__(message)
        self.partial = partial


class _Byte(int):
    """One byte of a string (a Go ``uint8``), produced by ``*`` and ``..`` over a string."""


# --- nodes --------------------------------------------------------------------------------

@dataclass
class ListNode:
    """A sequence of nodes evaluated left to right (an action, a filter side, a union arm)."""

    nodes: list[Node] = field(default_factory=list)


@dataclass(frozen=True)
class TextNode:
    """Literal text (outside braces, or a quoted string inside)."""

    text: str


@dataclass(frozen=True)
class FieldNode:
    """``.name``: a key of a map."""

    name: str


@dataclass(frozen=True)
class Param:
    """One of a slice's three numbers, as client-go's ``ParamsEntry``."""

    value: int
    known: bool
    derived: bool = False


@dataclass(frozen=True)
class ArrayNode:
    """``[i]`` or ``[start:end:step]``."""

    params: tuple[Param, Param, Param]


@dataclass(frozen=True)
class FilterNode:
    """``[?(left op right)]``; ``op`` is ``exists`` for a bare ``[?(left)]``."""

    left: ListNode
    right: ListNode
    op: str


@dataclass(frozen=True)
class IntNode:
    """An integer literal."""

    value: int


@dataclass(frozen=True)
class FloatNode:
    """A float literal."""

    value: float


@dataclass(frozen=True)
class BoolNode:
    """``true`` or ``false``."""

    value: bool


@dataclass(frozen=True)
class WildcardNode:
    """``.*`` / ``[*]`` on a map (``[*]`` parses as the slice ``[:]``)."""


@dataclass(frozen=True)
class RecursiveNode:
    """``..``: the value and every descendant that has children."""


@dataclass(frozen=True)
class UnionNode:
    """``[a, b, ...]``: the results of each arm, concatenated."""

    arms: tuple[ListNode, ...]


@dataclass(frozen=True)
class IdentifierNode:
    """A keyword: ``range`` or ``end`` (anything else fails at evaluation)."""

    name: str


Node = (ListNode | TextNode | FieldNode | ArrayNode | FilterNode | IntNode | FloatNode | BoolNode
        | WildcardNode | RecursiveNode | UnionNode | IdentifierNode)


# --- parser -------------------------------------------------------------------------------

_TERMINATORS = frozenset(" \t\r\n.,[]$@{}")
_DICT_KEY = re.compile(r"'([^']*)'")
_SLICE = re.compile(r"(-?[0-9]*)(:-?[0-9]*)?(:-?[0-9]*)?")
_FILTER = re.compile(r"([^!<>=]+)([!<>=]+)(.+?)")
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")


def _is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or _is_digit(ch)


def _go_quote_rune(ch: str) -> str:
    """Go's ``%#U``: ``U+002A '*'``."""
    code = f"U+{ord(ch):04X}"
    return f"{code} '{ch}'" if ch.isprintable() else code


class _Parser:
    """client-go's recursive-descent template parser, as a loop over one string."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.pos = 0
        self.start = 0

    def consume(self) -> str:
        value = self.s[self.start:self.pos]
        self.start = self.pos
        return value

    def parse(self) -> ListNode:
        root = ListNode()
        while True:
            brace = self.s.find("{", self.pos)
            if brace < 0:
                self.pos = len(self.s)
                if self.pos > self.start:
                    root.nodes.append(TextNode(self.consume()))
                return root
            self.pos = brace
            if self.pos > self.start:
                root.nodes.append(TextNode(self.consume()))
            self.pos += 1
            self.consume()
            action = ListNode()
            root.nodes.append(action)
            self._action(action)

    def _action(self, cur: ListNode) -> None:
        s = self.s
        while True:
            if s.startswith("}", self.pos):
                self.pos += 1
                self.consume()
                return
            if s.startswith("[?(", self.pos):
                self._filter(cur)
                continue
            if s.startswith("..", self.pos):
                self._recursive(cur)
                continue
            if self.pos >= len(s) or s[self.pos] in "\r\n":
                raise JSONPathError("unclosed action")
            ch = s[self.pos]
            self.pos += 1
            if ch in " @$":
                self.consume()
            elif ch == "[":
                self._array(cur)
            elif ch in "\"'":
                self._quote(cur, ch)
            elif ch == ".":
                self._field(cur)
            elif ch in "+-" or _is_digit(ch):
                self.pos -= 1
                self._number(cur)
            elif _is_alnum(ch):
                self.pos -= 1
                self._identifier(cur)
            else:
                raise JSONPathError(f"unrecognized character in action: {_go_quote_rune(ch)}")

    def _identifier(self, cur: ListNode) -> None:
        while self.pos < len(self.s) and self.s[self.pos] not in _TERMINATORS:
            self.pos += 1
        value = self.consume()
        if value in ("true", "false"):
            cur.nodes.append(BoolNode(value == "true"))
        else:
            cur.nodes.append(IdentifierNode(value))

    def _recursive(self, cur: ListNode) -> None:
        if cur.nodes and isinstance(cur.nodes[-1], RecursiveNode):
            raise JSONPathError("invalid multiple recursive descent")
        self.pos += 2
        self.consume()
        cur.nodes.append(RecursiveNode())
        if self.pos < len(self.s) and _is_alnum(self.s[self.pos]):
            self._field(cur)

    def _number(self, cur: ListNode) -> None:
        s = self.s
        if s[self.pos] in "+-":
            self.pos += 1
        while self.pos < len(s) and (s[self.pos] == "." or _is_digit(s[self.pos])):
            self.pos += 1
        value = self.consume()
        if _INT.fullmatch(value) and _INT64_MIN <= int(value) <= _INT64_MAX:
            cur.nodes.append(IntNode(int(value)))
            return
        if _FLOAT.fullmatch(value):
            number = float(value)
            if number not in (float("inf"), float("-inf")):
                cur.nodes.append(FloatNode(number))
                return
        raise JSONPathError(f"cannot parse number {value}")

    def _array(self, cur: ListNode) -> None:
        s = self.s
        while True:
            if self.pos >= len(s) or s[self.pos] == "\n":
                raise JSONPathError("unterminated array")
            self.pos += 1
            if s[self.pos - 1] == "]":
                break
        text = self.consume()[1:-1]
        if text == "*":
            text = ":"
        pieces = text.split(",")
        if len(pieces) > 1:
            cur.nodes.append(UnionNode(tuple(_parse_action(f"[{p.strip(' ')}]")
                                             for p in pieces)))
            return
        key = _DICT_KEY.fullmatch(text)
        if key is not None:
            cur.nodes.extend(_parse_action(f".{key.group(1)}").nodes)
            return
        m = _SLICE.fullmatch(text)
        if m is None:
            raise JSONPathError(f"invalid array index {text}")
        groups = [g or "" for g in m.groups()]
        params: list[Param] = []
        for i, raw in enumerate(groups):
            if raw:
                digits = raw[1:] if i > 0 else raw
                if i > 0 and not digits:
                    params.append(Param(0, False))
                    continue
                if not _INT.fullmatch(digits) or not _INT64_MIN <= int(digits) <= _INT64_MAX:
                    raise JSONPathError(f"array index {digits} is not a number")
                params.append(Param(int(digits), True))
            elif i == 1:
                params.append(Param(params[0].value + 1, True, True))
            else:
                params.append(Param(0, False))
        cur.nodes.append(ArrayNode((params[0], params[1], params[2])))

    def _filter(self, cur: ListNode) -> None:
        s = self.s
        self.pos += 3
        self.consume()
        begin = end = False
        pair = ""
        while True:
            if self.pos >= len(s) or s[self.pos] == "\n":
                raise JSONPathError("unterminated filter")
            ch = s[self.pos]
            self.pos += 1
            if ch in "\"'":
                if not begin:
                    begin, pair = True, ch
                    continue
                if s[self.pos - 2] != "\\" and ch == pair:
                    end = True
            elif ch == ")" and begin == end:
                break
        if self.pos >= len(s) or s[self.pos] != "]":
            raise JSONPathError("unclosed array expect ]")
        self.pos += 1
        text = self.consume()[:-2]
        m = _FILTER.fullmatch(text)
        if m is None:
            cur.nodes.append(FilterNode(_parse_action(text), ListNode(), "exists"))
        else:
            cur.nodes.append(FilterNode(_parse_action(m.group(1)), _parse_action(m.group(3)),
                                        m.group(2)))

    def _quote(self, cur: ListNode, quote: str) -> None:
        s = self.s
        while True:
            if self.pos >= len(s) or s[self.pos] == "\n":
                raise JSONPathError("unterminated quoted string")
            self.pos += 1
            if s[self.pos - 1] == quote and s[self.pos - 2] != "\\":
                break
        value = self.consume()
        try:
            cur.nodes.append(TextNode(_unquote(value)))
        except ValueError:
            raise JSONPathError(f"unquote string {value} error invalid syntax") from None

    def _field(self, cur: ListNode) -> None:
        self.consume()
        s = self.s
        while self.pos < len(s):
            ch = s[self.pos]
            if ch == "\\":
                self.pos = min(self.pos + 2, len(s))
            elif ch in _TERMINATORS:
                break
            else:
                self.pos += 1
        value = self.consume()
        if value == "*":
            cur.nodes.append(WildcardNode())
        else:
            cur.nodes.append(FieldNode(value.replace("\\", "")))


def _parse_action(text: str) -> ListNode:
    root = _Parser("{" + text + "}").parse()
    first = root.nodes[0]
    assert isinstance(first, ListNode)
    return first


_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\\": "\\"}
_HEX = frozenset("0123456789abcdefABCDEF")


def _unquote(text: str) -> str:
    """Go's ``strconv.Unquote`` for ``"..."`` and (client-go's extension) ``'...'`` strings."""
    if len(text) < 2 or text[0] != text[-1] or text[0] not in "\"'":
        raise ValueError("invalid syntax")
    quote, body = text[0], text[1:-1]
    if "\\" not in body and quote not in body:
        return body
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == quote:
            raise ValueError("invalid syntax")
        if ch != "\\":
            out += ch.encode("utf-8", "surrogatepass")
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError("invalid syntax")
        esc = body[i + 1]
        i += 2
        if esc in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[esc].encode()
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i:i + width]
            if len(digits) < width or not set(digits) <= _HEX:
                raise ValueError("invalid syntax")
            i += width
            code = int(digits, 16)
            if esc == "x":
                out.append(code)
            elif code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise ValueError("invalid syntax")
            else:
                out += chr(code).encode()
        elif esc in "01234567":
            digits = esc + body[i:i + 2]
            if len(digits) < 3 or not set(digits) <= set("01234567") or int(digits, 8) > 255:
                raise ValueError("invalid syntax")
            i += 2
            out.append(int(digits, 8))
        elif esc in "'\"" and esc == quote:
            out += esc.encode()
        else:
            raise ValueError("invalid syntax")
    return out.decode("utf-8", "replace")


# --- evaluation ---------------------------------------------------------------------------

def _go_type(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, _Byte):
        return "uint8"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, OrderedDict):
        return "struct"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    return type(value).__name__


def _key_text(key: Any) -> str:
    """A map key as JSON names it (YAML may give non-string keys; Go's YAML-to-JSON step
    writes them as their scalar text)."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return "null" if key is None else ("true" if key else "false")
    if isinstance(key, float):
        return go_float_text(key)
    return str(key)


def _field_of(value: Mapping[Any, Any], name: str) -> tuple[bool, Any]:
    if name in value:
        return True, value[name]
    for key, item in value.items():
        if not isinstance(key, str) and _key_text(key) == name:
            return True, item
    return False, None


def _children(value: Any) -> list[Any]:
    """What ``*`` yields: map values, list items, a string's bytes; nothing for scalars."""
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        return [_Byte(b) for b in value.encode("utf-8", "replace")]
    return []


_INVALID, _BOOL, _INTK, _FLOATK, _STRING, _UINT = range(6)


def _kind(value: Any) -> int:
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, _Byte):
        return _UINT
    if isinstance(value, int):
        return _INTK
    if isinstance(value, float):
        return _FLOATK
    if isinstance(value, str):
        return _STRING
    raise JSONPathError("invalid type for comparison")


def _equal(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        if {ka, kb} == {_INTK, _UINT}:
            return bool(a == b)
        raise JSONPathError("incompatible types for comparison")
    return bool(a == b)


def _less(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        if {ka, kb} == {_INTK, _UINT}:
            return bool(a < b)
        raise JSONPathError("incompatible types for comparison")
    if ka == _BOOL:
        raise JSONPathError("invalid type for comparison")
    return bool(a < b)


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "<":
        return _less(a, b)
    if op == ">":
        return not (_less(a, b) or _equal(a, b))
    if op == "==":
        return _equal(a, b)
    if op == "!=":
        return not _equal(a, b)
    if op == "<=":
        return _less(a, b) or _equal(a, b)
    return not _less(a, b)  # ">=" (the caller has checked the operator)


_OPERATORS = frozenset(("<", ">", "==", "!=", "<=", ">="))


class _Run:
    """One execution: client-go's range bookkeeping and a work budget."""

    def __init__(self, nodes: Sequence[Node], allow_missing_keys: bool) -> None:
        self.nodes = nodes
        self.allow_missing = allow_missing_keys
        self.begin_range = 0
        self.in_range = 0
        self.end_range = 0
        self.last_end = -1
        self.steps = 0

    def spend(self, count: int) -> None:
        self.steps += count + 1
        if self.steps > MAX_STEPS:
            raise JSONPathError(f"evaluation exceeds {MAX_STEPS} steps")

    def find_results(self, data: Any, offset: int) -> list[list[Any]]:
        """client-go's ``FindResults`` over ``nodes[offset:]``: one result list per action."""
        cur = [data]
        full: list[list[Any]] = []
        i = offset
        while i < len(self.nodes):
            results = self.walk(cur, self.nodes[i])
            if 0 < self.end_range <= self.in_range:
                self.end_range -= 1
                self.last_end = i
                break
            if self.begin_range > 0:
                self.begin_range -= 1
                self.in_range += 1
                if results:
                    for value in results:
                        full.extend(self.find_results(value, i + 1))
                else:
                    self.find_results(None, i + 1)
                self.in_range -= 1
                for k in range(i + 1, len(self.nodes)):
                    if k == self.last_end:
                        i = k
                        break
                i += 1
                continue
            full.append(results)
            i += 1
        return full

    def walk(self, values: list[Any], node: Node) -> list[Any]:
        out = self._walk(values, node)
        self.spend(len(out))
        return out

    def _walk(self, values: list[Any], node: Node) -> list[Any]:
        if isinstance(node, ListNode):
            return self.eval_list(values, node)
        if isinstance(node, TextNode):
            return [node.text]
        if isinstance(node, FieldNode):
            return self.eval_field(values, node.name)
        if isinstance(node, ArrayNode):
            return self.eval_array(values, node.params)
        if isinstance(node, FilterNode):
            return self.eval_filter(values, node)
        if isinstance(node, IntNode | FloatNode | BoolNode):
            return [node.value] * len(values)
        if isinstance(node, WildcardNode):
            return [child for v in values if v is not None for child in _children(v)]
        if isinstance(node, RecursiveNode):
            return self.eval_recursive(values)
        if isinstance(node, UnionNode):
            out: list[Any] = []
            for arm in node.arms:
                try:
                    out.extend(self.eval_list(values, arm))
                except _Fail as exc:
                    raise _Fail(str(exc), values) from None
            return out
        return self.eval_identifier(values, node)

    def eval_list(self, values: list[Any], node: ListNode) -> list[Any]:
        cur = values
        for child in node.nodes:
            cur = self.walk(cur, child)
        return cur

    def eval_identifier(self, values: list[Any], node: IdentifierNode) -> list[Any]:
        if node.name == "range":
            self.begin_range += 1
            return values
        if node.name == "end":
            if self.in_range > 0:
                self.end_range += 1
                return []
            raise _Fail("not in range, nothing to end", [])
        raise _Fail(f"unrecognized identifier {node.name}", values)

    def eval_field(self, values: list[Any], name: str) -> list[Any]:
        results = []
        for value in values:
            if isinstance(value, Mapping):
                found, item = _field_of(value, name)
                if found:
                    results.append(item)
        if not results and values and not self.allow_missing:
            raise _Fail(f"{name} is not found", [])
        return results

    def eval_array(self, values: list[Any], params: tuple[Param, Param, Param]) -> list[Any]:
        result: list[Any] = []
        for value in values:
            if value is None:
                continue
            if not isinstance(value, list | tuple):
                raise _Fail(f"{_go_type(value)} is not array or slice", values)
            length = len(value)
            start = params[0].value if params[0].known else 0
            if start < 0:
                start += length
            stop = params[1].value if params[1].known else length
            if stop < 0 or (stop == 0 and params[1].derived):
                stop += length
            if stop == start:
                return result  # client-go stops at the first empty selection
            if start >= length or start < 0:
                raise _Fail(f"array index out of bounds: index {start}, length {length}", values)
            if stop > length or stop < 0:
                raise _Fail(f"array index out of bounds: index {stop - 1}, length {length}",
                            values)
            if start > stop:
                raise _Fail(f"starting index {start} is greater than ending index {stop}",
                            values)
            step = 1
            if params[2].known:
                if params[2].value <= 0:
                    raise _Fail("step must be > 0", values)
                step = params[2].value
            result.extend(value[start:stop:step])
        return result

    def eval_recursive(self, values: list[Any]) -> list[Any]:
        result: list[Any] = []
        stack = list(reversed(values))
        while stack:
            value = stack.pop()
            if value is None:
                continue
            children = _children(value)
            if children:
                result.append(value)
                self.spend(len(children))
                stack.extend(reversed(children))
        return result

    def eval_filter(self, values: list[Any], node: FilterNode) -> list[Any]:
        results: list[Any] = []
        for value in values:
            if not isinstance(value, list | tuple):
                raise _Fail(f"{_go_type(value)} is not array or slice and cannot be filtered",
                            values)
            for item in value:
                try:
                    lefts = self.eval_list([item], node.left)
                except _Fail as exc:
                    if node.op == "exists":
                        if exc.partial:
                            results.append(item)
                        continue
                    raise _Fail(str(exc), values) from None
                if node.op == "exists":
                    if lefts:
                        results.append(item)
                    continue
                if not lefts:
                    continue
                if len(lefts) > 1:
                    raise _Fail("can only compare one element at a time", values)
                try:
                    rights = self.eval_list([item], node.right)
                except _Fail as exc:
                    raise _Fail(str(exc), values) from None
                if not rights:
                    continue
                if len(rights) > 1:
                    raise _Fail("can only compare one element at a time", values)
                if node.op not in _OPERATORS:
                    raise _Fail(f"unrecognized filter operator {node.op}", results)
                try:
                    passed = _compare(node.op, lefts[0], rights[0])
                except JSONPathError as exc:
                    raise _Fail(str(exc), results) from None
                if passed:
                    results.append(item)
        return results


# --- printing -----------------------------------------------------------------------------

def _digits(value: float) -> tuple[str, int]:
    """Shortest round-trip digits of ``abs(value) > 0`` and the decimal point position
    (value = 0.DIGITS x 10**dp), the digits Go's ``strconv`` picks for precision -1."""
    text = repr(abs(value))
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    everything = whole + frac
    stripped = everything.lstrip("0")
    point = len(whole) + (int(exp) if exp else 0) - (len(everything) - len(stripped))
    return stripped.rstrip("0") or "0", point


def _fmt_e(neg: bool, digits: str, point: int) -> str:
    exp = point - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{'-' if neg else ''}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _fmt_f(neg: bool, digits: str, point: int) -> str:
    whole = (digits[:point] + "0" * (point - len(digits))) if point > 0 else "0"
    places = max(len(digits) - point, 0)
    frac = "".join(digits[point + i] if 0 <= point + i < len(digits) else "0"
                   for i in range(places))
    return f"{'-' if neg else ''}{whole}{'.' + frac if frac else ''}"


def go_float_text(value: float) -> str:
    """A float as Go's ``fmt.Print`` writes it (``%v``: shortest, exponent from 1e+06/1e-05)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    neg = value < 0 or (value == 0 and str(value).startswith("-"))
    if value == 0:
        return "-0" if neg else "0"
    digits, point = _digits(value)
    if point - 1 < -4 or point - 1 >= 6:
        return _fmt_e(neg, digits, point)
    return _fmt_f(neg, digits, point)


def _go_json_float(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        raise JSONPathError("json: unsupported value")
    neg = value < 0 or (value == 0 and str(value).startswith("-"))
    if value == 0:
        return "-0" if neg else "0"
    digits, point = _digits(value)
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        text = _fmt_e(neg, digits, point)
        return re.sub(r"e-0(\d)$", r"e-\1", text)
    return _fmt_f(neg, digits, point)


_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
                 "\f": "\\f", "<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                 "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _go_json_str(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json(value: Any) -> str:
    """``value`` as Go's ``json.Marshal`` writes it (maps sorted, an OrderedDict in order)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return _go_json_float(value)
    if isinstance(value, str):
        return _go_json_str(value)
    if isinstance(value, Mapping):
        items = [(_key_text(k), v) for k, v in value.items()]
        if not isinstance(value, OrderedDict):
            items.sort(key=lambda kv: kv[0])
        return "{" + ",".join(f"{_go_json_str(k)}:{go_json(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    return _go_json_str(str(value))


def _text(value: Any) -> str:
    """One result as client-go prints it: containers as JSON, the rest with ``fmt.Print``."""
    if isinstance(value, Mapping | list | tuple):
        return go_json(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return go_float_text(value)
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    return str(value)


# --- public API ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Template:
    """A parsed template: the top-level nodes (text and actions) in order."""

    nodes: tuple[Node, ...]

    def execute(self, data: Any, *, allow_missing_keys: bool = False) -> str:
        """Evaluate against ``data`` and print as client-go's ``Execute`` does.

        Raises :class:`JSONPathError` (never quoting ``data``) on a missing key (unless
        ``allow_missing_keys``), a bad index, an invalid comparison, a stray ``end``, or work
        beyond :data:`MAX_STEPS`.
        """
        run = _Run(self.nodes, allow_missing_keys)
        try:
            pieces: list[str] = []
            size = 0
            for group in run.find_results(data, 0):
                for index, value in enumerate(group):
                    text = _text(value) if index == 0 else " " + _text(value)
                    size += len(text)
                    if size > MAX_OUTPUT:
                        raise JSONPathError(f"output exceeds {MAX_OUTPUT} characters")
                    pieces.append(text)
            return "".join(pieces)
        except _Fail as exc:
            raise JSONPathError(str(exc)) from None
        except RecursionError:
            raise JSONPathError("template or value nested too deeply") from None


def parse(template: str) -> Template:
    """Parse a client-go JSONPath template; raise :class:`JSONPathError` if it is invalid."""
    try:
        return Template(tuple(_Parser(template).parse().nodes))
    except RecursionError:
        raise JSONPathError("template nested too deeply") from None


def render(template: str, data: Any, *, allow_missing_keys: bool = False) -> str:
    """Parse ``template`` and execute it against ``data`` (see :meth:`Template.execute`)."""
    return parse(template).execute(data, allow_missing_keys=allow_missing_keys)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return number


def loads_json(text: str) -> Any:
    """Decode JSON the way Go's ``json.Unmarshal`` into ``interface{}`` does: every number a
    float, ``NaN``/``Infinity`` rejected. Raises :class:`JSONPathError` without the text."""
    try:
        return json.loads(text, parse_int=_finite_float, parse_float=_finite_float,
                          parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise JSONPathError(f"not JSON: line {exc.lineno}, column {exc.colno}: "
                            f"{exc.msg}") from None
    except (ValueError, RecursionError):
        raise JSONPathError("not JSON") from None
