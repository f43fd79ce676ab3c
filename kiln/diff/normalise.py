"""Normalisation: what a diff compares of an object, once server bookkeeping is set aside.

A live object and a server-side dry-run result carry fields no manifest sets (managed fields,
resource version, uid, generation, creation time, status) and defaults the API server filled
in. :func:`normalise` drops the bookkeeping and folds a Secret's ``stringData`` into ``data``
(what the API server does), so a rendered object, a dry-run result and a live object compare
field by field; :func:`drop_server_defaults` then removes the defaults the dry-run added that
the live object holds with the same value. Nothing here logs or prints an object.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping
from typing import Any

SERVER_METADATA = ("managedFields", "resourceVersion", "uid", "generation",
                   "creationTimestamp", "selfLink")
"""``metadata`` fields the API server sets and a diff never shows."""
SERVER_FIELDS = ("status",)
"""Top-level fields a diff never shows (the object's observed state, not its desired one)."""


def is_secret(obj: Mapping[str, Any]) -> bool:
    """True for an object of kind ``Secret`` (whatever its apiVersion: masking errs on the safe
    side, and such an object only reaches a cluster as a core Secret)."""
    return obj.get("kind") == "Secret"


def string_value(value: Any) -> str:
    """A ``stringData`` value as the text the API server stores (a YAML number or boolean as
    written; anything else as compact JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def fold_string_data(obj: dict[str, Any]) -> None:
    """Move a Secret's ``stringData`` into ``data`` in place, base64-encoded, a ``stringData``
    key winning over the same ``data`` key — what the API server does on write. Objects of
    other kinds, and a ``stringData`` that is not a mapping, are left alone."""
    if not is_secret(obj) or "stringData" not in obj:
        return
    string_data = obj.get("stringData")
    if string_data is None:
        obj.pop("stringData")
        return
    if not isinstance(string_data, Mapping):
        return
    data = obj.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return
    for key, value in string_data.items():
        data[key] = base64.b64encode(string_value(value).encode("utf-8", "surrogatepass")
                                     ).decode("ascii")
    obj["data"] = data
    obj.pop("stringData")


def normalise(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``obj`` without the server's bookkeeping (:data:`SERVER_METADATA`,
    :data:`SERVER_FIELDS`), without empty ``labels``/``annotations`` maps, and with a Secret's
    ``stringData`` folded into ``data``. ``obj`` itself is not modified."""
    out = copy.deepcopy(dict(obj))
    for name in SERVER_FIELDS:
        out.pop(name, None)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for name in SERVER_METADATA:
            meta.pop(name, None)
        for name in ("labels", "annotations"):
            if name in meta and not meta[name]:
                meta.pop(name)
    fold_string_data(out)
    return out


_MISSING = object()


def drop_server_defaults(live: dict[str, Any] | None, desired: dict[str, Any],
                         rendered: Mapping[str, Any] | None
                         ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Remove the server-set defaults from a (normalised) live object and dry-run result.

    A field of ``desired`` (the dry-run result) that ``rendered`` (what kiln sent) does not set
    is a default the server filled in, or a field another manager owns. It is dropped from both
    sides when ``live`` holds it with the same value, and from ``desired`` alone when there is
    no live object (a create). A field whose live value differs stays on both sides, so a real
    change is always shown. Mappings are compared key by key, lists item by item when
    ``rendered`` has a list of the same length there. ``metadata.name`` and ``namespace``
    always stay. Returns new objects; with no ``rendered`` object the inputs come back
    unchanged.
    """
    if rendered is None:
        return live, desired
    new_live, new_desired = _drop(live if live is not None else _MISSING, desired, rendered,
                                  creating=live is None)
    for before, after in ((live, new_live), (desired, new_desired)):
        _keep_identity(before, after)
    return (None if live is None else new_live), new_desired


IDENTITY = ("name", "namespace")
"""``metadata`` fields always kept: they say which object a diff is about."""


def _keep_identity(original: Any, dropped: Any) -> None:
    meta = original.get("metadata") if isinstance(original, dict) else None
    if not isinstance(meta, dict) or not isinstance(dropped, dict):
        return
    out = dropped.setdefault("metadata", {})
    if not isinstance(out, dict):
        return
    for name in IDENTITY:
        if name in meta and name not in out:
            out[name] = meta[name]


def _drop(live: Any, desired: Any, rendered: Any, *, creating: bool) -> tuple[Any, Any]:
    if isinstance(desired, dict) and isinstance(rendered, Mapping):
        live_map = live if isinstance(live, dict) else None
        out_live = dict(live_map) if live_map is not None else live
        out_desired: dict[str, Any] = {}
        for key, value in desired.items():
            there = live_map.get(key, _MISSING) if live_map is not None else _MISSING
            if key in rendered:
                new_live, out_desired[key] = _drop(there, value, rendered[key],
                                                   creating=creating)
                if live_map is not None and there is not _MISSING:
                    out_live[key] = new_live
            elif creating:
                continue
            elif there is not _MISSING and there == value:
                del out_live[key]
            else:
                out_desired[key] = value
        return out_live, out_desired
    if (isinstance(desired, list) and isinstance(rendered, list)
            and len(desired) == len(rendered)):
        live_list = live if isinstance(live, list) and len(live) == len(desired) else None
        pairs = [_drop(live_list[i] if live_list is not None else _MISSING, item, rendered[i],
                       creating=creating) for i, item in enumerate(desired)]
        out_desired_list = [d for _, d in pairs]
        if live_list is None:
            return live, out_desired_list
        return [lv for lv, _ in pairs], out_desired_list
    return live, desired
