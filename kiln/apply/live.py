"""Live state beside desired state, for ``kiln diff``: one GET and one dry-run per object.

:func:`live_pairs` changes nothing on the cluster: the desired side is what the server answers
to a server-side apply with ``dryRun=All`` (defaults filled in, other managers' fields kept),
so a diff of the two shows exactly what ``kiln apply`` would change. Both sides are returned
as the server sent them (managed fields included): normalising and masking are the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kiln.apply.cluster import ClusterOptions


@dataclass(frozen=True)
class LivePair:
    """One object: ``ref`` is ``Kind/namespace/name`` (``Kind//name`` when cluster-scoped),
    ``live`` the object on the cluster (None when absent), ``desired`` the server-side
    dry-run result of applying it."""

    ref: str
    live: dict[str, Any] | None
    desired: dict[str, Any]


def live_pairs(objects: list[dict[str, Any]], *, cluster: ClusterOptions,
               field_manager: str = "kiln") -> list[LivePair]:
    """Pair every object with its live state and its server-side dry-run, in apply order.

    Objects without a namespace get the context's default namespace when their kind is
    namespaced. Raises ApplyError (one line, naming the object) when the cluster cannot be
    reached, a kind is unknown, or the dry-run is refused.
    """
    from kiln.apply.api import Api
    from kiln.apply.cluster import connect
    from kiln.apply.staging import apply_order, ref_of

    with connect(cluster) as conn:
        api = Api(conn, field_manager)
        pairs = []
        for obj in apply_order(objects):
            placed = place(api, obj, conn.namespace)
            ref = ref_of(placed)
            live = api.get(placed, ref)
            desired = api.apply(placed, ref, dry_run=True, force=True)
            pairs.append(LivePair(ref, live, desired))
        return pairs


def place(api: Any, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """``obj`` with the default ``namespace`` filled in when its kind is namespaced and it
    names none, and without a namespace when its kind is cluster-scoped (a copy when
    changed)."""
    from kiln.apply.staging import ref_of

    meta = obj.get("metadata") or {}
    namespaced = api.is_namespaced(str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""),
                                   ref_of(obj))
    if namespaced and not meta.get("namespace"):
        return {**obj, "metadata": {**meta, "namespace": namespace}}
    if not namespaced and "namespace" in meta:
        return {**obj, "metadata": {k: v for k, v in meta.items() if k != "namespace"}}
    return obj
