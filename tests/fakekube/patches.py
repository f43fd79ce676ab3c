"""Patch formats the fake applies: JSON merge patch (and an approximated strategic merge
patch), JSON patch, and the JSON-or-YAML body of an apply."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.fakekube import ssa
from tests.fakekube.jsoncopy import clone
from tests.fakekube.status import ApiError, bad_request


def load_json_or_yaml(raw: bytes) -> Any:
    """An apply body: JSON when it parses as JSON (the fast path), else YAML."""
    try:
        return json.loads(raw or b"null")
    except ValueError:
        pass
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(raw.decode() or "null", Loader=loader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise bad_request(f"error decoding YAML: {exc}") from None


def merge_patch(target: Any, patch: Any, *, strategic: bool = False) -> Any:
    """RFC 7386 JSON merge patch; ``strategic`` also merges lists of named objects by name
    (the fake's approximation of a strategic merge patch)."""
    if not isinstance(patch, dict):
        if strategic and isinstance(patch, list) and isinstance(target, list):
            return ssa.merge(target, patch)
        return clone(patch)
    out = clone(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value, strategic=strategic)
    return out


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    if not isinstance(ops, list):
        raise bad_request("a JSON patch must be a list of operations")
    doc = clone(doc)

    def parent(path: str) -> tuple[Any, str]:
        parts = _pointer(path)
        cur = doc
        for p in parts[:-1]:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur, parts[-1]

    def get(path: str) -> Any:
        if path == "":
            return doc
        cur, last = parent(path)
        return cur[int(last)] if isinstance(cur, list) else cur[last]

    for op in ops:
        try:
            kind, path = op["op"], op["path"]
            if kind == "test":
                if get(path) != op.get("value"):
                    raise ApiError(422, "Invalid", f"the server rejected our request due to an "
                                   f"error in our request: testing value {path} failed")
                continue
            if kind in ("move", "copy"):
                value = clone(get(op["from"]))
                if kind == "move":
                    cur, last = parent(op["from"])
                    del cur[int(last) if isinstance(cur, list) else last]
                kind, op = "add", {"value": value}
            cur, last = parent(path)
            if kind == "add":
                if isinstance(cur, list):
                    cur.insert(len(cur) if last == "-" else int(last), clone(op["value"]))
                else:
                    cur[last] = clone(op["value"])
            elif kind == "remove":
                del cur[int(last) if isinstance(cur, list) else last]
            elif kind == "replace":
                index: Any = int(last) if isinstance(cur, list) else last
                if not isinstance(cur, list) and last not in cur:
                    raise KeyError(last)
                cur[index] = clone(op["value"])
            else:
                raise bad_request(f"unknown JSON patch operation {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(422, "Invalid", f"the server rejected our request due to an error in "
                           f"our request: {exc!r}") from None
    return doc
