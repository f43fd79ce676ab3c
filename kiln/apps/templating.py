"""ApplicationSet template substitution: Argo CD's fasttemplate mode exactly, and the part of
its Go-template mode (``goTemplate: true``) kiln can evaluate without Go.

**fasttemplate** (the default): every ``{{ name }}`` whose trimmed name is a string parameter
is replaced by it; any other tag stays as written. A ``{{`` without ``}}`` is an error.

**Go templates**: actions are pipelines of field references (``.path.basename``,
``$.values.env``), string, number and boolean literals and the functions ``index``,
``default``, ``lower``, ``upper``, ``trim``, ``trimPrefix``, ``trimSuffix``, ``replace``,
``trunc`` (Sprig's), ``printf`` (verbs ``%s``, ``%v``, ``%%``) and ``normalize`` (Argo CD's
``SanitizeName``), chained with ``|``; ``{{-``/``-}}`` trim blanks and ``{{/* */}}`` comments
are dropped as Go does. Control structures (``if``, ``range``, ``with``...) and every other
function are a :class:`TemplateError` naming them: kiln does not guess what Go would print.
A missing key prints ``<no value>`` (Go's default), or is an error with ``missingkey=error``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any


class TemplateError(Exception):
    """A template kiln cannot evaluate, or that Argo CD would refuse."""


# -- fasttemplate ------------------------------------------------------------------------------

_TEMPLATED = re.compile(r"\{\{.*\}\}")
"""Argo CD's ``isTemplatedRegex``: a string is substituted only when one line holds a tag."""

def render_fast(text: str, params: Mapping[str, Any]) -> str:
    """Argo CD's default substitution: ``{{ key }}`` -> the string parameter ``key``."""
    if not _TEMPLATED.search(text):
        return text
    out: list[str] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            out.append(text[pos:])
            return "".join(out)
        end = text.find("}}", start + 2)
        if end < 0:
            raise TemplateError(f"invalid template: cannot find end tag '}}}}' in {text!r}")
        out.append(text[pos:start])
        tag = text[start + 2:end]
        value = params.get(tag.strip())
        out.append(value if tag.strip() and isinstance(value, str) else "{{" + tag + "}}")
        pos = end + 2


# -- Go templates ------------------------------------------------------------------------------

SUPPORTED_FUNCTIONS = ("index", "default", "lower", "upper", "trim", "trimPrefix",
                       "trimSuffix", "replace", "trunc", "printf", "normalize")
KEYWORDS = ("if", "else", "end", "range", "with", "define", "template", "block", "break",
            "continue")
MISSING_KEY = ("missingkey=default", "missingkey=invalid", "missingkey=zero",
               "missingkey=error")
