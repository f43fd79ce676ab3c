"""Masking: what a diff may show of a Secret, of the kinds the operator lists, and of errors.

A masked object (kind ``Secret``, and every kind in :attr:`MaskPolicy.kinds`) is shown per key
of ``data``, ``stringData`` and ``binaryData`` — a Secret's ``stringData`` keys as the ``data``
keys they become — each as ``added`` / ``removed`` / ``changed`` / ``unchanged``. A masked
value is replaced by a placeholder that depends on that state and on the side only
(:data:`UNCHANGED`, :data:`BEFORE`/:data:`AFTER`, :data:`ADDED`, :data:`REMOVED`): the same
text for every key whatever its value, so neither a value, nor its length, nor the equality of
two values in different keys or objects can be read from a diff. Every other field of a masked
object (``type``, ``metadata``, ``immutable``...) is shown as it is.

On every object, whatever its kind, the annotations that hold a copy of the object
(:data:`MASKED_ANNOTATIONS`) are masked the same way, and, with a redactor, so is every string
that holds a secret value kiln resolved in this run (a password inlined into a ConfigMap or an
env var), and every credential-shaped string (``scheme://user:password@host``...).

An operator may opt into fingerprints (:mod:`kiln.diff.fingerprint`): the placeholder then
ends with an HMAC of the value under the operator's key, which does reveal when two values are
equal — to whoever holds the output, by the operator's choice.

:func:`mask_object` masks one object on its own (a dry-run response, an object named in a
log line) and :func:`mask_error_text` / :func:`mask_api_error` mask an API server's error
text, which can echo values (``Invalid value: "…"``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from kiln.core.errors import UsageError
from kiln.diff.normalise import fold_string_data, is_secret

if TYPE_CHECKING:
    from kiln.core.redact import Redactor

KeyState = Literal["added", "removed", "changed", "unchanged"]

MASK = "<masked>"
"""An object masked on its own (no comparison): every masked value."""
UNCHANGED = "<masked, unchanged>"
BEFORE = "<masked, changed (before)>"
AFTER = "<masked, changed (after)>"
ADDED = "<masked, added>"
REMOVED = "<masked, removed>"

MASKED_FIELDS = ("data", "stringData", "binaryData")
"""The fields of a masked object shown per key."""
MASKED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",
                      "kapp.k14s.io/original")
"""Annotations holding a copy of the object (Secret values included): masked on every object."""
ENV_KINDS = "KILN_DIFF_MASK_KINDS"
"""The operator's list of extra kinds to mask, ``KIND[.group]`` separated by commas or spaces."""
MIN_VALUE_LENGTH = 3
"""Values shorter than this are not searched for in error text (see :func:`mask_error_text`)."""

_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}\Z")
_GROUP = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\Z")


