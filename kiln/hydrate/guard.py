"""No secret value reaches a hydrated tree: the check every app's objects pass before writing.

Hydration renders with ``secrets=False``: no resolver runs and no file is decrypted, so Vault
and cloud references stay as written and SOPS documents stay ciphertext (kustomize generator
files too: the renderer only decrypts them when secrets are resolved). That alone would be a
promise; this module makes it a check. An app's objects are refused when

* the render says secrets were resolved (``RenderResult.secrets_resolved``), or
* any value the run's redactor knows — every value a resolver produced or a file decryption
  yielded, in this process, with its base64 forms — appears in the serialised objects.

The error names the app and the object (``Kind/namespace/name``), never the value, and the
caller writes nothing for that app and commits nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from kiln.core.errors import KilnError

if TYPE_CHECKING:
    from kiln.core.redact import Redactor


class SecretInOutput(KilnError):
    """A resolved secret value would have been written into the hydrated tree."""


def _strings(node: Any) -> Iterator[str]:
    """Every string in ``node``: mapping keys and values, list items, at any depth."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check_objects(app: str, objects: Sequence[dict[str, Any]], *, redactor: Redactor | None,
                  resolved: bool) -> None:
    """Raise SecretInOutput naming ``app`` (and the first object holding one) when a resolved
    secret value is among ``objects`` (in any key or value, raw or base64, a multi-line value
    included), or ``resolved`` says the render filled secrets in."""
    from kiln.core.manifests import object_ref

    if resolved:
        raise SecretInOutput("secrets were resolved in this render: hydrate writes references "
                             "and ciphertext only", source=app)
    if redactor is None or not redactor:
        return
    for obj in objects:
        if any(redactor.holds(text) for text in _strings(obj)):
            raise SecretInOutput(f"{object_ref(obj)} holds a resolved secret value: refusing "
                                 "to write it into the hydrated tree", source=app)


def check_bytes(app: str, name: str, data: bytes, *, redactor: Redactor | None) -> None:
    """Raise SecretInOutput naming ``app`` and the file ``name`` when ``data`` (a file about to
    be written) holds a value registered with ``redactor``."""
    if redactor is None or not redactor:
        return
    if redactor.holds(data.decode("utf-8", "replace")):
        raise SecretInOutput(f"{name} would hold a resolved secret value: refusing to write it",
                             source=app)
