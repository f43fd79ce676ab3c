"""Field ownership for the fake: leaf paths, managedFields (FieldsV1), apply merge and conflicts.

Granularity (documented limits of the fake, compared with structured-merge-diff):

- Ownership is tracked per **leaf path**. Maps recurse (every key is a path element); an empty
  map is itself a leaf.
- A list whose items are all objects carrying a string ``name`` is an **associative list keyed
  by name** (as containers, env, volumes, ports with names are): items merge by name, a path
  element is ``k:{"name":"x"}`` and prints as ``[name="x"]``. Every other list is **atomic**
  (one leaf, replaced as a whole) — the real schema keys some lists by other fields
  (``containerPort``+``protocol``, ``mountPath``) and treats some maps as atomic; the fake does
  not know the schema.
- Apply: the manager's set becomes exactly the leaves of its applied config; a leaf another
  manager owns with a *different* value is a conflict (409) unless ``force``, which moves it; the
  same value is shared. Leaves the manager owned before and no longer applies are removed from
  the object when no other manager owns them; maps and list items left empty by a removal are
  removed too (``metadata`` is kept).
- Update (POST/PUT/PATCH): the manager takes every leaf whose value it changed or added
  (server defaults included, as the API does), other managers lose those leaves, and leaves the
  update removed leave every set. Updates never conflict.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

from tests.fakekube.jsoncopy import clone

Elem = tuple[str, str]
"""``("f", field name)`` or ``("k", '{"name":"x"}')`` for an item of a keyed list."""
Path = tuple[Elem, ...]

SYSTEM_META = frozenset({"name", "namespace", "generateName", "uid", "resourceVersion",
                         "generation", "creationTimestamp", "deletionTimestamp",
                         "deletionGracePeriodSeconds", "managedFields", "selfLink"})
"""ObjectMeta fields the server owns: never part of anyone's field set."""

MAP_FIELDS = frozenset({"labels", "annotations", "data", "binaryData", "stringData",
                        "matchLabels", "nodeSelector", "parameters"})
"""Fields that are maps in the real schema: their FieldsV1 node carries ``.`` as the API's does."""


def _is_keyed(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in value))


def _key(item: Mapping[str, Any]) -> str:
    return json.dumps({"name": item["name"]}, separators=(",", ":"))


def leaves(value: Any, prefix: Path = ()) -> dict[Path, Any]:
    """Every leaf path under ``value`` with its value (see the module docstring for the rules)."""
    out: dict[Path, Any] = {}
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            out.update(leaves(sub, (*prefix, ("f", str(key)))))
    elif _is_keyed(value):
        for item in value:
            out.update(leaves(item, (*prefix, ("k", _key(item)))))
    elif prefix:
        out[prefix] = value
    return out


def owned_view(obj: Mapping[str, Any], subresource: str, status_is_subresource: bool
               ) -> dict[str, Any]:
    """The part of ``obj`` whose fields managers can own, for a write to ``subresource``."""
    if subresource == "status":
        return {"status": clone(obj["status"])} if "status" in obj else {}
    view: dict[str, Any] = {}
    for key, sub in obj.items():
        if key in ("apiVersion", "kind") or (key == "status" and status_is_subresource):
            continue
        if key == "metadata" and isinstance(sub, dict):
            meta = {k: clone(v) for k, v in sub.items() if k not in SYSTEM_META}
            if meta:
                view["metadata"] = meta
            continue
        view[key] = clone(sub)
    return view


def get_at(obj: Any, path: Path) -> tuple[bool, Any]:
    """``(True, value)`` at ``path`` in ``obj``, or ``(False, None)`` when it is absent."""
    cur = obj
    for kind, name in path:
        if kind == "f":
            if not isinstance(cur, dict) or name not in cur:
                return False, None
            cur = cur[name]
        else:
            if not isinstance(cur, list):
                return False, None
            want = json.loads(name)["name"]
            for item in cur:
                if isinstance(item, dict) and item.get("name") == want:
                    cur = item
                    break
            else:
                return False, None
    return True, cur


