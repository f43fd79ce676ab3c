"""Turn a Jsonnet program's output into a flat list of Kubernetes objects.

Argo CD accepts an object or an array; Tanka accepts any nesting of objects and arrays and
walks it until it reaches objects carrying both ``apiVersion`` and ``kind``. kiln does the
same walk, in a deterministic order: object fields in sorted key order (Jsonnet's own output
order), array items in their order. ``null``, empty objects and empty arrays are skipped; any
other value where an object was expected is an error naming its path in the output.

Tanka's inline environments are understood too: when the output holds an object of kind
``Environment`` in ``tanka.dev/*``, the objects are those of its ``data`` (one environment only;
several are an error naming them, as Tanka asks for ``--name``).
"""

from __future__ import annotations

from typing import Any

from kiln.core.errors import RenderError


def is_kubernetes_object(value: dict[str, Any]) -> bool:
    """True when ``value`` has string ``apiVersion`` and ``kind`` fields (Tanka's test)."""
    return isinstance(value.get("apiVersion"), str) and isinstance(value.get("kind"), str)


def is_tanka_environment(value: dict[str, Any]) -> bool:
    """True for a Tanka inline environment object."""
    return value.get("kind") == "Environment" and str(value.get("apiVersion")).startswith(
        "tanka.dev/")


def flatten(output: Any, source: str) -> list[dict[str, Any]]:
    """Return every Kubernetes object in ``output`` in walk order (those of the inline Tanka
    environment's ``data`` when there is one); raise RenderError naming ``source`` and the path
    of a value that is neither an object, an array nor null."""
    found = _walk(output, source)
    environments = [o for o in found if is_tanka_environment(o)]
    if not environments:
        return found
    if len(environments) > 1:
        names = ", ".join(sorted(str((e.get("metadata") or {}).get("name", "?"))
                                 for e in environments))
        raise RenderError(f"output holds {len(environments)} inline Tanka environments "
                          f"({names}); kiln renders one per app", source=source)
    return _walk(environments[0].get("data"), source)


def _walk(output: Any, source: str) -> list[dict[str, Any]]:
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
