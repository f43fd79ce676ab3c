"""Parse and emit Kubernetes manifest streams, safely, with the YAML rules Argo CD reads by.

Argo CD reads a tool's output (and a directory app's files) with sigs.k8s.io/yaml, that is
go-yaml v2's rules followed by a JSON round trip (:mod:`kiln.core.goyaml`). Loading here gives
exactly those objects: ``y``/``on`` are booleans, ``12:30``, ``=`` and timestamps are strings,
mapping keys become strings (``true:`` -> ``"true"``), ``<<`` merges the way go-yaml does (a
merged key replaces one set before it). Emitting quotes every string those rules would read as
something else, so the text kiln prints means the same objects to Argo CD.

The scalars are parsed by PyYAML's C parser (libyaml, which refuses nesting deeper than 1000);
duplicate mapping keys are refused, documents nested deeper than :data:`MAX_DEPTH` are refused,
and alias expansion is bounded so a "billion laughs" document is refused before anything walks
it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.core import goyaml
from kiln.core.errors import InputError

if TYPE_CHECKING:
    import yaml

MAX_EXPANDED_NODES = 1_000_000
"""Most YAML nodes one document may expand to once aliases are followed."""

MAX_DEPTH = 200
"""Deepest nesting of mappings and sequences a manifest may have (Kubernetes objects need a
few tens of levels; the bound keeps parsing and emitting far from Python's recursion limit)."""

_PLAIN = "\x00plain"
"""The tag the composer gives an untagged plain scalar (no document can spell it)."""


@functools.cache
def _yaml_classes() -> tuple[type[Any], type[Any]]:
    """Build the composer and the dumper on first use.

    PyYAML is imported here rather than at module load: a cache hit never parses or emits YAML,
    and importing PyYAML costs more than the rest of a cache hit.
    """
    import yaml

    try:
        from yaml import CSafeDumper as dumper
        from yaml.cyaml import CParser as parser  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - depends on how PyYAML was built
        from yaml import SafeDumper as dumper  # type: ignore[assignment]

        class parser(yaml.reader.Reader, yaml.scanner.Scanner,  # type: ignore[no-redef]
                     yaml.parser.Parser, yaml.composer.Composer):
            def __init__(self, stream: str) -> None:
                yaml.reader.Reader.__init__(self, stream)
                yaml.scanner.Scanner.__init__(self)
                yaml.parser.Parser.__init__(self)
                yaml.composer.Composer.__init__(self)

    seq_tag, map_tag = goyaml.TAG_PREFIX + "seq", goyaml.TAG_PREFIX + "map"

    class Composer(parser):
        """Builds the node graph; marks untagged plain scalars for go-yaml's resolution."""

        def descend_resolver(self, parent: Any, index: Any) -> None:
            """Path-based resolution is not used."""

        def ascend_resolver(self) -> None:
            """Path-based resolution is not used."""

        def resolve(self, kind: type[Any], value: str | None, implicit: tuple[bool, bool]
                    ) -> str:
            if kind is yaml.ScalarNode:
                return _PLAIN if implicit[0] else goyaml.STR
            return seq_tag if kind is yaml.SequenceNode else map_tag

    class Dumper(dumper):
        """Safe dumper that quotes every string go-yaml v2 would not read back as that string,
        and writes shared objects out in full instead of as anchors."""

        def resolve(self, kind: type[Any], value: str | None, implicit: tuple[bool, bool]
                    ) -> str:
            if kind is yaml.ScalarNode:
                if implicit[0] and value is not None:
                    return goyaml.tag_of_plain(value)
                return goyaml.STR
            return seq_tag if kind is yaml.SequenceNode else map_tag

        def ignore_aliases(self, data: Any) -> bool:
            return True

    return Composer, Dumper


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


class _Builder:
    """Turns one composed document into plain data under go-yaml v2 + sigs.k8s.io/yaml rules.

    Objects are memoised per node, so an alias costs one lookup; a node that contains itself
    is refused, as go-yaml does.
    """

    def __init__(self, text: str) -> None:
        import yaml

        self.text = text

        self.scalar_node = yaml.ScalarNode
        self.mapping_node = yaml.MappingNode
        self.sequence_node = yaml.SequenceNode
        self.memo: dict[int, Any] = {}
        self.open: set[int] = set()

    def build(self, node: yaml.Node, depth: int = 0) -> Any:
        """The value of ``node``; GoYamlError or _Refused for what Argo CD would refuse."""
        if type(node) is self.scalar_node:
            return self.scalar(node)
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        if key in self.open:
            raise _Refused(node, "an anchor's value contains itself")
        if depth >= MAX_DEPTH:
            raise _Refused(node, f"nested deeper than {MAX_DEPTH} levels")
        self.open.add(key)
        if type(node) is self.mapping_node:
            value: Any = self.mapping(node, depth + 1)
        else:
            value = [self.build(child, depth + 1) for child in node.value]
        self.open.discard(key)
        self.memo[key] = value
        return value

    def scalar(self, node: yaml.ScalarNode) -> Any:
        tag = node.tag
        if tag == _PLAIN:
            value = goyaml.resolve_plain(node.value)
            if type(value) is str or self.nonspecific(node):
                return node.value
        elif tag == goyaml.STR:
            return node.value
        else:
            value = self.tagged(node)
        try:
            return goyaml.json_value(value)
        except goyaml.GoYamlError as exc:
            raise _Refused(node, str(exc)) from None

    def nonspecific(self, node: yaml.ScalarNode) -> bool:
        """Whether the plain scalar carries the non-specific tag ``!``, which libyaml reports
        as untagged but go-yaml reads as a string. Only asked of scalars that would not be
        strings otherwise: a plain scalar's text starts with its value unless properties
        (``&anchor``, ``!``) come first."""
        start = node.start_mark.index
        if self.text[start:start + 1] not in ("&", "!"):
            return False
        return _NONSPECIFIC.match(self.text, start) is not None

    def tagged(self, node: yaml.ScalarNode) -> Any:
        try:
            return goyaml.resolve_tagged(node.tag, node.value)
        except goyaml.GoYamlError as exc:
            raise _Refused(node, str(exc)) from None

    def key(self, node: yaml.Node) -> str:
        if type(node) is not self.scalar_node:
            raise _Refused(node, "a mapping key that is a mapping or a sequence")
        tag = node.tag
        if tag == goyaml.STR:
            return str(node.value)
        if tag == _PLAIN:
            value = goyaml.resolve_plain(node.value)
            if type(value) is not str and self.nonspecific(node):
                return str(node.value)
        else:
            value = self.tagged(node)
        try:
            return goyaml.json_key(value)
        except goyaml.GoYamlError as exc:
            raise _Refused(node, str(exc)) from None

    def mapping(self, node: yaml.MappingNode, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        explicit: set[str] = set()
        for key_node, value_node in node.value:
            if (type(key_node) is self.scalar_node and key_node.value == "<<"
                    and key_node.tag in (_PLAIN, goyaml.MERGE)):
                self.merge(value_node, out, depth)
                continue
            key = self.key(key_node)
            if key in explicit:
                raise _Refused(key_node, f"duplicate key {key!r}")
            explicit.add(key)
            out[key] = self.build(value_node, depth)
        return out

    def merge(self, node: yaml.Node, out: dict[str, Any], depth: int) -> None:
        """go-yaml v2's ``<<``: merged keys replace keys set before; in a list of mappings the
        first one wins."""
        sources = list(reversed(node.value)) if type(node) is self.sequence_node else [node]
        for source in sources:
            if type(source) is not self.mapping_node:
                raise _Refused(node, "map merge requires map or sequence of maps as the value")
            out.update(self.build(source, depth))


_NONSPECIFIC = re.compile(r"(?:&[^\s,\[\]{}]+\s+)?!(?:\s|$)")


class _Refused(Exception):
    """A document Argo CD would refuse; carries the node for the line number."""

    def __init__(self, node: yaml.Node, problem: str) -> None:
        super().__init__(problem)
        self.node = node
        self.problem = problem


def _describe(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"malformed YAML: {where}{problem}"


def load_yaml_documents(text: str, source: str) -> Iterator[Any]:
    """Yield each document of a YAML stream as the plain data Argo CD would read from it.

    The values follow go-yaml v2 through sigs.k8s.io/yaml (see :mod:`kiln.core.goyaml`):
    string keys only, no NaN or infinity, integral floats as ints. Raise InputError naming
    ``source`` for malformed YAML, duplicate keys, keys or values Argo CD refuses, alias bombs
    and nesting deeper than :data:`MAX_DEPTH`.
    """
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
            try:
                yield _Builder(text).build(node)
            except _Refused as exc:
                line = exc.node.start_mark.line + 1
                raise InputError(f"line {line}: {exc.problem}", source=source) from None
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
    return normalise(load_yaml_documents(text, source), source, conform=False)


def normalise(documents: Iterable[Any], source: str, *, conform: bool = True
              ) -> list[dict[str, Any]]:
    """Drop empty documents, flatten ``*List`` kinds and JSON arrays, and validate each object.

    Every object must be a mapping with string ``apiVersion`` and ``kind``; the error names
    ``source`` and the document index. With ``conform`` (for data that did not come from
    :func:`load_yaml_documents`, e.g. a renderer's JSON), the documents are also brought to
    what Argo CD would hold (see :func:`conform_value`), or refused.
    """
    objects: list[dict[str, Any]] = []
    for index, doc in enumerate(documents):
        where = f"document {index}"
        if conform:
            try:
                doc = conform_value(doc)
            except goyaml.GoYamlError as exc:
                raise InputError(f"{where}: {exc}", source=source) from None
        _collect(doc, source, where, out=objects)
    return objects


def conform_value(value: Any, depth: int = 0) -> Any:
    """``value`` (JSON-like data) as Argo CD would hold it after reading it as YAML or JSON.

    Integral floats become ints, ints beyond int64 floats; GoYamlError for NaN, infinities,
    keys that are not strings, values that are not JSON, and nesting deeper than
    :data:`MAX_DEPTH`.
    """
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return goyaml.json_value(value)
    if depth >= MAX_DEPTH:
        raise goyaml.GoYamlError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise goyaml.GoYamlError(f"mapping key {key!r} is not a string")
            out[key] = conform_value(item, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [conform_value(item, depth + 1) for item in value]
    raise goyaml.GoYamlError(f"a {type(value).__name__} is not JSON data")


def _collect(doc: Any, source: str, where: str, *, out: list[dict[str, Any]]) -> None:
    if doc is None:
        return
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            if isinstance(item, list):
                raise InputError(f"{where}, item {i}: a list inside a list", source=source)
            _collect(item, source, f"{where}, item {i}", out=out)
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
            _collect(item, source, f"{where}, item {i}", out=out)
        return
    out.append(doc)


def dump_yaml_stream(objects: Iterable[dict[str, Any]]) -> str:
    """Emit objects as a YAML stream with ``---`` between documents, keys in their order.

    Every string go-yaml v2 would read as something else (``y``, ``1e3``, ``~``, ``<<``...) is
    quoted, so Argo CD reads the text back as exactly these objects.
    """
    import yaml

    try:
        text = yaml.dump_all(
            objects,
            Dumper=_yaml_classes()[1],
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
            explicit_start=False,
            width=1 << 30,
        )
    except RecursionError:  # only objects that bypassed normalise() can be this deep
        raise InputError(f"manifests nested deeper than {MAX_DEPTH} levels") from None
    return text.replace("\n...\n", "\n")


def dump_json(objects: list[dict[str, Any]]) -> str:
    """Emit objects as one indented JSON array."""
    return json.dumps(objects, indent=2, ensure_ascii=False) + "\n"


def object_ref(obj: dict[str, Any]) -> str:
    """Name an object as ``Kind/namespace/name`` (or ``Kind/name``) for messages."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = meta.get("name", "?") if meta else "?"
    ns = meta.get("namespace") if meta else None
    return f"{obj.get('kind', '?')}/{ns}/{name}" if ns else f"{obj.get('kind', '?')}/{name}"


def read_yaml_mapping(path: Path, root: Path, max_bytes: int = 4 << 20) -> dict[str, Any]:
    """The first YAML document of ``path`` if it is a mapping, else {}: the file confined to
    ``root`` and read capped at ``max_bytes``. Raises InputError like the other readers."""
    from kiln.core.paths import confine, read_bytes_capped

    data = read_bytes_capped(confine(path, root), max_bytes)
    for doc in load_yaml_documents(data.decode("utf-8", errors="replace"), str(path)):
        return doc if isinstance(doc, dict) else {}
    return {}
