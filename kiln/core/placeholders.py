"""argocd-vault-plugin's grammar: placeholders, annotations, modifiers and substitution.

Which references a resolver owns is a :class:`Grammar` (AVP placeholders when ``AVP_TYPE``
names it, ``ref+SCHEME://`` URIs for its schemes); the rest follows AVP's rules:

* :func:`scan` finds every reference in a stream (``<path:…>`` inline placeholders, generic
  ``<key>`` placeholders of objects carrying ``avp.kubernetes.io/path``, base64 Secret data
  holding a template) and returns the de-duplicated reads it needs;
* :func:`substitute` applies AVP's substitution rules with the values read (modifiers in
  :mod:`kiln.core.secret_modifiers`), honouring ``avp.kubernetes.io/ignore``,
  ``remove-missing`` and ``secret-version``;
* :func:`resolve_stream` ties :func:`scan`, :func:`kiln.core.secrets.fetch_all` and
  :func:`substitute` together and raises one :class:`SecretErrors` listing every failed
  reference (object, field path, reference — never a value or the surrounding text);
* :func:`unresolved` lists placeholder-looking text left outside resolver output.

The pipeline it runs on (batched reads, deadlines, final marks) is :mod:`kiln.core.secrets`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from kiln.core.errors import (
    SecretBackendUnavailable,
    SecretError,
    SecretErrors,
    SecretNotFound,
)
from kiln.core.manifests import object_ref
from kiln.core.secret_modifiers import MODIFIERS, ModifierError, apply_modifier
from kiln.core.secret_modifiers import Modifier as Modifier  # part of a Reference
from kiln.core.secrets import (
    Backend,
    FetchPolicy,
    ReadKey,
    Resolved,
    Span,
    fetch_all,
    final,
    final_spans,
    free_matches,
    mark,
    register_leaves,
)

if TYPE_CHECKING:
    from kiln.core.redact import Redactor

log = logging.getLogger("kiln.secrets")

AVP_PREFIX = "avp.kubernetes.io/"
AVP_PATH = "avp.kubernetes.io/path"
AVP_IGNORE = "avp.kubernetes.io/ignore"
AVP_KV_VERSION = "avp.kubernetes.io/kv-version"
AVP_SECRET_VERSION = "avp.kubernetes.io/secret-version"
AVP_REMOVE_MISSING = "avp.kubernetes.io/remove-missing"

# argocd-vault-plugin's two regular expressions, translated from Go's (?mU) (ungreedy) form.
# Generic: any <...> on one line; only used when the object carries the path annotation.
GENERIC_RE = re.compile(r"<(.*?)>")
# Inline: <path:PATH#KEY[#VERSION]>, anywhere, annotation or not.
INLINE_RE = re.compile(r"<path:([^#]+?)#([^#]+?)(?:#([^#]+?))??>")
# vals-style URIs: ref+SCHEME://PATH[?QUERY][#FRAGMENT][+]
URI_RE = re.compile(
    r"ref\+(?P<scheme>[a-z][a-z0-9]*)://(?P<path>[^\s#?+\"'<>]+)"
    r"(?:\?(?P<query>[^\s#+\"'<>]*))?(?:#(?P<frag>[^\s+\"'<>]*))?\+?"
)


# -- data model ---------------------------------------------------------------------------------


class Reference(msgspec.Struct, frozen=True):
    """A parsed reference: where to read (``read``), which ``key``, then which ``modifiers``.

    ``text`` is the reference as written (``<path:kv/data/a#k>``, ``<user>``,
    ``ref+vault://kv/a#k``); it is what error messages show. ``pointer`` means ``key`` is a
    vals-style ``/a/b`` path into nested values. ``error`` is set when the reference itself is
    malformed or refused (bad modifier, path outside ``AVP_PATH_VALIDATION``).
    """

    text: str
    read: ReadKey | None
    key: str
    modifiers: tuple[Modifier, ...] = ()
    pointer: bool = False
    error: str | None = None


def _plain_read_key(path: str, version: str | None, annotations: Mapping[str, str]) -> ReadKey:
    return ReadKey(path, version or None)


def _plain_uri_read(path: str, query: Mapping[str, str]) -> ReadKey:
    return ReadKey(path, query.get("version") or None)


class Grammar(msgspec.Struct, frozen=True, kw_only=True):
    """Which references one resolver owns.

    ``avp``: argocd-vault-plugin placeholders (generic and inline) are this resolver's.
    ``schemes``: ``ref+SCHEME://`` URIs it resolves. ``path_validation``: AVP_PATH_VALIDATION,
    a regex every path must match (searched, as Go's MatchString does). ``read_key`` turns a
    parsed path/version plus the object's annotations into the backend's :class:`ReadKey`
    (Vault adds the KV version); ``uri_read`` does the same for a URI's path and query.
    ``whole_key``: when set, a URI without ``#KEY`` is allowed and reads this key of the
    backend's mapping (vals' "whole secret" form; the backend stores the raw value there).
    """

    avp: bool = False
    schemes: frozenset[str] = frozenset()
    path_validation: re.Pattern[str] | None = None
    read_key: Callable[[str, str | None, Mapping[str, str]], ReadKey] = _plain_read_key
    uri_read: Callable[[str, Mapping[str, str]], ReadKey] = _plain_uri_read
    whole_key: str = ""


# -- parsing ------------------------------------------------------------------------------------


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """Return the object's annotations (string values only; {} when absent)."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return {}
    ann = meta.get("annotations")
    if not isinstance(ann, Mapping):
        return {}
    return {str(k): v for k, v in ann.items() if isinstance(v, str)}


def parse_bool(text: str | None) -> bool:
    """Go's ``strconv.ParseBool`` for annotation values: anything unrecognised is false."""
    from kiln.core.errors import ConfigError
    from kiln.core.trust import parse_bool as strict

    try:
        return text is not None and strict(text, name="annotation")
    except ConfigError:
        return False


def _parse_modifiers(fields: Sequence[str]) -> tuple[tuple[Modifier, ...], str | None]:
    if not fields:
        return (), None
    mods: list[Modifier] = []
    for stmt in fields:
        words = stmt.split()
        if not words:
            return (), "empty modifier"
        if words[0] not in MODIFIERS:
            return (), f"invalid modifier {words[0]!r}"
        mods.append(Modifier(words[0], tuple(words[1:])))
    return tuple(mods), None


def _check_path(path: str, grammar: Grammar) -> str | None:
    if not path.strip():
        return "empty path"
    if ".." in path.split("/"):
        return f"path {path!r} has a '..' segment"
    if grammar.path_validation is not None and not grammar.path_validation.search(path):
        return f"path {path!r} is disallowed by AVP_PATH_VALIDATION"
    return None


def parse_placeholder(match_text: str, annotations: Mapping[str, str],
                      grammar: Grammar) -> Reference:
    """Parse one AVP placeholder (``<...>`` as matched) the way argocd-vault-plugin does.

    The pipeline is split on ``|``; a first field starting ``path:`` is inline
    (``path:PATH#KEY[#VERSION]``), anything else is a key of the annotated path.
    """
    inner = match_text.strip("<>")
    fields = inner.split("|")
    head = fields[0].strip()
    mods, error = _parse_modifiers(fields[1:])
    if head.startswith("path:"):
        parts = head[len("path:"):].split("#", 2)
        if len(parts) < 2 or not parts[0] or not parts[1].strip():
            return Reference(match_text, None, "", error="malformed inline placeholder "
                             "(expected <path:PATH#KEY[#VERSION]>)")
        path, key = parts[0], parts[1].strip()
        version = parts[2].strip() if len(parts) == 3 else None
        error = error or _check_path(path, grammar)
        read = None if error else grammar.read_key(path, version or None, annotations)
        return Reference(match_text, read, key, mods, error=error)
    if not head:
        return Reference(match_text, None, "", error="empty placeholder")
    path = annotations.get(AVP_PATH, "")
    error = error or _check_path(path, grammar)
    version = annotations.get(AVP_SECRET_VERSION) or None
    read = None if error else grammar.read_key(path, version, annotations)
    return Reference(match_text, read, head, mods, error=error)


def parse_uri(match: re.Match[str], annotations: Mapping[str, str],
              grammar: Grammar) -> Reference:
    """Parse one ``ref+SCHEME://PATH[?version=N]#KEY`` URI (``#/a/b`` walks nested values)."""
    text = match.group(0)
    path = match.group("path")
    query: dict[str, str] = {}
    for pair in (match.group("query") or "").split("&"):
        if pair:
            name, _, value = pair.partition("=")
            query[name] = value
    frag = match.group("frag")
    if not frag and grammar.whole_key:
        frag = grammar.whole_key
    elif not frag or frag == "/":
        return Reference(text, None, "", error="URI has no #KEY")
    pointer = frag.startswith("/")
    key = frag[1:] if pointer else frag
    error = _check_path(path, grammar)
    read = None if error else grammar.uri_read(path, query)
    return Reference(text, read, key, (), pointer=pointer, error=error)


def _find_in_text(text: str, generic: bool, annotations: Mapping[str, str],
                  grammar: Grammar) -> Iterator[tuple[re.Match[str], Reference]]:
    if grammar.avp and "<" in text:
        regex = GENERIC_RE if generic else INLINE_RE
        for m in free_matches(regex, text):
            yield m, parse_placeholder(m.group(0), annotations, grammar)
    if grammar.schemes and "ref+" in text:
        for m in free_matches(URI_RE, text):
            if m.group("scheme") in grammar.schemes:
                yield m, parse_uri(m, annotations, grammar)


def _b64_template(obj_kind: str, value: str) -> str | None:
    """AVP's Secret rule: a value that base64-decodes to text holding ``<...>`` is a template.

    A resolver's output is never decoded: only the template it came from (``decoded``), whose
    final spans are kept, may still hold another resolver's references."""
    if isinstance(value, Resolved):
        return value.decoded if obj_kind == "Secret" else None
    if obj_kind != "Secret" or "<" in value:
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return decoded if GENERIC_RE.search(decoded) or "ref+" in decoded else None


def _strings(node: Any, where: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(node, str):
        yield where, node
    elif isinstance(node, Mapping):
        for k, v in node.items():
            yield from _strings(v, (*where, str(k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, (*where, f"[{i}]"))


def field_path(where: Sequence[str]) -> str:
    """Render a field path as ``data.password`` / ``spec.containers[0].env[1].value``."""
    out = ""
    for part in where:
        out += part if part.startswith("[") else (f".{part}" if out else part)
    return out or "(root)"


def _obj_state(obj: Mapping[str, Any], grammar: Grammar) -> tuple[bool, bool, dict[str, str]]:
    """(skip, generic, annotations): skip for ignored objects, generic when annotated."""
    annotations = annotations_of(obj)
    if parse_bool(annotations.get(AVP_IGNORE)):
        return True, False, annotations
    return False, grammar.avp and AVP_PATH in annotations, annotations


def _has_reference(text: str, generic: bool, grammar: Grammar) -> bool:
    if grammar.avp and "<" in text:
        if generic and next(free_matches(GENERIC_RE, text), None):
            return True
        if "<path:" in text and next(free_matches(INLINE_RE, text), None):
            return True
    return bool(grammar.schemes and "ref+" in text and any(
        m.group("scheme") in grammar.schemes for m in free_matches(URI_RE, text)))


_WANTS_MARKERS = (b"<path:", b"ref+", AVP_PATH.encode(), b'"Secret"')


def _any_string(node: Any, test: Callable[[str], bool]) -> bool:
    if isinstance(node, str):
        return test(node)
    if isinstance(node, dict):
        return any(_any_string(v, test) for v in node.values())
    if isinstance(node, list):
        return any(_any_string(v, test) for v in node)
    return False


def wants(objects: Sequence[Mapping[str, Any]], grammar: Grammar) -> bool:
    """Cheaply tell whether any object holds a reference ``grammar`` owns.

    A stream whose JSON form holds no ``<path:``, no ``ref+``, no path annotation (needed for
    generic placeholders) and no Secret (which may hide a template in base64) is answered
    without walking it; the encoding runs in C.
    """
    if not grammar.avp and not grammar.schemes:
        return False
    blob = msgspec.json.encode(objects, enc_hook=str)  # Resolved strings encode as text
    if not any(marker in blob for marker in _WANTS_MARKERS):
        return False
    for obj in objects:
        skip, generic, _ = _obj_state(obj, grammar)
        if skip:
            continue
        kind = str(obj.get("kind", ""))

        def test(text: str, generic: bool = generic, kind: str = kind) -> bool:
            if _has_reference(text, generic, grammar):
                return True
            decoded = _b64_template(kind, text)
            return decoded is not None and _has_reference(decoded, generic, grammar)

        if _any_string(obj, test):
            return True
    return False


def scan(objects: Sequence[Mapping[str, Any]], grammar: Grammar) -> list[ReadKey]:
    """Return the de-duplicated reads the stream's references need, in first-seen order.

    Ignored objects (``avp.kubernetes.io/ignore``) are never read, unlike AVP.
    """
    seen: dict[ReadKey, None] = {}
    for obj in objects:
        skip, generic, annotations = _obj_state(obj, grammar)
        if skip:
            continue
        kind = str(obj.get("kind", ""))
        for _, text in _strings(obj, ()):
            for candidate in (text, _b64_template(kind, text)):
                if candidate is None:
                    continue
                for _, ref in _find_in_text(candidate, generic, annotations, grammar):
                    if ref.read is not None:
                        seen.setdefault(ref.read, None)
    return list(seen)


# -- substitution -------------------------------------------------------------------------------


class MissingValue(SecretNotFound):
    """A key is absent from a secret that was read (``remove-missing`` may drop the field)."""


class _Obj(msgspec.Struct):
    ref: str
    kind: str
    annotations: dict[str, str]
    generic: bool
    remove_missing: bool
    errors: list[SecretError] = msgspec.field(default_factory=list)


def _lookup(ref: Reference, data: Mapping[str, Any]) -> Any:
    if not ref.pointer:
        return data.get(ref.key)
    node: Any = data
    for part in ref.key.split("/"):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _err(state: _Obj, where: tuple[str, ...], ref: Reference, message: str,
         cls: type[SecretError] = SecretError) -> SecretError:
    return cls(f"{field_path(where)}: {ref.text}: {message}", source=state.ref)


def _value_for(ref: Reference, where: tuple[str, ...], state: _Obj,
               data: Mapping[ReadKey, Mapping[str, Any] | SecretError],
               redactor: Redactor | None) -> tuple[bool, Any]:
    """(ok, value) for one reference; errors are appended to ``state.errors``."""
    if ref.error is not None or ref.read is None:
        state.errors.append(_err(state, where, ref, ref.error or "no path"))
        return False, None
    got = data.get(ref.read)
    if got is None:
        state.errors.append(_err(state, where, ref, "not read"))
        return False, None
    if isinstance(got, SecretError):
        state.errors.append(_err(state, where, ref, got.message, type(got)))
        return False, None
    value = _lookup(ref, got)
    if value is None:
        state.errors.append(_err(state, where, ref, f"key {ref.key!r} not found at "
                                 f"{ref.read.describe()}", MissingValue))
        return False, None
    if not ref.modifiers:
        return True, final(value)
    for mod in ref.modifiers:
        try:
            value = apply_modifier(mod, value)
        except ModifierError as exc:
            state.errors.append(_err(state, where, ref, f"{mod.name}: {exc}"))
            return False, None
        if redactor is not None:
            register_leaves(redactor, value)
    return True, final(value)


def _replace_text(text: str, where: tuple[str, ...], state: _Obj, grammar: Grammar,
                  data: Mapping[ReadKey, Mapping[str, Any] | SecretError],
                  redactor: Redactor | None) -> Any:
    """Substitute every reference in one string; a non-string result replaces the field.

    The result remembers which of its spans are values (see :class:`Resolved`): spans that
    were final already keep that mark, shifted to where they land."""
    found = list(_find_in_text(text, state.generic, state.annotations, grammar))
    if not found:
        return text
    pieces: list[str] = []
    old_spans = list(final_spans(text))
    new_spans: list[Span] = []
    pos = 0
    out_len = 0
    whole: Any = None
    replaced_whole = False

    def keep(start: int, end: int) -> None:
        nonlocal out_len
        shift = out_len - start
        new_spans.extend((s + shift, e + shift) for s, e in old_spans if start <= s and e <= end)
        pieces.append(text[start:end])
        out_len += end - start

    for m, ref in sorted(found, key=lambda item: item[0].start()):
        if m.start() < pos:
            continue  # overlapping match (a URI inside a placeholder): first one wins
        ok, value = _value_for(ref, where, state, data, redactor)
        keep(pos, m.start())
        if ok and isinstance(value, str):
            pieces.append(value)
            new_spans.append((out_len, out_len + len(value)))
            out_len += len(value)
        else:
            keep(m.start(), m.end())
            if ok:
                whole, replaced_whole = value, True
        pos = m.end()
    keep(pos, len(text))
    return whole if replaced_whole else mark("".join(pieces), new_spans)


def _stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _replace_string(text: str, where: tuple[str, ...], state: _Obj, grammar: Grammar,
                    data: Mapping[ReadKey, Mapping[str, Any] | SecretError],
                    redactor: Redactor | None) -> Any:
    decoded = _b64_template(state.kind, text)
    if decoded is not None:
        inner = _replace_text(decoded, where, state, grammar, data, redactor)
        if inner is decoded and not isinstance(text, Resolved):
            return text
        inner_text = _stringify(inner) if isinstance(inner, str) else final(_stringify(inner))
        encoded = base64.b64encode(inner_text.encode()).decode()
        return mark(encoded, ((0, len(encoded)),), decoded=inner_text)
    result = _replace_text(text, where, state, grammar, data, redactor)
    if state.kind == "ConfigMap" and not isinstance(result, str):
        return final(_stringify(result))
    return result


def _walk(node: Any, where: tuple[str, ...], state: _Obj, grammar: Grammar,
          data: Mapping[ReadKey, Mapping[str, Any] | SecretError],
          redactor: Redactor | None) -> Any:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            here = (*where, str(key))
            if isinstance(value, str):
                before = len(state.errors)
                new = _replace_string(value, here, state, grammar, data, redactor)
                if state.remove_missing and len(state.errors) > before:
                    added = state.errors[before:]
                    missing = [e for e in added if isinstance(e, MissingValue)]
                    if missing:
                        del state.errors[before:]
                        state.errors.extend(e for e in added if not isinstance(e, MissingValue))
                        log.debug("%s: %s removed (missing value, remove-missing set)",
                                  state.ref, field_path(here))
                        continue
                out[key] = new
            else:
                out[key] = _walk(value, here, state, grammar, data, redactor)
        return out
    if isinstance(node, list):
        return [
            _replace_string(v, (*where, f"[{i}]"), state, grammar, data, redactor)
            if isinstance(v, str) else _walk(v, (*where, f"[{i}]"), state, grammar, data,
                                             redactor)
            for i, v in enumerate(node)
        ]
    return node


def substitute(objects: Sequence[dict[str, Any]], grammar: Grammar,
               data: Mapping[ReadKey, Mapping[str, Any] | SecretError],
               redactor: Redactor | None = None
               ) -> tuple[list[dict[str, Any]], list[SecretError]]:
    """Apply argocd-vault-plugin's substitution rules with the values in ``data``.

    Every string value is substituted (labels and annotations included, map keys never); a
    Secret value that base64-decodes to a template is substituted inside and re-encoded; a
    non-string result replaces the whole field; ConfigMap values become strings; objects
    annotated ``ignore`` pass through untouched; ``remove-missing`` (Secret and ConfigMap
    only) drops fields whose value is missing. Returns new objects and every error found.
    """
    out: list[dict[str, Any]] = []
    errors: list[SecretError] = []
    for obj in objects:
        skip, generic, annotations = _obj_state(obj, grammar)
        if skip:
            out.append(obj)
            continue
        kind = str(obj.get("kind", ""))
        remove_missing = parse_bool(annotations.get(AVP_REMOVE_MISSING))
        state = _Obj(object_ref(dict(obj)), kind, annotations, generic, remove_missing)
        if remove_missing and kind not in ("Secret", "ConfigMap"):
            if grammar.avp:  # reported once, by the resolver owning AVP placeholders
                errors.append(SecretError(f"{AVP_REMOVE_MISSING} can only be used on Secret "
                                          "or ConfigMap objects", source=state.ref))
            out.append(obj)
            continue
        new = _walk(obj, (), state, grammar, data, redactor)
        errors.extend(state.errors)
        out.append(new)
    return out, errors


def resolve_stream(objects: list[dict[str, Any]], grammar: Grammar, backend: Backend,
                   policy: FetchPolicy, redactor: Redactor | None = None
                   ) -> list[dict[str, Any]]:
    """Find, read (once per key, concurrently) and substitute every reference ``grammar`` owns.

    Raises :class:`SecretErrors` listing every failed reference, or the backend's own
    :class:`SecretBackendUnavailable` when it cannot be reached at all.
    """
    keys = scan(objects, grammar)
    data = fetch_all(backend, keys, policy, redactor)
    unavailable = [v for v in data.values() if isinstance(v, SecretBackendUnavailable)]
    if unavailable and len(unavailable) == len(data):
        raise unavailable[0]
    resolved, errors = substitute(objects, grammar, data, redactor)
    if errors:
        raise SecretErrors(errors)
    return resolved


def strip_avp_annotations(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the objects without ``avp.kubernetes.io/*`` annotations (an emptied
    ``annotations`` map is dropped too); key order is kept."""
    out: list[dict[str, Any]] = []
    for obj in objects:
        meta = obj.get("metadata")
        ann = meta.get("annotations") if isinstance(meta, Mapping) else None
        if not isinstance(ann, Mapping) or not any(str(k).startswith(AVP_PREFIX) for k in ann):
            out.append(obj)
            continue
        assert isinstance(meta, Mapping)
        kept = {k: v for k, v in ann.items() if not str(k).startswith(AVP_PREFIX)}
        new_meta = {k: v for k, v in meta.items() if k != "annotations" or kept}
        if kept:
            new_meta["annotations"] = kept
        out.append({k: (new_meta if k == "metadata" else v) for k, v in obj.items()})
    return out


def may_hold_references(text: str) -> bool:
    """Cheaply tell whether serialised objects may still hold an inline or URI reference."""
    return "<path:" in text or "ref+" in text


def unresolved(objects: Iterable[Mapping[str, Any]]) -> list[SecretError]:
    """Name every reference still in the stream: inline AVP placeholders and ``ref+`` URIs.

    ``kiln generate`` calls it after every resolver ran: what is left has no configured backend.
    Text inside a resolved value (a :class:`Resolved` span) is never a reference. Objects
    annotated ``avp.kubernetes.io/ignore`` are skipped.
    """
    errors: list[SecretError] = []
    for obj in objects:
        if parse_bool(annotations_of(obj).get(AVP_IGNORE)):
            continue
        for where, text in _strings(obj, ()):
            found: list[str] = []
            if "<path:" in text:
                found += [m.group(0) for m in free_matches(INLINE_RE, text)]
            if "ref+" in text:
                found += [m.group(0) for m in free_matches(URI_RE, text)]
            for ref in found:
                errors.append(SecretError(
                    f"{field_path(where)}: {ref}: no secrets backend is configured for this "
                    "reference (set AVP_TYPE, VAULT_ADDR, or a secrets section)",
                    source=object_ref(dict(obj))))
    return errors
