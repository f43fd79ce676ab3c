"""Parse and emit Kubernetes manifest streams, safely.

Loading uses PyYAML's safe loader (the C one when available), rejects duplicate mapping keys,
and bounds alias expansion so a "billion laughs" document is refused before anything walks it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from kiln.core.errors import InputError

if TYPE_CHECKING:
    import yaml

MAX_EXPANDED_NODES = 1_000_000
"""Most YAML nodes one document may expand to once aliases are followed."""


@functools.cache
def _yaml_classes() -> tuple[type[Any], type[Any]]:
    """Build the strict loader and pick the dumper on first use.

    PyYAML is imported here rather than at module load: a cache hit never parses or emits YAML,
    and importing PyYAML costs more than the rest of a cache hit.
    """
    import yaml

    try:
        from yaml import CSafeDumper as dumper
        from yaml import CSafeLoader as base
    except ImportError:  # pragma: no cover - depends on how PyYAML was built
        from yaml import SafeDumper as dumper  # type: ignore[assignment]
        from yaml import SafeLoader as base  # type: ignore[assignment]

    class StrictLoader(base):
        """Safe loader that refuses duplicate keys in a mapping."""

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False
                              ) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                except TypeError:  # a mapping or a sequence as a key
                    raise yaml.constructor.ConstructorError(
                        None, None, "a mapping key that is a mapping or a sequence",
                        key_node.start_mark) from None
                if duplicate:
                    line = key_node.start_mark.line + 1
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (line {line})", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    StrictLoader.add_constructor("tag:yaml.org,2002:map", StrictLoader.construct_mapping)
    return StrictLoader, dumper


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Count the nodes ``node`` stands for once every alias is expanded (memoised per node)."""
    import yaml

    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = 1  # a recursive alias counts once instead of looping
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _expanded_size(child, memo)
            if total > MAX_EXPANDED_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            total += _expanded_size(key, memo) + _expanded_size(value, memo)
            if total > MAX_EXPANDED_NODES:
                break
    memo[id(node)] = total
    return total


def _describe(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"malformed YAML: {where}{problem}"


def load_yaml_documents(text: str, source: str) -> Iterator[Any]:
    """Yield each document of a YAML stream as plain data; raise InputError naming ``source``."""
    import yaml

    may_alias = "*" in text and "&" in text
    loader = _yaml_classes()[0](text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            if may_alias and _expanded_size(node, {}) > MAX_EXPANDED_NODES:
                raise InputError(
                    f"document {index}: YAML aliases expand to more than "
                    f"{MAX_EXPANDED_NODES} nodes (alias bomb?)",
                    source=source,
                )
            yield loader.construct_document(node)
            index += 1
    except yaml.YAMLError as exc:
        raise InputError(_describe(exc), source=source) from None
    except RecursionError:
        raise InputError("YAML nesting too deep", source=source) from None
    finally:
        loader.dispose()


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A ``json.loads`` ``object_pairs_hook``: the object as a dict; ValueError naming a key
    that appears twice."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def load_json(text: str, source: str) -> Any:
    """Parse one JSON document, refusing duplicate keys; raise InputError naming ``source``."""
    try:
        return json.loads(text, object_pairs_hook=reject_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"malformed JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}", source=source
        ) from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"malformed JSON: {exc}", source=source) from None


def parse_stream(text: str, source: str) -> list[dict[str, Any]]:
    """Parse a YAML or JSON manifest stream into validated, flattened Kubernetes objects."""
    return normalise(load_yaml_documents(text, source), source)


def normalise(documents: Iterable[Any], source: str) -> list[dict[str, Any]]:
    """Drop empty documents, flatten ``*List`` kinds and JSON arrays, and validate each object.

    Every object must be a mapping with string ``apiVersion`` and ``kind``; the error names
    ``source`` and the document index.
    """
    objects: list[dict[str, Any]] = []
    for index, doc in enumerate(documents):
        _collect(doc, source, f"document {index}", objects)
    return objects


def _collect(doc: Any, source: str, where: str, out: list[dict[str, Any]]) -> None:
    if doc is None:
        return
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            if isinstance(item, list):
                raise InputError(f"{where}, item {i}: a list inside a list", source=source)
            _collect(item, source, f"{where}, item {i}", out)
        return
    if not isinstance(doc, dict):
        raise InputError(
            f"{where}: expected a Kubernetes object (a mapping), got {type(doc).__name__}",
            source=source,
        )
    if not doc:
        return
    for field in ("apiVersion", "kind"):
        if not isinstance(doc.get(field), str) or not doc[field]:
            raise InputError(f"{where}: object has no {field}", source=source)
    if doc["kind"].endswith("List") and "items" in doc:
        items = doc["items"]
        if items is None:
            return
        if not isinstance(items, list):
            raise InputError(f"{where}: {doc['kind']}.items is not a list", source=source)
        for i, item in enumerate(items):
            _collect(item, source, f"{where}, item {i}", out)
        return
    out.append(doc)


def dump_yaml_stream(objects: Iterable[dict[str, Any]]) -> str:
    """Emit objects as a YAML stream with ``---`` between documents, keys in their order."""
    import yaml

    return yaml.dump_all(
        objects,
        Dumper=_yaml_classes()[1],
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        explicit_start=False,
        width=1 << 30,
    ).replace("\n...\n", "\n")


def dump_json(objects: list[dict[str, Any]]) -> str:
    """Emit objects as one indented JSON array."""
    return json.dumps(objects, indent=2, ensure_ascii=False) + "\n"


def object_ref(obj: dict[str, Any]) -> str:
    """Name an object as ``Kind/namespace/name`` (or ``Kind/name``) for messages."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = meta.get("name", "?") if meta else "?"
    ns = meta.get("namespace") if meta else None
    return f"{obj.get('kind', '?')}/{ns}/{name}" if ns else f"{obj.get('kind', '?')}/{name}"
