"""argocd-vault-plugin's seven placeholder modifiers, with its semantics.

``apply_modifier`` runs one ``| name args`` step; ``json_path`` is the Kubernetes JSONPath
subset ``jsonPath`` needs. Error messages never contain the value being modified.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kiln.core.secrets import Modifier

MODIFIERS = ("base64encode", "base64decode", "jsonPath", "jsonParse", "yamlParse", "indent",
             "sha256sum")


MAX_INDENT = 1024
"""Largest ``indent`` level: AVP's Go would panic on a negative one and run out of memory on a
huge one; kiln refuses both."""


class ModifierError(Exception):
    """A modifier could not apply; the message never contains the value."""


def apply_modifier(mod: Modifier, value: Any) -> Any:
    """Apply one AVP modifier to ``value`` with AVP's semantics (see docs/secrets.md)."""
    name, args = mod.name, mod.args
    if name == "jsonPath":
        if not args:
            raise ModifierError("needs an expression")
        return json_path(" ".join(args), value)
    if name == "indent":
        if len(args) != 1:
            raise ModifierError("takes one argument")
        try:
            level = int(args[0])
        except ValueError:
            raise ModifierError("invalid indentation level") from None
        if not 0 <= level <= MAX_INDENT:  # the level comes from the repository
            raise ModifierError(f"indentation level must be 0 to {MAX_INDENT}")
        return _indent(_need_str(name, value), level)
    if args:
        raise ModifierError("takes no arguments")
    if name == "base64encode":
        return base64.b64encode(_need_str(name, value).encode()).decode()
    if name == "base64decode":
        try:  # AVP ignores decode errors (yielding an empty string)
            return base64.b64decode(_need_str(name, value), validate=True).decode(
                "utf-8", "replace")
        except (binascii.Error, ValueError):
            return ""
    if name == "sha256sum":
        import hashlib

        return hashlib.sha256(_need_str(name, value).encode()).hexdigest()
    if name == "jsonParse":
        try:
            return json.loads(_need_str(name, value))
        except json.JSONDecodeError as exc:
            raise ModifierError(f"not JSON: line {exc.lineno}, column {exc.colno}: "
                                f"{exc.msg}") from None
    if name == "yamlParse":
        import yaml

        try:
            return yaml.safe_load(_need_str(name, value))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
            raise ModifierError(f"not YAML: {where}") from None
    raise ModifierError(f"invalid modifier {name!r}")  # pragma: no cover - parse rejects it


def _need_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ModifierError(f"expected a string, got {_type_name(value)}")
    return value


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _indent(text: str, level: int) -> str:
    """AVP's indent: trim each line, indent lines after the first, drop empty lines."""
    lines = text.split("\n")
    out = [lines[0].strip()]
    rest = [" " * level + line.strip() for line in lines[1:] if line]
    return "\n".join(out + rest)


_JP_TOKEN = re.compile(r"\.\.|\.([^.\[\]]+)|\[\s*'([^']*)'\s*\]|\[\s*\"([^\"]*)\"\s*\]|"
                       r"\[\s*(-?\d+)\s*\]|\[\s*\*\s*\]|\.?\*")


def json_path(template: str, value: Any) -> str:
    """Evaluate a Kubernetes-style JSONPath template (``{.a.b}``, ``{.list[0]}``,
    ``{.m['k']}``, ``[*]``; text outside braces is literal) with missing keys an error.

    A string input is parsed as JSON first. Strings print raw, anything else as compact JSON;
    several results are joined by a space.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ModifierError("the value is not JSON") from None
    out: list[str] = []
    pos = 0
    while pos < len(template):
        start = template.find("{", pos)
        if start < 0:
            out.append(template[pos:])
            break
        end = template.find("}", start)
        if end < 0:
            raise ModifierError("unclosed '{'")
        out.append(template[pos:start])
        results = _jp_eval(template[start + 1:end].strip(), value)
        out.append(" ".join(r if isinstance(r, str) else
                            json.dumps(r, separators=(",", ":"), ensure_ascii=False)
                            for r in results))
        pos = end + 1
    return "".join(out)


def _jp_eval(expr: str, root: Any) -> list[Any]:
    if expr.startswith("$"):
        expr = expr[1:]
    if expr in ("", "."):
        return [root]
    current = [root]
    pos = 0
    while pos < len(expr):
        m = _JP_TOKEN.match(expr, pos)
        if m is None:
            raise ModifierError(f"cannot parse {expr!r} at offset {pos}")
        pos = m.end()
        token = m.group(0)
        if token == "..":
            raise ModifierError("recursive descent is not supported")
        nxt: list[Any] = []
        for node in current:
            name = m.group(1) or m.group(2) or m.group(3)
            if name is not None and name != "*":
                if not isinstance(node, Mapping) or name not in node:
                    raise ModifierError(f"{name} is not found")
                nxt.append(node[name])
            elif m.group(4) is not None:
                index = int(m.group(4))
                if not isinstance(node, list) or not -len(node) <= index < len(node):
                    raise ModifierError(f"index {index} is out of range")
                nxt.append(node[index])
            elif isinstance(node, Mapping):
                nxt.extend(node.values())
            elif isinstance(node, list):
                nxt.extend(node)
        current = nxt
    return current