_NO_VALUE = "<no value>"
_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<pipe>\|)
    | (?P<open>\()
    | (?P<close>\))
    | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
    | (?P<number>[-+]?(?:0[xX][0-9a-fA-F_]+|[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?))
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<other>\S)
    )""", re.VERBOSE)


class _Missing:
    """A key absent from the parameters (prints ``<no value>``)."""


MISSING = _Missing()


def check_options(options: Sequence[str]) -> bool:
    """Validate ``goTemplateOptions``; True when a missing key is an error."""
    for option in options:
        if option not in MISSING_KEY:
            raise TemplateError(f"goTemplateOptions: {option!r} is not a Go template option "
                                f"(known: {', '.join(MISSING_KEY)})")
    return "missingkey=error" in options


def render_go(text: str, params: Mapping[str, Any], *, strict: bool = False) -> str:
    """Evaluate ``text`` as a Go template over ``params`` (the subset in the module docstring)."""
    if "{{" not in text:
        return text
    out: list[str] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            out.append(text[pos:])
            break
        end = text.find("}}", start + 2)
        if end < 0:
            raise TemplateError(f"unclosed action in {text!r}")
        literal = text[pos:start]
        body = text[start + 2:end]
        if body[:2] in ("- ", "-\t", "-\n", "-\r"):
            literal = literal.rstrip(" \t\r\n")
            body = body[1:]
        trim_right = False
        if body[-2:] in (" -", "\t-", "\n-", "\r-"):
            trim_right = True
            body = body[:-1]
        out.append(literal)
        stripped = body.strip()
        if stripped.startswith("/*"):
            if not stripped.endswith("*/"):
                raise TemplateError(f"unclosed comment in {text!r}")
        else:
            out.append(_print(_Evaluator(params, strict).pipeline(stripped)))
        pos = end + 2
        if trim_right:
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip(" \t\r\n"))
    return "".join(out)


class _Evaluator:
    def __init__(self, params: Mapping[str, Any], strict: bool) -> None:
        self.params = params
        self.strict = strict

    def pipeline(self, text: str) -> Any:
        tokens = self._tokens(text)
        if not tokens:
            raise TemplateError("missing value for command")
        value, rest = self._pipeline(tokens)
        if rest:
            raise TemplateError(f"unexpected {rest[0][1]!r} in {{{{{text}}}}}")
        return value

    def _tokens(self, text: str) -> list[tuple[str, str]]:
        tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                break
            kind = match.lastgroup or "other"
            value = match.group(kind)
            if kind == "other":
                raise TemplateError(f"unexpected {value!r} in {{{{{text}}}}}")
            if kind == "word" and value in KEYWORDS:
                raise TemplateError(f"{{{{{value}}}}} is not supported by kiln (kiln evaluates "
                                    "field references and the functions "
                                    f"{', '.join(SUPPORTED_FUNCTIONS)} only)")
            tokens.append((kind, value))
            pos = match.end()
        return tokens

    def _pipeline(self, tokens: list[tuple[str, str]]) -> tuple[Any, list[tuple[str, str]]]:
        value, tokens = self._command(tokens, None, piped=False)
        while tokens and tokens[0][0] == "pipe":
            value, tokens = self._command(tokens[1:], value, piped=True)
        return value, tokens

    def _command(self, tokens: list[tuple[str, str]], piped_value: Any, *, piped: bool
                 ) -> tuple[Any, list[tuple[str, str]]]:
        args: list[tuple[str, Any]] = []
        while tokens and tokens[0][0] not in ("pipe", "close"):
            kind, text = tokens[0]
            if kind == "open":
                value, rest = self._pipeline(tokens[1:])
                if not rest or rest[0][0] != "close":
                    raise TemplateError("unclosed '('")
                args.append(("value", value))
                tokens = rest[1:]
                continue
            args.append((kind, text))
            tokens = tokens[1:]
        if not args:
            raise TemplateError("missing command")
        kind, head = args[0]
        if kind == "word" and head not in ("true", "false", "nil"):
            values = [self._operand(k, t) for k, t in args[1:]]
            if piped:
                values.append(piped_value)
            return _call(head, values), tokens
        if len(args) > 1 or piped:
            raise TemplateError(f"can't give argument to non-function {head!r}")
        return self._operand(kind, head), tokens

    def _operand(self, kind: str, text: Any) -> Any:
        if kind == "value":
            return text
        if kind == "string":
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise TemplateError(f"bad string literal {text}") from None
        if kind == "raw":
            return text[1:-1]
        if kind == "number":
            return _number(text)
        if kind == "word":
            if text in ("true", "false"):
                return text == "true"
            if text == "nil":
                raise TemplateError("nil is not a command")
            raise TemplateError(f"function {text!r} needs to be called first (kiln supports "
                                "no nested function values)")
        if kind == "var":
            if text != "$" and not text.startswith("$."):
                raise TemplateError(f"undefined variable {text.split('.')[0]!r}")
            return self._field(text[1:] or ".")
        return self._field(text)

    def _field(self, chain: str) -> Any:
        if chain == ".":
            return self.params
        value: Any = self.params
        parts = chain.strip(".").split(".")
        for index, part in enumerate(parts):
            if isinstance(value, _Missing) or value is None:
                raise TemplateError(f"nil pointer evaluating .{'.'.join(parts[:index])}"
                                    f".{part}")
            if not isinstance(value, Mapping):
                raise TemplateError(f"can't evaluate field {part} in .{'.'.join(parts[:index])}"
                                    f" (not a map)")
            if part in value:
                value = value[part]
            elif self.strict:
                raise TemplateError(f"map has no entry for key {part!r}")
            else:
                value = MISSING
        return value


def _number(text: str) -> int | float:
    cleaned = text.replace("_", "")
    try:
        return int(cleaned, 0)
    except ValueError:
        try:
            return float(cleaned)
        except ValueError:
            raise TemplateError(f"bad number {text!r}") from None


def _call(name: str, args: list[Any]) -> Any:
    function = _FUNCTIONS.get(name)
    if function is None:
        raise TemplateError(f"function {name!r} is not supported by kiln (supported: "
                            f"{', '.join(SUPPORTED_FUNCTIONS)})")
    return function(args)


def _arity(name: str, args: list[Any], count: int) -> None:
    if len(args) != count:
        raise TemplateError(f"wrong number of args for {name}: want {count} got {len(args)}")


def _string_arg(name: str, value: Any) -> str:
    """A string argument: Go refuses any other type for a ``string`` parameter (a number from
    a list element, a boolean, a missing key) and so does kiln."""
    if not isinstance(value, str):
        raise TemplateError(f"wrong type for value of {name}; expected string; got "
                            f"{_go_type(value)}")
    return value


def _go_type(value: Any) -> str:
    if isinstance(value, _Missing) or value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    return type(value).__name__


def _index(args: list[Any]) -> Any:
    if not args:
        raise TemplateError("wrong number of args for index: want at least 1 got 0")
    value = args[0]
    for key in args[1:]:
        if isinstance(value, Mapping):
            if not isinstance(key, str):
                raise TemplateError("index of a map needs a string key")
            value = value.get(key, MISSING)
        elif isinstance(value, list):
            if isinstance(key, bool) or not isinstance(key, int):
                raise TemplateError("cannot index a list with a non-integer")
            if not 0 <= key < len(value):
                raise TemplateError(f"error calling index: index out of range: {key}")
            value = value[key]
        else:
            raise TemplateError("can't index item of a non-map, non-list value")
    return value


def _empty(value: Any) -> bool:
    return isinstance(value, _Missing) or value is None or value is False or value == "" \
        or (not isinstance(value, bool) and isinstance(value, (int, float)) and value == 0) \
        or value == [] or value == {}


def _default(args: list[Any]) -> Any:
    if len(args) == 1:
        return args[0]
    _arity("default", args, 2)
    return args[0] if _empty(args[1]) else args[1]


def _normalize(args: list[Any]) -> str:
    _arity("normalize", args, 1)
    return sanitize_name(_string_arg("normalize", args[0]))


def _unary(name: str, function: Callable[[str], str]) -> Callable[[list[Any]], str]:
    def call(args: list[Any]) -> str:
        _arity(name, args, 1)
        return function(_string_arg(name, args[0]))
    return call


def _two_strings(name: str, function: Callable[[str, str], str]
                 ) -> Callable[[list[Any]], str]:
    def call(args: list[Any]) -> str:
        _arity(name, args, 2)
        return function(_string_arg(name, args[0]), _string_arg(name, args[1]))
    return call


def _replace(args: list[Any]) -> str:
    _arity("replace", args, 3)
    old, new, text = (_string_arg("replace", a) for a in args)
    return text.replace(old, new)


def _trunc(args: list[Any]) -> str:
    _arity("trunc", args, 2)
    count, text = args[0], _string_arg("trunc", args[1])
    if isinstance(count, bool) or not isinstance(count, int):
        raise TemplateError("trunc needs an integer count")
    if count < 0:
        return text[count:] if -count < len(text) else text
    return text[:count]


_VERB = re.compile(r"%(.)")


def _printf(args: list[Any]) -> str:
    if not args or not isinstance(args[0], str):
        raise TemplateError("printf needs a format string")
    rest = list(args[1:])

    def verb(match: re.Match[str]) -> str:
        char = match.group(1)
        if char == "%":
            return "%"
        if char not in "sv":
            # %d and the others depend on Go's types (a list element's number is a float64)
            raise TemplateError(f"printf verb %{char} is not supported by kiln "
                                "(supported: %s, %v, %%)")
        if not rest:
            return f"%!{char}(MISSING)"
        value = rest.pop(0)
        if char == "s" and not isinstance(value, str):
            raise TemplateError(f"printf %s of a {_go_type(value)} is not supported by kiln "
                                "(Go prints %!s(...)); use %v")
        return _print(value)

    out = _VERB.sub(verb, args[0])
    if rest:
        raise TemplateError("printf: too many arguments for the format")
    return out


_FUNCTIONS: dict[str, Callable[[list[Any]], Any]] = {
    "index": _index,
    "default": _default,
    "lower": _unary("lower", str.lower),
    "upper": _unary("upper", str.upper),
    "trim": _unary("trim", str.strip),
    "trimPrefix": _two_strings("trimPrefix", lambda p, t: t[len(p):] if t.startswith(p) else t),
    "trimSuffix": _two_strings("trimSuffix",
                               lambda x, t: t[:-len(x)] if x and t.endswith(x) else t),
    "replace": _replace,
    "trunc": _trunc,
    "printf": _printf,
    "normalize": _normalize,
}


def _print(value: Any) -> str:
    """A value as Go's ``fmt`` prints it in a template (maps and lists are refused)."""
    if isinstance(value, _Missing) or value is None:
        return _NO_VALUE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return value
    raise TemplateError("printing a map or a list is not supported by kiln (Go would print "
                        "its own map[...] syntax)")


