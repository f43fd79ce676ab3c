"""``--external-secrets=convert``: Secrets holding references become ExternalSecrets.

Every ``Secret`` whose ``data``/``stringData`` values hold argocd-vault-plugin placeholders or
``ref+vault://``/``ref+awssecrets://``/``ref+gcpsecrets://`` URIs is replaced by an
``ExternalSecret`` (``external-secrets.io/v1``) pointing at the configured store, with the same
backend paths, keys and versions, so the output carries no secret and ESO fetches the values in
the cluster. A value that is exactly one reference becomes a ``data[]`` entry; anything else
(text around a reference, several references, a modifier, literal keys) becomes a
``target.template`` entry whose ``{{ .refN }}`` actions reproduce it. The Secret's labels,
annotations (without ``avp.kubernetes.io/*``), type and ``immutable`` are kept. What ESO cannot
express (modifiers without a template function, ``?region=``, references outside a Secret,
unsupported backends) is reported, never dropped. No backend is contacted.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from kiln.core import placeholders
from kiln.core.errors import SecretError, SecretErrors
from kiln.core.manifests import object_ref
from kiln.core.placeholders import Reference
from kiln.core.secrets import ReadKey
from kiln.plugins.external_secrets import gotemplate, schema
from kiln.plugins.external_secrets.config import WHOLE, avp_type, env_value

ESO_API = "external-secrets.io/v1"
AVP_BACKENDS = {"": "vault", "vault": "vault", "awssecretsmanager": "aws",
                "gcpsecretmanager": "gcp"}
SCHEMES = {"vault": "vault", "awssecrets": "aws", "gcpsecrets": "gcp"}
TEMPLATE_FUNCS = {"base64encode": "b64enc", "base64decode": "b64dec", "sha256sum": "sha256sum"}
GCP_RE = re.compile(r"^projects/(?P<project>[^/]+)/secrets/(?P<secret>[^/]+)"
                    r"(?:/versions/(?P<version>[^/]+))?$")


def parse_grammar() -> placeholders.Grammar:
    """Parse every supported reference, keeping raw paths and URI queries (no backend rules)."""
    return placeholders.Grammar(
        avp=True, schemes=frozenset(SCHEMES), whole_key=WHOLE,
        read_key=lambda path, version, annotations: ReadKey(
            path, version or None, annotations.get(placeholders.AVP_KV_VERSION, "").strip()),
        uri_read=lambda path, query: ReadKey(path, None, urlencode(sorted(query.items()))),
    )


class ConversionError(SecretError):
    """A reference that ESO cannot express."""


@dataclass
class _Found:
    start: int
    end: int
    ref: Reference
    scheme: str  # "" for an AVP placeholder


def find_references(text: str, generic: bool, annotations: Mapping[str, str]) -> list[_Found]:
    """Every reference in ``text`` (placeholders and ``ref+`` URIs of any scheme), in order;
    overlapping matches keep the first."""
    grammar = parse_grammar()
    found: list[_Found] = []
    if "<" in text:
        regex = placeholders.GENERIC_RE if generic else placeholders.INLINE_RE
        for m in regex.finditer(text):
            ref = placeholders.parse_placeholder(m.group(0), annotations, grammar)
            found.append(_Found(m.start(), m.end(), ref, ""))
    if "ref+" in text:
        for m in placeholders.URI_RE.finditer(text):
            scheme = m.group("scheme")
            ref = (placeholders.parse_uri(m, annotations, grammar) if scheme in SCHEMES
                   else Reference(m.group(0), None, "", error=f"ref+{scheme}:// has no "
                                  "External Secrets equivalent in kiln"))
            found.append(_Found(m.start(), m.end(), ref, scheme))
    found.sort(key=lambda f: f.start)
    out: list[_Found] = []
    pos = 0
    for f in found:
        if f.start >= pos:
            out.append(f)
            pos = f.end
    return out


def remote_ref(found: _Found, backend: str, env: Mapping[str, str] | None = None
               ) -> dict[str, str]:
    """The ESO ``remoteRef`` reading what ``found`` reads; ConversionError when impossible.

    A Vault placeholder on KV v1 (``avp.kubernetes.io/kv-version`` or ``AVP_KV_VERSION``)
    loses its version, as AVP ignores it there."""
    ref = found.ref
    assert ref.read is not None
    path, version = ref.read.path, ref.read.version or ""
    query = dict(parse_qsl(ref.read.variant)) if found.scheme else {}
    prop = "" if ref.key == WHOLE else (ref.key.replace("/", ".") if ref.pointer else ref.key)
    remote: dict[str, str] = {}
    if backend == "vault":
        remote["key"] = path
        version = version or query.get("version", "")
        kv = ref.read.variant if not found.scheme else query.get("kv", "")
        if (kv or env_value(env or {}, "AVP_KV_VERSION")) == "1":
            version = ""
    elif backend == "aws":
        if query.get("region"):
            raise ConversionError("?region= has no ExternalSecret equivalent (the "
                                  "SecretStore sets the region)")
        remote["key"] = path
        version_id = version or query.get("version_id", "")
        version = f"uuid/{version_id}" if version_id else query.get("version_stage", "")
    else:
        if found.scheme:
            _, _, secret = path.partition("/")
            version = query.get("version", "")
        else:
            m = GCP_RE.match(path)
            if m is None:
                raise ConversionError(f"{path!r} is not projects/PROJECT/secrets/SECRET")
            secret = m.group("secret")
            version = version or m.group("version") or ""
        remote["key"] = secret
        if prop == secret:
            prop = ""
        if version == "latest":
            version = ""
    if prop:
        remote["property"] = prop
    if version:
        remote["version"] = version
    return remote


@dataclass
class _Conversion:
    ref: str
    backend: str = ""
    entries: dict[tuple[tuple[str, str], ...], str] = field(default_factory=dict)
    data: list[dict[str, Any]] = field(default_factory=list)
    errors: list[SecretError] = field(default_factory=list)

    def name_for(self, remote: dict[str, str]) -> str:
        ident = tuple(sorted(remote.items()))
        if ident not in self.entries:
            name = f"ref{len(self.entries)}"
            self.entries[ident] = name
            self.data.append({"secretKey": name, "remoteRef": remote})
        return self.entries[ident]


def _backend_of(found: _Found, env: Mapping[str, str]) -> str:
    if found.scheme:
        return SCHEMES[found.scheme]
    kind = avp_type(env)
    if kind not in AVP_BACKENDS:
        raise ConversionError(f"AVP_TYPE {kind!r} has no External Secrets equivalent in kiln")
    return AVP_BACKENDS[kind]


def _value_template(text: str, where: str, conv: _Conversion, generic: bool,
                    annotations: Mapping[str, str], env: Mapping[str, str]
                    ) -> tuple[str, dict[str, str] | None]:
    """(template text, remoteRef when the value is exactly one plain reference)."""
    found = find_references(text, generic, annotations)
    pieces: list[str] = []
    pos = 0
    single: dict[str, str] | None = None
    for f in found:
        try:
            if f.ref.error is not None or f.ref.read is None:
                raise ConversionError(f.ref.error or "no path")
            backend = _backend_of(f, env)
            if conv.backend and backend != conv.backend:
                raise ConversionError(f"mixes {conv.backend} and {backend} references: one "
                                      "ExternalSecret reads one store")
            conv.backend = backend
            remote = remote_ref(f, backend, env)
            funcs = []
            for mod in f.ref.modifiers:
                if mod.name not in TEMPLATE_FUNCS or mod.args:
                    raise ConversionError(f"modifier {mod.name!r} has no External Secrets "
                                          "template equivalent")
                funcs.append(TEMPLATE_FUNCS[mod.name])
        except ConversionError as exc:
            conv.errors.append(ConversionError(f"{where}: {f.ref.text}: {exc.message}",
                                               source=conv.ref))
            continue
        name = conv.name_for(remote)
        pieces.append(gotemplate.escape_literal(text[pos:f.start]))
        pieces.append("{{ ." + name + "".join(f" | {fn}" for fn in funcs) + " }}")
        pos = f.end
        if len(found) == 1 and f.start == 0 and f.end == len(text) and not funcs:
            single = remote
    pieces.append(gotemplate.escape_literal(text[pos:]))
    return "".join(pieces), single


def _decoded(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def convert_secret(obj: dict[str, Any], store: tuple[str, str], env: Mapping[str, str],
                   backends: list[str] | None = None
                   ) -> tuple[dict[str, Any], list[SecretError]]:
    """The ExternalSecret replacing Secret ``obj``, and every reference it could not express.

    The backend its references read (vault, aws, gcp) is appended to ``backends``."""
    ref = object_ref(obj)
    annotations = placeholders.annotations_of(obj)
    generic = placeholders.AVP_PATH in annotations
    conv = _Conversion(ref)
    values: dict[str, tuple[str, str]] = {}  # key -> (field path, text)
    for key, value in (obj.get("data") or {}).items():
        text = _decoded(str(value))
        if text is None:
            conv.errors.append(ConversionError(f"data.{key}: a binary value cannot be carried "
                                               "into an ExternalSecret template", source=ref))
            continue
        values[str(key)] = (f"data.{key}", text)
    for key, value in (obj.get("stringData") or {}).items():
        values[str(key)] = (f"stringData.{key}", str(value))
    templates: dict[str, str] = {}
    singles: dict[str, dict[str, str]] = {}
    for key, (where, text) in values.items():
        tpl, single = _value_template(text, where, conv, generic, annotations, env)
        templates[key] = tpl
        if single is not None:
            singles[key] = single
    meta = obj.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    kept = {k: v for k, v in (meta.get("annotations") or {}).items()
            if not str(k).startswith(placeholders.AVP_PREFIX)}
    template: dict[str, Any] = {"engineVersion": "v2"}
    if obj.get("type") and obj.get("type") != "Opaque":
        template["type"] = obj["type"]
    tmeta = {k: dict(v) for k, v in (("labels", labels), ("annotations", kept)) if v}
    if tmeta:
        template["metadata"] = tmeta
    if len(singles) == len(templates):
        data = [{"secretKey": k, "remoteRef": r} for k, r in singles.items()]
    else:
        data = conv.data
        template["data"] = templates
    target: dict[str, Any] = {"name": meta.get("name"), "creationPolicy": "Owner"}
    if len(template) > 1:
        target["template"] = template
    if obj.get("immutable"):
        target["immutable"] = True
    es_meta: dict[str, Any] = {"name": meta.get("name")}
    if meta.get("namespace"):
        es_meta["namespace"] = meta["namespace"]
    if labels:
        es_meta["labels"] = dict(labels)
    es = {
        "apiVersion": ESO_API,
        "kind": "ExternalSecret",
        "metadata": es_meta,
        "spec": {
            "secretStoreRef": {"name": store[0], "kind": store[1]},
            "target": target,
            "data": data,
        },
    }
    if backends is not None and conv.backend:
        backends.append(conv.backend)
    return es, conv.errors


PROVIDER_OF = {"vault": "vault", "aws": "aws", "gcp": "gcpsm"}


def _check_store(store: tuple[str, str], manifests: list[Mapping[str, Any]],
                 backends: list[str]) -> list[SecretError]:
    """The store's provider must serve every converted reference (when the store is known)."""
    errors: list[SecretError] = []
    kinds = sorted(set(backends))
    if len(kinds) > 1:
        errors.append(ConversionError(f"the converted Secrets read {' and '.join(kinds)} "
                                      f"references, but they all point at one store "
                                      f"({store[1]} {store[0]})"))
    for m in manifests:
        meta = m.get("metadata") or {}
        if m.get("kind") != store[1] or meta.get("name") != store[0]:
            continue
        spec = m.get("spec") or {}
        provider = spec.get("provider") if isinstance(spec, Mapping) else None
        names = set(provider) if isinstance(provider, Mapping) else set()
        wanted = {PROVIDER_OF[k] for k in kinds}
        if names and not wanted <= names:
            errors.append(ConversionError(
                f"{store[1]} {store[0]} has provider {', '.join(sorted(names))}, but the "
                f"converted references need {', '.join(sorted(wanted))}",
                source=object_ref(dict(m))))
        break
    return errors


