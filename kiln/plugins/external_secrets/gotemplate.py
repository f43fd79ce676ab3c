"""The subset of Go's text/template (with ESO's template engine v2 functions) that
ExternalSecret templates need.

Supported: text with ``{{ pipeline }}`` actions, ``{{-``/``-}}`` whitespace trimming, comments
``{{/* */}}``; a pipeline is commands joined by ``|``, each a function call with arguments or a
single operand; operands are ``.``, field chains (``.key``, ``.a.b``), ``(pipeline)`` optionally
followed by a field chain, string literals (``"..."``, raw ```...```), numbers and
``true``/``false``. Functions: ``b64enc b64dec toJson fromJson upper lower trim trimPrefix
trimSuffix quote squote replace default toString index sha256sum``. A missing key is an error
(ESO runs its templates with ``missingkey=error``). Control structures (``if``, ``range``,
``with``), variables and ``define`` are refused with a clear error. Error messages name the template
construct, never a value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

KEYWORDS = frozenset({"if", "else", "end", "range", "with", "define", "template", "block",
                      "break", "continue"})
_TOKEN_RE = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<num>-?\d+(?:\.\d+)?)"""
    r"""|(?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)|(?P<punct>[|()])"""
    r"""|(?P<var>\$[A-Za-z0-9_]*)|(?P<ident>[A-Za-z_][A-Za-z0-9_]*))"""
)


class TemplateError(Exception):
    """The template is malformed, unsupported, or failed while executing."""


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str