_INVALID_DNS = re.compile(r"[^-a-z0-9.]")


def sanitize_name(name: str) -> str:
    """Argo CD's ``SanitizeName``: lower case, characters outside ``[-a-z0-9.]`` become
    ``-``, at most 253 characters, leading and trailing ``-``/``.`` removed."""
    name = _INVALID_DNS.sub("-", name.lower())[:253]
    return name.strip("-.")


# -- whole templates ---------------------------------------------------------------------------

def render_tree(data: Any, params: Mapping[str, Any], *, go: bool, strict: bool,
                where: str = "") -> Any:
    """Substitute every string (mapping keys too) of ``data``; a TemplateError names the
    dotted path of the string (``spec.source.path: ...``)."""
    if isinstance(data, str):
        try:
            return render_go(data, params, strict=strict) if go else render_fast(data, params)
        except TemplateError as exc:
            raise TemplateError(f"{where or 'template'}: {exc}") from None
    if isinstance(data, list):
        return [render_tree(v, params, go=go, strict=strict, where=f"{where}[{i}]")
                for i, v in enumerate(data)]
    if isinstance(data, dict):
        out: dict[Any, Any] = {}
        for key, value in data.items():
            path = f"{where}.{key}" if where else str(key)
            new_key = render_tree(key, params, go=go, strict=strict, where=path)
            out[new_key] = render_tree(value, params, go=go, strict=strict, where=path)
        return out
    return data