def _has_references(obj: Mapping[str, Any]) -> bool:
    grammar = placeholders.Grammar(avp=True, schemes=frozenset(SCHEMES))
    if placeholders.wants([obj], grammar):
        return True
    return any("ref+" in text and placeholders.URI_RE.search(text)
               for _, text in _all_strings(obj))


def _all_strings(node: Any, where: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    if isinstance(node, str):
        return [(where, node)]
    if isinstance(node, Mapping):
        return [s for k, v in node.items() for s in _all_strings(v, (*where, str(k)))]
    if isinstance(node, list):
        return [s for i, v in enumerate(node) for s in _all_strings(v, (*where, f"[{i}]"))]
    return []


def wants(objects: list[dict[str, Any]]) -> bool:
    """True when some object holds a reference convert mode must handle."""
    return any(not _ignored(o) and _has_references(o) for o in objects)


def _ignored(obj: Mapping[str, Any]) -> bool:
    """The object carries ``avp.kubernetes.io/ignore: true``."""
    return placeholders.parse_bool(placeholders.annotations_of(obj).get(placeholders.AVP_IGNORE))


def convert(objects: list[dict[str, Any]], store: tuple[str, str], env: Mapping[str, str],
            stores: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """Replace every Secret holding references by an ExternalSecret reading ``store``
    (name, kind); raise SecretErrors naming every reference that cannot be expressed,
    including references outside Secrets, and a store (from the render or ``stores``)
    whose provider cannot serve them."""
    out: list[dict[str, Any]] = []
    errors: list[SecretError] = []
    backends: list[str] = []
    for obj in objects:
        if _ignored(obj) or not _has_references(obj):
            out.append(obj)
            continue
        if obj.get("kind") != "Secret" or obj.get("apiVersion") != "v1":
            ann = placeholders.annotations_of(obj)
            generic = placeholders.AVP_PATH in ann
            for where, text in _all_strings(obj):
                for f in find_references(text, generic, ann):
                    errors.append(ConversionError(
                        f"{placeholders.field_path(where)}: {f.ref.text}: only Secret values can "
                        "become ExternalSecret data", source=object_ref(obj)))
            out.append(obj)
            continue
        es, problems = convert_secret(obj, store, env, backends)
        errors += problems
        out.append(es)
    known = [o for o in objects if schema.is_store(o)] + list(stores)
    errors += _check_store(store, known, backends)
    if errors:
        raise SecretErrors(errors)
    return out