@dataclass(frozen=True, order=True)
class GroupKind:
    """A kind and its API group (``""`` for the core group)."""

    kind: str
    group: str = ""

    @classmethod
    def parse(cls, text: str, source: str) -> GroupKind:
        """``KIND[.group]`` (``Secret``, ``SealedSecret.bitnami.com``): the kind up to the
        first dot, the group after it (case-insensitive). Raises UsageError naming ``source``
        for anything else."""
        kind, _, group = text.strip().partition(".")
        group = group.lower()
        if not _KIND.match(kind) or (group and not _GROUP.match(group)):
            raise UsageError(f"expects KIND[.group] (e.g. SealedSecret.bitnami.com), got "
                             f"{text!r}", source=source)
        return cls(kind, group)

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> GroupKind:
        """The group and kind of an object (from its ``apiVersion`` and ``kind``)."""
        api = obj.get("apiVersion")
        group = api.rpartition("/")[0].lower() if isinstance(api, str) else ""
        kind = obj.get("kind")
        return cls(kind if isinstance(kind, str) else "", group)

    def __str__(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


@dataclass(frozen=True)
class MaskPolicy:
    """What a diff masks.

    ``kinds``: kinds masked besides ``Secret`` (always masked). ``redactor``: the engine's
    redactor; a string it would change (a value resolved in this run, a credential shape) is
    masked wherever it sits. ``fingerprint``: the operator's opt-in HMAC
    (:class:`kiln.diff.fingerprint.Fingerprinter`), appended to each masked value's
    placeholder.
    """

    kinds: frozenset[GroupKind] = frozenset()
    redactor: Redactor | None = None
    fingerprint: Callable[[bytes], str] | None = field(default=None, repr=False)

    def masks(self, obj: Mapping[str, Any] | None) -> bool:
        """True when ``obj`` is shown per key (a Secret, or a kind the operator listed)."""
        if obj is None:
            return False
        return is_secret(obj) or GroupKind.of(obj) in self.kinds

    def holds_secret(self, text: str) -> bool:
        """True when ``text`` holds a value the redactor knows or a credential shape."""
        return self.redactor is not None and self.redactor.redact(text) != text


def mask_kinds(flags: Iterable[str], env: Mapping[str, str]) -> frozenset[GroupKind]:
    """The operator's extra masked kinds: every ``--mask-kind`` flag and every entry of
    ``KILN_DIFF_MASK_KINDS``. Raises UsageError naming the flag or variable on a bad entry."""
    kinds = {GroupKind.parse(text, "--mask-kind") for text in flags}
    for text in re.split(r"[,\s]+", env.get(ENV_KINDS, "")):
        if text:
            kinds.add(GroupKind.parse(text, ENV_KINDS))
    return frozenset(kinds)


# -- values -------------------------------------------------------------------------------------

def _value_bytes(name: str, value: Any, *, secret: bool) -> tuple[str, bytes]:
    """(how, bytes): what a masked value is compared (and fingerprinted) by. A Secret's
    ``data`` and any ``binaryData`` value by its base64-decoded bytes (its text when it is not
    base64), a string by its UTF-8, anything else by its canonical JSON."""
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
        if name == "binaryData" or (secret and name == "data"):
            try:
                return "bytes", base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return "text", raw
        return "bytes", raw
    return "json", json.dumps(value, sort_keys=True, separators=(",", ":"),
                              default=str).encode()


def _label(name: str, key: str | None) -> str:
    """How a masked value is named in ``keys``: a ``data`` key by itself, another field's key
    as ``field/key`` (``/`` is not allowed in a key), a field that is not a mapping as
    ``(field)``."""
    if key is None:
        return f"({name})"
    return key if name == "data" else f"{name}/{key}"


def _entries(obj: Mapping[str, Any] | None) -> dict[tuple[str, str | None], Any]:
    """Every masked value of ``obj``: (field, key or None for a whole field) -> value."""
    out: dict[tuple[str, str | None], Any] = {}
    if obj is None:
        return out
    for name in MASKED_FIELDS:
        if name not in obj or obj[name] is None:
            continue
        value = obj[name]
        if isinstance(value, Mapping):
            for key, item in value.items():
                out[(name, str(key))] = item
        else:
            out[(name, None)] = value
    return out


def _state(before: Any, after: Any, missing: object) -> KeyState:
    if before is missing:
        return "added"
    if after is missing:
        return "removed"
    return "unchanged" if before == after else "changed"


_PLACEHOLDERS: dict[KeyState, tuple[str | None, str | None]] = {
    "unchanged": (UNCHANGED, UNCHANGED),
    "changed": (BEFORE, AFTER),
    "added": (None, ADDED),
    "removed": (REMOVED, None),
}


def _with_fingerprint(text: str, fingerprint: str | None) -> str:
    return f"{text} {fingerprint}" if fingerprint else text


# -- pairs --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MaskedPair:
    """Two versions of one object with every masked value replaced by its placeholder.

    ``keys`` (masked kinds only): each masked key's state; ``fingerprints`` (only with a
    fingerprint): each masked key's ``{"before": ..., "after": ...}`` HMACs, a side absent
    when the key is.
    """

    before: dict[str, Any] | None
    after: dict[str, Any] | None
    keys: dict[str, KeyState] | None = None
    fingerprints: dict[str, dict[str, str]] | None = None


_MISSING = object()


def mask_pair(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
              policy: MaskPolicy) -> MaskedPair:
    """Mask two versions of one object (either may be None: created or deleted) for a diff.

    Promises: no masked value appears in the result, neither raw nor encoded, and the result
    depends on masked values only through each key's state (and, when the operator opted in,
    its fingerprint). The inputs are not modified.
    """
    b = copy.deepcopy(dict(before)) if before is not None else None
    a = copy.deepcopy(dict(after)) if after is not None else None
    keys: dict[str, KeyState] | None = None
    prints: dict[str, dict[str, str]] | None = None
    if policy.masks(b) or policy.masks(a):
        for obj in (b, a):
            if obj is not None:
                fold_string_data(obj)
        secret = is_secret(b or a or {})
        keys, prints = _mask_fields(b, a, policy, secret=secret)
    _mask_annotations(b, a)
    if policy.redactor is not None:
        b, a = _mask_strings(b, a, policy)
    return MaskedPair(b, a, keys, prints)


def unchanged_keys(obj: Mapping[str, Any], policy: MaskPolicy
                   ) -> tuple[dict[str, KeyState] | None, dict[str, dict[str, str]] | None]:
    """The ``keys`` and ``fingerprints`` :func:`mask_pair` gives for ``obj`` against itself
    (every key unchanged), without copying or masking the object: the fast path for the many
    objects of a diff that did not change."""
    if not policy.masks(obj):
        return None, None
    view = dict(obj)
    if is_secret(view) and isinstance(view.get("stringData"), Mapping):
        data = view.get("data")
        view["data"] = dict(data) if isinstance(data, Mapping) else data
        fold_string_data(view)
    entries = _entries(view)
    order = sorted(entries, key=lambda w: (w[0], w[1] or ""))
    keys: dict[str, KeyState] = {_label(n, k): "unchanged" for n, k in order}
    if policy.fingerprint is None:
        return keys, None
    secret = is_secret(view)
    prints = {}
    for where in order:
        fp = policy.fingerprint(_value_bytes(where[0], entries[where], secret=secret)[1])
        prints[_label(*where)] = {"before": fp, "after": fp}
    return keys, prints


def _mask_fields(b: dict[str, Any] | None, a: dict[str, Any] | None, policy: MaskPolicy, *,
                 secret: bool) -> tuple[dict[str, KeyState], dict[str, dict[str, str]] | None]:
    before, after = _entries(b), _entries(a)
    keys: dict[str, KeyState] = {}
    prints: dict[str, dict[str, str]] | None = {} if policy.fingerprint else None
    for where in sorted({*before, *after}, key=lambda w: (w[0], w[1] or "")):
        name, key = where
        vb, va = before.get(where, _MISSING), after.get(where, _MISSING)
        cb = _value_bytes(name, vb, secret=secret) if vb is not _MISSING else None
        ca = _value_bytes(name, va, secret=secret) if va is not _MISSING else None
        state = _state(cb if cb is not None else _MISSING, ca if ca is not None else _MISSING,
                       _MISSING)
        label = _label(name, key)
        keys[label] = state
        fb = fa = None
        if prints is not None and policy.fingerprint is not None:
            sides: dict[str, str] = {}
            if cb is not None:
                sides["before"] = fb = policy.fingerprint(cb[1])
            if ca is not None:
                sides["after"] = fa = policy.fingerprint(ca[1])
            prints[label] = sides
        text_b, text_a = _PLACEHOLDERS[state]
        for obj, text, fp in ((b, text_b, fb), (a, text_a, fa)):
            if obj is None or text is None:
                continue
            if key is None:
                obj[name] = _with_fingerprint(text, fp)
            else:
                obj[name][key] = _with_fingerprint(text, fp)
    return keys, prints


def _annotations(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    meta = obj.get("metadata") if obj is not None else None
    notes = meta.get("annotations") if isinstance(meta, dict) else None
    return notes if isinstance(notes, dict) else None


def _mask_annotations(b: dict[str, Any] | None, a: dict[str, Any] | None) -> None:
    nb, na = _annotations(b), _annotations(a)
    for name in MASKED_ANNOTATIONS:
        vb = nb.get(name, _MISSING) if nb is not None else _MISSING
        va = na.get(name, _MISSING) if na is not None else _MISSING
        if vb is _MISSING and va is _MISSING:
            continue
        text_b, text_a = _PLACEHOLDERS[_state(vb, va, _MISSING)]
        if nb is not None and text_b is not None:
            nb[name] = text_b
        if na is not None and text_a is not None:
            na[name] = text_a


def _holds(value: Any, policy: MaskPolicy) -> bool:
    if isinstance(value, str):
        return policy.holds_secret(value)
    if isinstance(value, Mapping):
        return any(_holds(k, policy) or _holds(v, policy) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds(v, policy) for v in value)
    return False


def _mask_strings(b: Any, a: Any, policy: MaskPolicy) -> tuple[Any, Any]:
    """Replace, on both sides, every leaf where either side holds a secret string (a leaf of a
    subtree present on one side only by :data:`ADDED` or :data:`REMOVED`).

    The redactor first looks at all the strings of both sides at once, joined by NUL (no
    masking rule's boundaries or classes span a NUL, so whatever one string would match, the
    joined text matches too): most objects hold no secret, and are not walked at all."""
    if not policy.holds_secret("\0".join(_strings(b, []) + _strings(a, []))):
        return b, a
    nb, na = _walk(b if b is not None else _MISSING, a if a is not None else _MISSING, policy)
    return (None if nb is _MISSING else nb), (None if na is _MISSING else na)


def _strings(value: Any, out: list[str]) -> list[str]:
    """Every string value (not key) in ``value``, appended to ``out``."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            _strings(item, out)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out)
    return out


def _walk(b: Any, a: Any, policy: MaskPolicy) -> tuple[Any, Any]:
    if isinstance(b, dict) and isinstance(a, dict):
        out_b: dict[str, Any] = {}
        out_a: dict[str, Any] = {}
        for key in [*b, *(k for k in a if k not in b)]:
            nb, na = _walk(b.get(key, _MISSING), a.get(key, _MISSING), policy)
            if nb is not _MISSING:
                out_b[key] = nb
            if na is not _MISSING:
                out_a[key] = na
        return out_b, out_a
    if isinstance(b, list) and isinstance(a, list):
        pairs = [_walk(b[i] if i < len(b) else _MISSING, a[i] if i < len(a) else _MISSING,
                       policy) for i in range(max(len(b), len(a)))]
        return ([x for x, _ in pairs if x is not _MISSING],
                [y for _, y in pairs if y is not _MISSING])
    if a is _MISSING and isinstance(b, dict | list):
        return _one_side(b, REMOVED, policy), _MISSING
    if b is _MISSING and isinstance(a, dict | list):
        return _MISSING, _one_side(a, ADDED, policy)
    if (b is not _MISSING and _holds(b, policy)) or (a is not _MISSING and _holds(a, policy)):
        text_b, text_a = _PLACEHOLDERS[_state(b, a, _MISSING)]
        return (text_b if text_b is not None else _MISSING,
                text_a if text_a is not None else _MISSING)
    return b, a


def _one_side(value: Any, placeholder: str, policy: MaskPolicy) -> Any:
    """``value`` with every string that holds a secret replaced by ``placeholder``."""
    if isinstance(value, dict):
        return {k: _one_side(v, placeholder, policy) for k, v in value.items()}
    if isinstance(value, list):
        return [_one_side(v, placeholder, policy) for v in value]
    if isinstance(value, str) and policy.holds_secret(value):
        return placeholder
    return value


# -- single objects -----------------------------------------------------------------------------

def mask_object(obj: Mapping[str, Any], policy: MaskPolicy) -> dict[str, Any]:
    """A copy of one object (a dry-run response, an object named in a message) with every
    masked value — masked kinds' ``data``/``stringData``/``binaryData`` values, the
    :data:`MASKED_ANNOTATIONS`, strings the redactor would change — replaced by :data:`MASK`
    (with the fingerprint when the operator opted in). Key names stay."""
    out = copy.deepcopy(dict(obj))
    if policy.masks(out):
        secret = is_secret(out)
        for (name, key), value in _entries(out).items():
            fp = policy.fingerprint(_value_bytes(name, value, secret=secret)[1]) \
                if policy.fingerprint else None
            if key is None:
                out[name] = _with_fingerprint(MASK, fp)
            else:
                out[name][key] = _with_fingerprint(MASK, fp)
    notes = _annotations(out)
    if notes is not None:
        for name in MASKED_ANNOTATIONS:
            if name in notes:
                notes[name] = MASK
    if policy.redactor is not None:
        out = {k: _one_side(v, MASK, policy) for k, v in out.items()}
    return out


# -- error text ---------------------------------------------------------------------------------

_ECHOES = ("Invalid value: ", "Unsupported value: ", "Duplicate value: ", "Not found: ")
"""How Kubernetes field errors introduce the value they reject (``field.Error``)."""
MAX_ERROR_CHARS = 2000


def _go_quoted_end(text: str, start: int) -> int:
    """The index after the Go-quoted string starting at ``text[start] == '"'``."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i + 1
        i += 1
    return len(text)


def _value_end(text: str, start: int) -> int:
    """The end of a Go ``%#v`` value: up to the next ``": "``, ``", "`` or end of line outside
    brackets and quotes."""
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == '"':
            i = _go_quoted_end(text, i)
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0 and (ch == "\n" or text.startswith((": ", ", "), i)):
            return i
        i += 1
    return len(text)


def _mask_echoes(text: str) -> str:
    out: list[str] = []
    i = 0
    while True:
        hits = [(text.find(e, i), e) for e in _ECHOES]
        hits = [(at, e) for at, e in hits if at >= 0]
        if not hits:
            out.append(text[i:])
            return "".join(out)
        at, echo = min(hits)
        start = at + len(echo)
        out.append(text[i:start])
        if text.startswith('"', start):
            end = _go_quoted_end(text, start)
            out.append(f'"{MASK}"')
        else:
            end = _value_end(text, start)
            out.append(MASK if end > start else "")
        i = end


def _forms(value: Any) -> set[str]:
    """A masked value as it may appear in text: as written, decoded from base64, re-encoded."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        for item in value.values():
            found |= _forms(item)
        return found
    if isinstance(value, list):
        for item in value:
            found |= _forms(item)
        return found
    if not isinstance(value, str):
        return {json.dumps(value, default=str)} if value is not None else set()
    raws = [value.encode("utf-8", "surrogatepass")]
    with contextlib.suppress(binascii.Error, ValueError):
        raws.append(base64.b64decode(value, validate=True))
    found.add(value)
    for raw in raws:
        found.add(raw.decode("utf-8", "replace"))
        for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            found |= {enc.decode(), enc.decode().rstrip("=")}
    return found


def masked_values(objects: Iterable[Mapping[str, Any]], policy: MaskPolicy) -> set[str]:
    """Every text form of every masked value of ``objects`` (masked kinds' ``data``,
    ``stringData`` and ``binaryData`` values, and the :data:`MASKED_ANNOTATIONS` of every
    object): what :func:`mask_error_text` searches for."""
    found: set[str] = set()
    for obj in objects:
        if policy.masks(obj):
            for value in _entries(obj).values():
                found |= _forms(value)
        notes = _annotations(dict(obj))
        if notes is not None:
            for name in MASKED_ANNOTATIONS:
                if isinstance(notes.get(name), str):
                    found.add(notes[name])
    return {f for f in found if len(f) >= MIN_VALUE_LENGTH}


def mask_error_text(text: str, *, objects: Iterable[Mapping[str, Any]] = (),
                    policy: MaskPolicy | None = None) -> str:
    """An API server's (or a tool's) error text made safe to print, on one line.

    Promises: the value a Kubernetes field error echoes (``Invalid value: "…"``, ``map[…]``,
    ``Unsupported value:``, ``Duplicate value:``) is replaced by :data:`MASK`; so is every form
    (raw, base64-decoded, base64) of every masked value of ``objects`` (the objects the request
    was about) of at least :data:`MIN_VALUE_LENGTH` characters; then the policy's redactor
    (values resolved in this run, credential shapes) runs, else credential shapes alone are
    masked. Whitespace runs become one space; the result is cut at :data:`MAX_ERROR_CHARS`.
    """
    from kiln.core.redact import mask_credentials

    policy = policy or MaskPolicy()
    text = _mask_echoes(text)
    for value in sorted(masked_values(objects, policy), key=len, reverse=True):
        text = text.replace(value, MASK)
    text = policy.redactor.redact(text) if policy.redactor is not None else \
        mask_credentials(text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + " …"


def mask_api_error(body: bytes | str | Mapping[str, Any], *,
                   objects: Iterable[Mapping[str, Any]] = (),
                   policy: MaskPolicy | None = None) -> str:
    """The one-line text of an API error response (a ``Status`` object, its JSON, or plain
    text), masked by :func:`mask_error_text`: ``<reason> (<code>): <message>`` for a Status.
    Nothing of the body but the status, reason, code and message is kept."""
    status: Any = body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            status = json.loads(body)
        except ValueError:
            status = None
    if isinstance(status, Mapping):
        message = status.get("message")
        reason = status.get("reason")
        code = status.get("code")
        head = " ".join(str(p) for p in (reason, f"({code})" if code is not None else None)
                        if p)
        text = f"{head}: {message}" if head and message else str(message or head or "")
    else:
        text = body if isinstance(body, str) else ""
    return mask_error_text(text, objects=objects, policy=policy)