def remove_at(obj: dict[str, Any], path: Path, protected: Set[Path] = frozenset()) -> None:
    """Remove the leaf at ``path``, then every map or list item the removal left empty.

    ``metadata`` itself is never removed, nor a container whose path is in ``protected``.
    """
    if not path:
        return
    parents: list[tuple[Any, Elem, Any]] = []
    cur: Any = obj
    for elem in path:
        found, child = get_at(cur, (elem,))
        if not found:
            return
        parents.append((cur, elem, child))
        cur = child
    for depth in range(len(parents) - 1, -1, -1):
        container, (kind, name), child = parents[depth]
        if kind == "f":
            del container[name]
        else:
            container[:] = [i for i in container if i is not child]
        if container or depth == 0 or path[:depth] in protected:
            break
        if path[:depth] == (("f", "metadata"),):
            break


def merge(live: Any, applied: Any) -> Any:
    """``applied`` merged into ``live``: maps recurse, keyed lists merge by name, rest replaces."""
    if isinstance(live, dict) and isinstance(applied, dict):
        out = clone(live)
        for key, sub in applied.items():
            out[key] = merge(live[key], sub) if key in live else clone(sub)
        return out
    if _is_keyed(live) and _is_keyed(applied):
        by_name = {i["name"]: i for i in live}
        merged = [merge(by_name[i["name"]], i) if i["name"] in by_name else clone(i)
                  for i in applied]
        wanted = {i["name"] for i in applied}
        return merged + [clone(i) for i in live if i["name"] not in wanted]
    return clone(applied)


def path_string(path: Path) -> str:
    """A path as the API prints it in conflicts: ``.spec.template.spec.containers[name="a"]``."""
    out = ""
    for kind, name in path:
        if kind == "f":
            out += "." + name
        else:
            out += "[name=" + json.dumps(json.loads(name)["name"]) + "]"
    return out


def encode_fields(paths: Iterable[Path]) -> dict[str, Any]:
    """A FieldsV1 tree (``{"f:spec": {"f:replicas": {}}}``) for a set of leaf paths."""
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for index, (kind, name) in enumerate(path):
            node = node.setdefault(f"{kind}:{name}", {})
            if index < len(path) - 1 and (kind == "k" or name in MAP_FIELDS):
                node.setdefault(".", {})
    return tree


def decode_fields(tree: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    """The leaf paths of a FieldsV1 tree (``.`` markers and unknown prefixes are ignored)."""
    out: set[Path] = set()
    children = {k: v for k, v in tree.items() if k != "."}
    if not children:
        if prefix:
            out.add(prefix)
        return out
    for key, sub in children.items():
        kind, _, name = key.partition(":")
        if kind in ("f", "k") and isinstance(sub, Mapping):
            out |= decode_fields(sub, (*prefix, (kind, name)))
    return out


@dataclass
class Entry:
    """One managedFields entry, with its FieldsV1 decoded to a set of leaf paths."""

    manager: str
    operation: str
    api_version: str
    time: str
    subresource: str = ""
    fields: set[Path] = field(default_factory=set)

    def same_owner(self, manager: str, operation: str, subresource: str) -> bool:
        """Whether this entry is the one ``manager`` writes with ``operation``."""
        return (self.manager, self.operation, self.subresource) == (manager, operation,
                                                                     subresource)

    def printed(self) -> str:
        """The manager as conflict messages print it (``"kubectl" using apps/v1`` for Update)."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text

    def to_json(self) -> dict[str, Any]:
        """The entry as ``metadata.managedFields`` holds it."""
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation,
                               "apiVersion": self.api_version, "time": self.time,
                               "fieldsType": "FieldsV1",
                               "fieldsV1": encode_fields(self.fields)}
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def read_entries(obj: Mapping[str, Any]) -> list[Entry]:
    """The managedFields entries of ``obj``."""
    raw = (obj.get("metadata") or {}).get("managedFields") or []
    out: list[Entry] = []
    for item in raw:
        if not isinstance(item, Mapping) or not item.get("manager"):
            continue
        out.append(Entry(manager=str(item["manager"]), operation=str(item.get("operation", "")),
                         api_version=str(item.get("apiVersion", "")),
                         time=str(item.get("time", "")),
                         subresource=str(item.get("subresource", "")),
                         fields=decode_fields(item.get("fieldsV1") or {})))
    return out


def write_entries(obj: dict[str, Any], entries: Iterable[Entry]) -> None:
    """Store ``entries`` (those that still own a field) as ``obj``'s managedFields."""
    kept = [e.to_json() for e in entries if e.fields]
    meta = obj.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)


