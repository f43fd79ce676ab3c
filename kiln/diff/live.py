"""``kiln diff PATH`` against a cluster: live state beside the server-side dry-run result.

The apply step's :func:`kiln.apply.live.live_pairs` reads each object and dry-runs its apply
(nothing changes on the cluster); both sides are normalised (:mod:`kiln.diff.normalise`), the
defaults the server filled in are set aside by comparing the dry-run result with the rendered
object, and each pair is diffed with masking. An error the apply step raises is re-raised with
its text masked (:func:`kiln.diff.mask.mask_error_text`): an API server's message may echo a
value of the objects sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kiln.core.errors import KilnError
from kiln.diff.mask import MaskPolicy, mask_error_text
from kiln.diff.normalise import drop_server_defaults, normalise
from kiln.diff.objects import (
    DEFAULT_CONTEXT,
    DEFAULT_LABELS,
    DiffResult,
    Identity,
    diff_pair,
    identity,
    index,
    ref_of,
)

if TYPE_CHECKING:
    from kiln.apply.cluster import ClusterOptions


class MaskedError(KilnError):
    """An error of the apply step, its message, source and details masked."""

    def __init__(self, message: str, *, source: str | None, details: list[str],
                 exit_code: int) -> None:
        super().__init__(message, source=source)
        self._details = details
        self.exit_code = exit_code

    def details(self) -> list[str]:
        """The original's detail lines, masked."""
        return self._details


def _rendered_for(desired: Mapping[str, Any], rendered: Mapping[Identity, Mapping[str, Any]]
                  ) -> Mapping[str, Any] | None:
    """The rendered object a dry-run result answers (the apply step may have filled in the
    default namespace, or dropped the namespace of a cluster-scoped kind)."""
    group, kind, namespace, name = identity(desired)
    for key in ((group, kind, namespace, name), (group, kind, "", name)):
        if key in rendered:
            return rendered[key]
    for key, obj in rendered.items():
        if key[0] == group and key[1] == kind and key[3] == name:
            return obj
    return None


def diff_live(objects: list[dict[str, Any]], *, cluster: ClusterOptions,
              policy: MaskPolicy, field_manager: str = "kiln",
              labels: tuple[str, str] = DEFAULT_LABELS,
              context: int = DEFAULT_CONTEXT) -> DiffResult:
    """Diff rendered (resolved) ``objects`` against the cluster: for each, its live state
    against the server-side dry-run of applying it, normalised and masked by ``policy``.

    Changes nothing on the cluster. Raises the apply step's ``KilnError`` (an ``ApplyError``
    naming the object) with its text masked.
    """
    from kiln.apply.live import live_pairs

    rendered = index(objects, "render")
    try:
        pairs = live_pairs(objects, cluster=cluster, field_manager=field_manager)
    except KilnError as exc:
        def mask(text: str) -> str:
            return mask_error_text(text, objects=objects, policy=policy)

        # Raised anew, from None: the original's text (and its cause's) is not printed even
        # in a --debug traceback.
        raise MaskedError(mask(exc.message), source=mask(exc.source) if exc.source else None,
                          details=[mask(d) for d in exc.details()],
                          exit_code=exc.exit_code) from None
    items = []
    for pair in pairs:
        desired = normalise(pair.desired)
        live = normalise(pair.live) if pair.live is not None else None
        source = _rendered_for(desired, rendered)
        live, desired = drop_server_defaults(live, desired,
                                             normalise(source) if source is not None else None)
        items.append(diff_pair(ref_of(desired), live, desired, policy=policy, labels=labels,
                               context=context))
    items.sort(key=lambda d: d.ref)
    return DiffResult(tuple(items))
