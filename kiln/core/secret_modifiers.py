"""argocd-vault-plugin's seven placeholder modifiers, with its semantics.

``apply_modifier`` runs one ``| name args`` step; ``jsonPath`` is client-go's JSONPath template
language (:mod:`kiln.core.jsonpath`). Error messages never contain the value being modified.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import msgspec


class Modifier(msgspec.Struct, frozen=True):
    """One ``| name args`` step of a placeholder's pipeline."""

    name: str
    args: tuple[str, ...] = ()

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


def json_path(template: str, value: Any) -> str:
    """AVP's ``jsonPath``: client-go's JSONPath template language over ``value``
    (:mod:`kiln.core.jsonpath`), missing keys an error.

    A string is decoded as JSON first, with Go's rules (every number a float), as AVP does.
    Errors name the template's problem, never the value.
    """
    from kiln.core import jsonpath

    try:
        parsed = jsonpath.parse(template)
        if isinstance(value, str):
            value = jsonpath.loads_json(value)
        return parsed.execute(value, allow_missing_keys=False)
    except jsonpath.JSONPathError as exc:
        raise ModifierError(str(exc)) from None
