"""Object-level diffs: two sets of objects paired by identity, each pair masked and diffed.

Objects are paired by (API group, kind, namespace, name) — the version of ``apiVersion`` may
differ — and each pair is ``added``, ``removed``, ``changed`` or ``unchanged``. A changed,
added or removed object carries a unified diff of the YAML of its two masked versions (keys
sorted, so field order never makes a difference), with ``--- <before label>/<ref>`` and ``+++
<after label>/<ref>`` headers like ``kubectl diff``. Only masked objects
(:mod:`kiln.diff.mask`) are ever turned into text here.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kiln.core.errors import InputError
from kiln.diff.mask import KeyState, MaskPolicy, mask_pair, unchanged_keys
from kiln.diff.normalise import normalise

ObjectState = Literal["added", "removed", "changed", "unchanged"]
OBJECT_STATES: tuple[ObjectState, ...] = ("added", "removed", "changed", "unchanged")
DEFAULT_CONTEXT = 3
DEFAULT_LABELS = ("live", "desired")
Identity = tuple[str, str, str, str]


@dataclass(frozen=True)
class ObjectDiff:
    """One object's difference: its ref (``Kind/namespace/name``), state, unified diff of the
    masked YAML (``""`` when unchanged), and for a masked kind each key's state (``keys``)
    and, when the operator asked, each key's fingerprints."""

    ref: str
    state: ObjectState
    diff: str = ""
    keys: Mapping[str, KeyState] | None = None
    fingerprints: Mapping[str, Mapping[str, str]] | None = None


@dataclass(frozen=True)
class DiffResult:
    """Every object's difference, in a stable order (by ref)."""

    objects: tuple[ObjectDiff, ...] = ()

    @property
    def changed(self) -> bool:
        """True when any object was added, removed or changed."""
        return any(o.state != "unchanged" for o in self.objects)

    def counts(self) -> dict[str, int]:
        """How many objects are in each state (every state present, zeros included)."""
        counts: dict[str, int] = dict.fromkeys(OBJECT_STATES, 0)
        for item in self.objects:
            counts[item.state] += 1
        return counts


def identity(obj: Mapping[str, Any]) -> Identity:
    """(group, kind, namespace, name): what pairs two versions of one object."""
    api = obj.get("apiVersion")
    group = api.rpartition("/")[0].lower() if isinstance(api, str) else ""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        meta = {}
    return (group, str(obj.get("kind") or ""), str(meta.get("namespace") or ""),
            str(meta.get("name") or ""))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters (newlines, terminal escapes) written as ``\\xNN``:
    names come from the repository, and must not forge diff lines or drive a terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def ref_of(obj: Mapping[str, Any]) -> str:
    """``Kind/namespace/name``, or ``Kind/name`` for an object with no namespace (control
    characters escaped, see :func:`printable`)."""
    _, kind, namespace, name = identity(obj)
    ref = f"{kind or '?'}/{namespace}/{name or '?'}" if namespace else \
        f"{kind or '?'}/{name or '?'}"
    return printable(ref)


@functools.cache
def _dumper() -> type[Any]:
    """A safe YAML dumper (libyaml's when built) writing multi-line strings as ``|`` blocks."""
    import yaml

    base: type[Any] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class Dumper(base):  # type: ignore[misc]
        pass

    def text(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return Dumper


def _yaml_lines(obj: Mapping[str, Any] | None) -> list[str]:
    if obj is None:
        return []
    import yaml

    out = yaml.dump(dict(obj), Dumper=_dumper(), sort_keys=True, default_flow_style=False,
                    allow_unicode=True, width=1 << 30)
    return out.splitlines()


def diff_pair(ref: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
              *, policy: MaskPolicy, labels: tuple[str, str] = DEFAULT_LABELS,
              context: int = DEFAULT_CONTEXT) -> ObjectDiff:
    """The difference between two versions of one object (either None: created, deleted),
    compared as given (normalise them first) and masked by ``policy`` before any text is
    made. ``labels`` name the two sides in the diff headers."""
    if before is None and after is None:
        raise ValueError("diff_pair needs at least one object")
    if before is not None and before == after:
        keys, prints = unchanged_keys(before, policy)
        return ObjectDiff(ref, "unchanged", "", keys, prints)
    masked = mask_pair(before, after, policy)
    if before is None:
        state: ObjectState = "added"
    elif after is None:
        state = "removed"
    else:
        state = "unchanged" if masked.before == masked.after else "changed"
    text = ""
    if state != "unchanged":
        lines = difflib.unified_diff(_yaml_lines(masked.before), _yaml_lines(masked.after),
                                     fromfile=printable(f"{labels[0]}/{ref}"),
                                     tofile=printable(f"{labels[1]}/{ref}"),
                                     n=max(0, context), lineterm="")
        text = "".join(f"{line}\n" for line in lines)
    return ObjectDiff(ref, state, text, masked.keys, masked.fingerprints)


def index(objects: Iterable[Mapping[str, Any]], side: str) -> dict[Identity, Mapping[str, Any]]:
    """The objects of one side by identity. Raises InputError naming the object when two
    share one (the cluster can hold only one of them)."""
    found: dict[Identity, Mapping[str, Any]] = {}
    for obj in objects:
        key = identity(obj)
        if key in found:
            raise InputError(f"two objects named {ref_of(obj)} (group {key[0] or 'core'!r})",
                             source=side)
        found[key] = obj
    return found


def diff_objects(before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]], *,
                 policy: MaskPolicy, labels: tuple[str, str] = DEFAULT_LABELS,
                 context: int = DEFAULT_CONTEXT) -> DiffResult:
    """Pair ``before`` and ``after`` by identity, normalise each object
    (:func:`kiln.diff.normalise.normalise`) and diff every pair, masked by ``policy``.
    Raises InputError when one side holds two objects of the same identity."""
    old = index(before, labels[0])
    new = index(after, labels[1])
    items = []
    for key in sorted({*old, *new}, key=lambda k: (k[1], k[2], k[3], k[0])):
        b, a = old.get(key), new.get(key)
        items.append(diff_pair(ref_of(a if a is not None else b or {}),
                               normalise(b) if b is not None else None,
                               normalise(a) if a is not None else None,
                               policy=policy, labels=labels, context=context))
    return DiffResult(tuple(items))
