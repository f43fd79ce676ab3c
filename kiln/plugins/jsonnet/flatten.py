"""Turn a Jsonnet program's output into a flat list of Kubernetes objects.

Argo CD accepts an object or an array; Tanka accepts any nesting of objects and arrays and
walks it until it reaches objects carrying both ``apiVersion`` and ``kind``. kiln does the
same walk, in a deterministic order: object fields in sorted key order (Jsonnet's own output
order), array items in their order. ``null``, empty objects and empty arrays are skipped; any
other value where an object was expected is an error naming its path in the output.
"""

from __future__ import annotations

from typing import Any

from kiln.core.errors import RenderError


def is_kubernetes_object(value: dict[str, Any]) -> bool:
    """True when ``value`` has string ``apiVersion`` and ``kind`` fields (Tanka's test)."""
    return isinstance(value.get("apiVersion"), str) and isinstance(value.get("kind"), str)


def flatten(output: Any, source: str) -> list[dict[str, Any]]:
    """Return every Kubernetes object in ``output`` in walk order; raise RenderError naming
    ``source`` and the path of a value that is neither an object, an array nor null."""
    found: list[dict[str, Any]] = []
    stack: list[tuple[str, Any]] = [("", output)]
    while stack:
        path, value = stack.pop()
        if value is None:
            continue
        if isinstance(value, dict):
            if is_kubernetes_object(value):
                found.append(value)
                continue
            children = [(f"{path}.{key}", value[key]) for key in sorted(value)]
        elif isinstance(value, list):
            children = [(f"{path}[{i}]", item) for i, item in enumerate(value)]
        else:
            where = path or "the top level"
            raise RenderError(
                f"output at {where} is a {_kind(value)}, not a Kubernetes object (an object "
                "with apiVersion and kind) or an object or array holding them",
                source=source,
            )
        stack.extend(reversed(children))
    return found


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__