def _tokenize(src: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    src = src.strip()
    while pos < len(src):
        m = _TOKEN_RE.match(src, pos)
        if m is None or m.end() == pos:
            raise TemplateError(f"unexpected character {src[pos]!r} in action")
        kind = m.lastgroup or ""
        text = m.group(kind)
        if kind == "var":
            raise TemplateError("template variables ($...) are not supported")
        out.append(_Tok(kind, text))
        pos = m.end()
        while pos < len(src) and src[pos].isspace():
            pos += 1
    return out


class _Parser:
    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def pipeline(self) -> list[list[Any]]:
        cmds = [self.command()]
        while (tok := self.peek()) is not None and tok.text == "|":
            self.take()
            cmds.append(self.command())
        return cmds

    def command(self) -> list[Any]:
        ops: list[Any] = []
        while (tok := self.peek()) is not None and tok.text not in ("|", ")"):
            ops.append(self.operand())
        if not ops:
            raise TemplateError("empty command in pipeline")
        return ops

    def operand(self) -> Any:
        tok = self.take()
        if tok.kind == "var":
            raise TemplateError("template variables ($...) are not supported")
        if tok.kind == "ident" and tok.text in KEYWORDS:
            raise TemplateError(f"'{tok.text}' actions are not supported")
        node: Any
        if tok.text == "(":
            inner = self.pipeline()
            end = self.peek()
            if end is None or end.text != ")":
                raise TemplateError("unclosed '('")
            self.take()
            node = ("pipe", inner)
            nxt = self.peek()
            if nxt is not None and nxt.kind == "field" and nxt.text != ".":
                self.take()
                node = ("chain", node, nxt.text[1:].split("."))
            return node
        if tok.text == ")":
            raise TemplateError("unexpected ')'")
        if tok.kind == "str":
            try:
                return ("lit", json.loads(tok.text))
            except json.JSONDecodeError:
                raise TemplateError("malformed string literal") from None
        if tok.kind == "raw":
            return ("lit", tok.text[1:-1])
        if tok.kind == "num":
            return ("lit", float(tok.text) if "." in tok.text else int(tok.text))
        if tok.kind == "field":
            return ("field", [] if tok.text == "." else tok.text[1:].split("."))
        if tok.text in ("true", "false"):
            return ("lit", tok.text == "true")
        if tok.text == "nil":
            return ("lit", None)
        return ("func", tok.text)


def _need_str(name: str, value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise TemplateError(f"{name}: expected a string argument, got {type(value).__name__}")
    return value


def _b64dec(value: Any) -> str:
    try:
        return base64.b64decode(_need_str("b64dec", value), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise TemplateError("b64dec: the value is not valid base64 text") from None


def _from_json(value: Any) -> Any:
    try:
        return json.loads(_need_str("fromJson", value))
    except json.JSONDecodeError:
        raise TemplateError("fromJson: the value is not valid JSON") from None


def _index(container: Any, *keys: Any) -> Any:
    node = container
    for key in keys:
        if isinstance(node, Mapping):
            if key not in node:
                raise TemplateError(f"index: no key {key!r}")
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            raise TemplateError(f"index: cannot index with {key!r}")
    return node


def _default(fallback: Any, value: Any = None) -> Any:
    return value if value not in (None, "", 0, False, [], {}) else fallback


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "b64enc": lambda v: base64.b64encode(_need_str("b64enc", v).encode()).decode(),
    "b64dec": _b64dec,
    "toJson": lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False),
    "fromJson": _from_json,
    "upper": lambda v: _need_str("upper", v).upper(),
    "lower": lambda v: _need_str("lower", v).lower(),
    "trim": lambda v: _need_str("trim", v).strip(),
    "trimPrefix": lambda p, v: _need_str("trimPrefix", v).removeprefix(p),
    "trimSuffix": lambda s, v: _need_str("trimSuffix", v).removesuffix(s),
    "quote": lambda v: json.dumps(to_text(v)),
    "squote": lambda v: "'" + to_text(v) + "'",
    "replace": lambda old, new, v: _need_str("replace", v).replace(old, new),
    "default": _default,
    "toString": lambda v: to_text(v),
    "index": _index,
    "sha256sum": lambda v: hashlib.sha256(_need_str("sha256sum", v).encode()).hexdigest(),
}


def to_text(value: Any) -> str:
    """Format a value as Go's template printer does for the common types."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Mapping):
        inner = " ".join(f"{k}:{to_text(v)}" for k, v in sorted(value.items()))
        return f"map[{inner}]"
    if isinstance(value, list):
        return "[" + " ".join(to_text(v) for v in value) + "]"
    return str(value)


def _fields(value: Any, names: list[str]) -> Any:
    node = value
    for name in names:
        if not isinstance(node, Mapping):
            raise TemplateError(f"can't evaluate field {name} in a {type(node).__name__}")
        if name not in node:
            raise TemplateError(f"map has no entry for key {name!r}")
        node = node[name]
    return node


def _eval(node: Any, dot: Any) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "field":
        return _fields(dot, node[1])
    if kind == "pipe":
        return _run(node[1], dot)
    if kind == "chain":
        return _fields(_eval(node[1], dot), node[2])
    if kind == "func":
        return _call(node[1], [], dot)
    raise TemplateError("bad node")  # pragma: no cover


def _call(name: str, args: list[Any], dot: Any) -> Any:
    func = FUNCTIONS.get(name)
    if func is None:
        raise TemplateError(f'function "{name}" not defined')
    try:
        return func(*args)
    except TypeError:
        raise TemplateError(f"wrong number of arguments for {name}") from None


def _run(pipeline: list[list[Any]], dot: Any) -> Any:
    value: Any = None
    piped = False
    for cmd in pipeline:
        head = cmd[0]
        if head[0] == "func":
            args = [_eval(op, dot) for op in cmd[1:]]
            if piped:
                args.append(value)
            value = _call(head[1], args, dot)
        else:
            if len(cmd) > 1:
                raise TemplateError("can't give an argument to a non-function")
            if piped:
                raise TemplateError("can't pipe a value into a non-function")
            value = _eval(head, dot)
        piped = True
    return value


@dataclass(frozen=True)
class _Action:
    start: int
    end: int
    body: str
    trim_left: bool
    trim_right: bool


def _actions(template: str) -> list[_Action]:
    """Split out every ``{{ ... }}``, skipping ``}}`` inside string literals."""
    out: list[_Action] = []
    pos = 0
    while (start := template.find("{{", pos)) != -1:
        i = start + 2
        quote = ""
        while i < len(template):
            ch = template[i]
            if quote:
                if ch == "\\" and quote == '"':
                    i += 2
                    continue
                if ch == quote:
                    quote = ""
            elif ch in "\"`":
                quote = ch
            elif template.startswith("}}", i):
                break
            i += 1
        else:
            raise TemplateError("unclosed action")
        body = template[start + 2:i]
        trim_left = body.startswith("- ") or body.startswith("-\n") or body == "-"
        trim_right = body.endswith(" -") or body.endswith("\n-")
        if trim_left:
            body = body[1:]
        if trim_right:
            body = body[:-1]
        out.append(_Action(start, i + 2, body.strip(), trim_left, trim_right))
        pos = i + 2
    return out


def render(template: str, data: Mapping[str, Any]) -> str:
    """Execute ``template`` against ``data`` (the ``.`` of the template) and return the text.

    Raises :class:`TemplateError` for anything malformed, unsupported or missing.
    """
    out: list[str] = []
    pos = 0
    pending_trim = False
    for action in _actions(template):
        text = template[pos:action.start]
        if pending_trim:
            text = text.lstrip()
        if action.trim_left:
            text = text.rstrip()
        out.append(text)
        pending_trim = action.trim_right
        pos = action.end
        body = action.body
        if body.startswith("/*"):
            if not body.endswith("*/"):
                raise TemplateError("unclosed comment")
            continue
        if not body:
            raise TemplateError("missing value for command")
        parser = _Parser(_tokenize(body))
        pipeline = parser.pipeline()
        if parser.peek() is not None:
            raise TemplateError(f"unexpected {parser.peek().text!r} in action")  # type: ignore[union-attr]
        out.append(to_text(_run(pipeline, data)))
    tail = template[pos:]
    out.append(tail.lstrip() if pending_trim else tail)
    return "".join(out)


def escape_literal(text: str) -> str:
    """Quote ``text`` so that :func:`render` (and Go) reproduce it verbatim."""
    if "{{" not in text and "}}" not in text:
        return text
    return "{{ " + json.dumps(text) + " }}"
