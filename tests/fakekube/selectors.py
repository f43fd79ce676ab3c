"""Label and field selectors as LIST accepts them (``labelSelector``, ``fieldSelector``).

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` (exists),
``!k`` (does not exist), comma-separated (all must hold). Field selectors: ``metadata.name`` and
``metadata.namespace`` with ``=``, ``==`` or ``!=``; any other field is refused as the API
refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tests.fakekube.status import ApiError, bad_request

Requirement = Callable[[Mapping[str, str]], bool]

_SET_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_CMP_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*$")


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    depth = 0
    cur = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def _requirement(term: str, selector: str) -> Requirement:
    m = _SET_RE.match(term)
    if m:
        key, op = m.group(1), m.group(2)
        values = {v.strip() for v in m.group(3).split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: key not in labels or labels[key] not in values
    m = _CMP_RE.match(term)
    if m:
        key, op, value = m.group(1), m.group(2), m.group(3)
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    m = _EXISTS_RE.match(term)
    if m:
        negate, key = m.group(1) == "!", m.group(2)
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise bad_request(f'unable to parse requirement: found \'{term.strip()}\', '
                      f'in selector "{selector}"')


def label_matcher(selector: str) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate on objects for a ``labelSelector``; raises a 400 ApiError when malformed."""
    reqs = [_requirement(term, selector) for term in _split(selector)]

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(req(labels) for req in reqs)

    return matches


_FIELDS = {"metadata.name": "name", "metadata.namespace": "namespace"}


def _field_test(attr: str, value: str, negate: bool) -> Callable[[Mapping[str, Any]], bool]:
    def test(obj: Mapping[str, Any]) -> bool:
        return bool(((obj.get("metadata") or {}).get(attr, "") == value) != negate)
    return test


def field_matcher(selector: str) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate on objects for a ``fieldSelector`` (``metadata.name``/``metadata.namespace``)."""
    tests: list[Callable[[Mapping[str, Any]], bool]] = []
    for term in _split(selector):
        m = _CMP_RE.match(term)
        if not m:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{term}'")
        fld, op, value = m.group(1), m.group(2), m.group(3)
        if fld not in _FIELDS:
            raise ApiError(400, "BadRequest",
                           f'"{fld}" is not a known field selector: only "metadata.name", '
                           f'"metadata.namespace"')
        tests.append(_field_test(_FIELDS[fld], value, op == "!="))

    def matches(obj: Mapping[str, Any]) -> bool:
        return all(t(obj) for t in tests)

    return matches