@dataclass
class ApplyResult:
    """What an apply produced: the merged object (managedFields written) or the conflicts."""

    obj: dict[str, Any]
    conflicts: list[tuple[str, str]]


def _entry(entries: list[Entry], manager: str, operation: str, subresource: str,
           api_version: str, now: str) -> Entry:
    for e in entries:
        if e.same_owner(manager, operation, subresource):
            return e
    new = Entry(manager, operation, api_version, now, subresource)
    entries.append(new)
    return new


def _stamp(before: dict[int, set[Path]], entries: list[Entry], now: str) -> None:
    for e in entries:
        if before.get(id(e)) != e.fields:
            e.time = now


def _is_item_key(path: Path) -> bool:
    """Whether ``path`` is the ``name`` key of a keyed-list item (``...[name="x"].name``)."""
    return len(path) >= 2 and path[-1] == ("f", "name") and path[-2][0] == "k"


def _removal_order(path: Path) -> tuple[int, bool]:
    """Deepest first, and an item's ``name`` key after its siblings (else the item is lost)."""
    return (-len(path), _is_item_key(path))


def apply(live: dict[str, Any] | None, config: dict[str, Any], *, manager: str,
          api_version: str, force: bool, now: str, subresource: str = "",
          status_is_subresource: bool = False) -> ApplyResult:
    """Server-side apply ``config`` onto ``live`` (``None``: create) as ``manager``.

    Returns the merged object with its managedFields updated, or the ``(printed manager,
    path)`` conflicts when some exist and ``force`` is false (the object is then unchanged).
    """
    base: dict[str, Any] = clone(live) if live is not None else {}
    entries = read_entries(base)
    before = {id(e): set(e.fields) for e in entries}
    cfg_view = owned_view(config, subresource, status_is_subresource)
    cfg_leaves = leaves(cfg_view)
    live_view = owned_view(base, subresource, status_is_subresource)
    conflicts: list[tuple[Entry, Path]] = []
    for e in entries:
        if e.same_owner(manager, "Apply", subresource):
            continue
        for p in sorted(e.fields & cfg_leaves.keys()):
            found, value = get_at(live_view, p)
            if not found or value != cfg_leaves[p]:
                conflicts.append((e, p))
    if conflicts and not force:
        return ApplyResult(base, [(e.printed(), path_string(p)) for e, p in conflicts])
    for e, p in conflicts:
        e.fields.discard(p)
    mine = _entry(entries, manager, "Apply", subresource, api_version, now)
    merged = merge(base, cfg_view)
    for key in ("apiVersion", "kind"):
        if key in config:
            merged[key] = config[key]
    others = [e for e in entries if e is not mine]
    protected: set[Path] = set()
    for kept in (cfg_leaves, *(e.fields for e in others)):
        for path in kept:
            protected.update(path[:i] for i in range(1, len(path) + 1))
    for p in sorted(mine.fields - cfg_leaves.keys(), key=_removal_order):
        if p in protected or (_is_item_key(p) and p[:-1] in protected):
            continue
        remove_at(merged, p, protected)
    mine.fields = set(cfg_leaves)
    mine.api_version = api_version
    _stamp(before, entries, now)
    write_entries(merged, entries)
    return ApplyResult(merged, [])


def record_update(old: Mapping[str, Any] | None, new: dict[str, Any], *, manager: str,
                  api_version: str, now: str, subresource: str = "",
                  status_is_subresource: bool = False) -> None:
    """Attribute an Update (POST/PUT/PATCH) by ``manager`` in ``new``'s managedFields.

    ``new`` carries the managedFields of ``old`` (or the ones the request set) on entry.
    """
    entries = read_entries(new)
    before = {id(e): set(e.fields) for e in entries}
    old_leaves = leaves(owned_view(old or {}, subresource, status_is_subresource))
    new_leaves = leaves(owned_view(new, subresource, status_is_subresource))
    changed = {p for p, v in new_leaves.items() if p not in old_leaves or old_leaves[p] != v}
    removed = old_leaves.keys() - new_leaves.keys()
    if changed:
        mine = _entry(entries, manager, "Update", subresource, api_version, now)
    for e in entries:
        e.fields -= removed
        if changed and e is not mine:
            e.fields -= changed
    if changed:
        mine.fields |= changed
        mine.api_version = api_version
    _stamp(before, entries, now)
    write_entries(new, entries)
