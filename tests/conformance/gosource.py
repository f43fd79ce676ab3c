"""A small reader of client-go's jsonpath Go test files: lexes Go and pulls out the test tables.

It understands just what ``util/jsonpath/jsonpath_test.go`` and ``parser_test.go`` use:
``var x = []byte(`json`)`` + ``json.Unmarshal(x, &y)`` inputs, ``[]jsonpathTest{...}`` tables
(assigned to a name or passed inline) and the ``testJSONPath``/``testJSONPathSortOutput``/
``testFailJSONPath`` calls that run them, ``parserTests`` and ``failParserTests``. Inputs built
from Go structs or typed maps are reported as not applicable, with the variable's name.
Nothing here imports kiln: this is the oracle's side.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"""
    (?P<ws>\s+) | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<raw>`[^`]*`) | (?P<str>"(?:[^"\\\n]|\\.)*") | (?P<rune>'(?:[^'\\\n]|\\.)*')
  | (?P<num>[0-9][0-9.]*) | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>:=|&&|\|\||==|!=|<=|>=|\.\.\.|[-+*/%&|^<>=!(){}\[\],;:.])
""", re.VERBOSE | re.DOTALL)

_ESC = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b",
        "f": "\f", "v": "\v"}


@dataclass(frozen=True)
class Tok:
    """A Go token: ``kind`` (str, num, ident, op) and its value (strings decoded)."""

    kind: str
    value: str


def _go_string(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1].replace("\r", "")
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        if body[i] != "\\":
            out.append(body[i])
            i += 1
            continue
        esc = body[i + 1]
        if esc in _ESC:
            out.append(_ESC[esc])
            i += 2
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            out.append(chr(int(body[i + 2:i + 2 + width], 16)))
            i += 2 + width
        else:
            raise ValueError(f"unsupported Go escape \\{esc}")
    return "".join(out)


def lex(source: str) -> list[Tok]:
    """Tokens of ``source`` without whitespace and comments; string literals decoded."""
    toks: list[Tok] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            raise ValueError(f"cannot lex Go at offset {pos}: {source[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind in ("ws", "comment"):
            continue
        if kind in ("raw", "str"):
            toks.append(Tok("str", _go_string(m.group(0))))
        else:
            toks.append(Tok(kind, m.group(0)))
    return toks


def git_show(git_dir: str, path: str) -> str:
    """The file at ``HEAD:path`` of a (bare) git repository."""
    return subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:{path}"], check=True,
                          capture_output=True, text=True).stdout


def _closing(toks: list[Tok], i: int) -> int:
    """Index of the bracket closing the one at ``toks[i]``."""
    pairs = {"{": "}", "(": ")", "[": "]"}
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].kind == "op" and toks[j].value in pairs:
            depth += 1
        elif toks[j].kind == "op" and toks[j].value in pairs.values():
            depth -= 1
            if depth == 0:
                return j
    raise ValueError("unbalanced brackets")


def _split(toks: list[Tok]) -> list[list[Tok]]:
    """Split a token run on top-level commas (a trailing comma yields no empty part)."""
    parts: list[list[Tok]] = [[]]
    depth = 0
    for tok in toks:
        if tok.kind == "op" and tok.value in "{([":
            depth += 1
        elif tok.kind == "op" and tok.value in "})]":
            depth -= 1
        if depth == 0 and tok == Tok("op", ","):
            parts.append([])
        else:
            parts[-1].append(tok)
    return [p for p in parts if p]


def _elements(toks: list[Tok], brace: int) -> tuple[list[list[Tok]], int]:
    """The elements of the composite literal whose ``{`` is ``toks[brace]``; and its end."""
    end = _closing(toks, brace)
    return _split(toks[brace + 1:end]), end


def string_expr(toks: list[Tok]) -> str:
    """A Go string expression: literals joined by ``+``."""
    parts = [t for t in toks if t != Tok("op", "+")]
    if not parts or any(t.kind != "str" for t in parts):
        raise ValueError(f"not a string expression: {toks}")
    return "".join(t.value for t in parts)


class NotApplicable(Exception):
    """An input this extractor cannot translate into JSON data (a Go struct value)."""


def go_json(data: bytes | str) -> Any:
    """JSON as Go's ``json.Unmarshal`` into ``interface{}`` sees it: numbers are float64."""
    return json.loads(data, parse_int=float)


def _value(toks: list[Tok], scope: dict[str, Any]) -> Any:
    if toks == [Tok("ident", "nil")]:
        return None
    if toks and toks[0] == Tok("op", "&"):
        toks = toks[1:]
    if len(toks) == 1 and toks[0].kind == "ident":
        if toks[0].value in scope:
            return scope[toks[0].value]
        raise NotApplicable(f"input {toks[0].value} is a Go struct/typed value")
    # []int{...} / []string{...}
    if len(toks) >= 4 and toks[0] == Tok("op", "[") and toks[1] == Tok("op", "]") and \
            toks[2].value in ("int", "string"):
        items, _ = _elements(toks, 3)
        if toks[2].value == "int":
            return [int("".join(t.value for t in item)) for item in items]
        return [string_expr(item) for item in items]
    raise NotApplicable(f"input {' '.join(t.value for t in toks)} is not translatable")


@dataclass
class Case:
    """One row of a jsonpathTest table and how client-go runs it."""

    func: str
    name: str
    template: str
    input: Any
    expect: str
    expect_error: bool
    mode: str  # "exact", "sorted" or "error-message"
    allow_missing: bool
    na: str | None = None  # why the case cannot run here

    @property
    def id(self) -> str:
        """A readable test id."""
        return f"{self.func}:{self.name}"


def _funcs(toks: list[Tok]) -> list[tuple[str, list[Tok]]]:
    out = []
    i = 0
    while i < len(toks):
        if toks[i] == Tok("ident", "func") and toks[i + 1].kind == "ident":
            name = toks[i + 1].value
            j = i + 2
            while toks[j] != Tok("op", "{"):
                j += 1
            end = _closing(toks, j)
            out.append((name, toks[j + 1:end]))
            i = end + 1
        else:
            i += 1
    return out


def _table(toks: list[Tok], i: int) -> tuple[list[list[list[Tok]]], int] | None:
    """If ``toks[i:]`` is ``[]jsonpathTest{...}``: its rows (each split in fields) and end."""
    if toks[i:i + 3] != [Tok("op", "["), Tok("op", "]"), Tok("ident", "jsonpathTest")]:
        return None
    rows, end = _elements(toks, i + 3)
    return [_split(row[1:-1]) for row in rows], end


def jsonpath_cases(source: str) -> list[Case]:
    """Every row of every jsonpathTest table in ``jsonpath_test.go``, with its runner."""
    cases: list[Case] = []
    for func, body in _funcs(lex(source)):
        raw_inputs: dict[str, bytes] = {}
        scope: dict[str, Any] = {}
        tables: dict[str, list[list[list[Tok]]]] = {}
        i = 0
        while i < len(body):
            tok = body[i]
            # var NAME = []byte(`...`)
            if tok.kind == "ident" and i + 6 < len(body) and body[i + 1].value in ("=", ":=") \
                    and body[i + 2:i + 6] == [Tok("op", "["), Tok("op", "]"), Tok("ident", "byte"),
                                              Tok("op", "(")] and body[i + 6].kind == "str":
                raw_inputs[tok.value] = body[i + 6].value.encode()
            # json.Unmarshal(NAME, &VAR)
            if tok == Tok("ident", "Unmarshal") and body[i + 2].value in raw_inputs:
                scope[body[i + 5].value] = go_json(raw_inputs[body[i + 2].value])
            if tok.kind == "ident" and i + 1 < len(body) and body[i + 1].value == ":=":
                table = _table(body, i + 2)
                if table is not None:
                    tables[tok.value] = table[0]
                    i = table[1] + 1
                    continue
            if tok.kind == "ident" and tok.value in ("testJSONPath", "testJSONPathSortOutput",
                                                     "testFailJSONPath"):
                args, end = _elements(body, i + 1)
                first = args[0]
                if len(first) == 1 and first[0].kind == "ident":
                    rows = tables[first[0].value]
                else:
                    got = _table(first, 0)
                    assert got is not None, f"{func}: unexpected table argument"
                    rows = got[0]
                allow = tok.value == "testJSONPath" and args[1] == [Tok("ident", "true")]
                mode = {"testJSONPath": "exact", "testJSONPathSortOutput": "sorted",
                        "testFailJSONPath": "error-message"}[tok.value]
                for fields in rows:
                    name, template = string_expr(fields[0]), string_expr(fields[1])
                    expect = string_expr(fields[3])
                    expect_error = fields[4] == [Tok("ident", "true")]
                    na = None
                    try:
                        data = _value(fields[2], scope)
                    except NotApplicable as exc:
                        data, na = None, str(exc)
                    cases.append(Case(func, name, template, data, expect, expect_error, mode,
                                      allow, na))
                i = end + 1
                continue
            i += 1
    return cases


@dataclass
class ParserCase:
    """A row of ``parserTests`` (expected node strings) or ``failParserTests`` (an error)."""

    name: str
    text: str
    nodes: list[str] | None
    should_error: bool
    error: str | None = None


def _param_text(toks: list[Tok]) -> str:
    entries, _ = _elements(toks, toks.index(Tok("op", "{")))
    return "[" + " ".join("{" + " ".join("".join(t.value for t in f) for f in _split(e[1:-1]))
                          + "}" for e in entries) + "]"


def _node_string(toks: list[Tok]) -> list[str]:
    """A ``newX(...)`` constructor as Go's ``Node.String()`` prints it."""
    name = toks[0].value
    args = _split(toks[2:-1])
    simple = {"newList": "NodeList", "newWildcard": "NodeWildcard",
              "newRecursive": "NodeRecursive", "newUnion": "NodeUnion"}
    if name in simple:
        return [simple[name]]
    if name in ("newText", "newField", "newIdentifier"):
        kind = {"newText": "NodeText", "newField": "NodeField",
                "newIdentifier": "NodeIdentifier"}[name]
        return [f"{kind}: {string_expr(args[0])}"]
    if name == "newInt":
        return [f"NodeInt: {''.join(t.value for t in args[0])}"]
    if name == "newArray":
        return [f"NodeArray: {_param_text(args[0])}"]
    if name == "newFilter":
        return [f"NodeFilter: NodeList {string_expr(args[2])} NodeList"]
    raise ValueError(f"unknown node constructor {name}")


def parser_cases(source: str) -> list[ParserCase]:
    """The rows of ``parserTests`` and of ``failParserTests`` in ``parser_test.go``."""
    toks = lex(source)
    cases: list[ParserCase] = []
    for i, tok in enumerate(toks):
        if tok == Tok("ident", "parserTests") and toks[i + 1] == Tok("op", "=") and \
                toks[i + 4] == Tok("ident", "parserTest"):
            rows, _ = _elements(toks, i + 5)
            for row in rows:
                fields = _split(row[1:-1])
                nodes_lit, _ = _elements(fields[2], 3)
                nodes = [s for n in nodes_lit for s in _node_string(n)]
                cases.append(ParserCase(string_expr(fields[0]), string_expr(fields[1]), nodes,
                                        fields[3] == [Tok("ident", "true")]))
        if tok == Tok("ident", "failParserTests") and toks[i + 1] == Tok("op", ":="):
            rows, _ = _elements(toks, i + 5)
            for row in rows:
                fields = _split(row[1:-1])
                cases.append(ParserCase(string_expr(fields[0]), string_expr(fields[1]), None,
                                        True, string_expr(fields[2])))
    return cases


def _literal(toks: list[Tok]) -> Any:
    """A Go literal of strings, numbers, bools, ``map[string]T{...}`` and ``[]T{...}``."""
    if len(toks) == 1:
        tok = toks[0]
        if tok.kind == "str":
            return tok.value
        if tok.kind == "num":
            return float(tok.value) if "." in tok.value else int(tok.value)
        if tok.value in ("true", "false"):
            return tok.value == "true"
        raise ValueError(f"unsupported Go literal {tok.value}")
    brace = next(i for i, t in enumerate(toks)
                 if t == Tok("op", "{") and _closing(toks, i) == len(toks) - 1)
    is_map = toks[0] == Tok("ident", "map") or (brace == 0 and any(
        t == Tok("op", ":") for t in toks[1:_closing(toks, 0)]))
    elements, _ = _elements(toks, brace)
    if is_map:
        out: dict[str, Any] = {}
        for element in elements:
            colon = element.index(Tok("op", ":"))
            out[_literal(element[:colon])] = _literal(element[colon + 1:])
        return out
    return [_literal(element) for element in elements]


def vault_writes(source: str, func: str) -> list[tuple[str, dict[str, Any]]]:
    """The ``client.Logical().Write(path, map...)`` calls of Go function ``func``, in order."""
    for name, body in _funcs(lex(source)):
        if name != func:
            continue
        writes = []
        for i, tok in enumerate(body):
            if tok == Tok("ident", "Write") and body[i - 4:i] == [
                    Tok("ident", "Logical"), Tok("op", "("), Tok("op", ")"), Tok("op", ".")]:
                args, _ = _elements(body, i + 1)
                if args[1] != [Tok("ident", "nil")]:
                    writes.append((string_expr(args[0]), _literal(args[1])))
        return writes
    raise ValueError(f"no function {func}")
