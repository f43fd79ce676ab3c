"""ESO's ExternalSecret schema (``external-secrets.io/v1`` and ``v1beta1``), as a checker.

Field names, enums and required fields follow the CRD's Go types
(``apis/externalsecrets/v1/externalsecret_types.go``; ``v1beta1`` also allows the deprecated
template engine ``v1``): an unknown field, a wrong type, a value
outside an enum, or a missing ``secretStoreRef`` (unless every entry names its own store) is an
error naming the object and the field path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kiln.core.errors import InputError
from kiln.core.manifests import object_ref

GROUP = "external-secrets.io"
API_VERSIONS = (f"{GROUP}/v1", f"{GROUP}/v1beta1")
ES_KIND = "ExternalSecret"
STORE_KINDS = ("SecretStore", "ClusterSecretStore")

DECODING = ("Auto", "Base64", "Base64URL", "None")
CREATION = ("Owner", "Orphan", "Merge", "None")
DELETION = ("Delete", "Merge", "Retain")
SECRET_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

# A tiny schema language: "str", "bool", "int", "any", "strmap" (map[string]string),
# ("enum", values), {field: spec} (object; "!field" marks a required field), [spec] (list).
STORE_REF: dict[str, Any] = {"name": "str", "kind": ("enum", STORE_KINDS)}
GENERATOR_REF: dict[str, Any] = {"!apiVersion": "str", "!kind": "str", "!name": "str"}
REMOTE_REF: dict[str, Any] = {
    "!key": "str",
    "metadataPolicy": ("enum", ("None", "Fetch")),
    "property": "str",
    "version": "str",
    "conversionStrategy": ("enum", ("Default", "Unicode")),
    "decodingStrategy": ("enum", DECODING),
}
TEMPLATE_REF: dict[str, Any] = {
    "!name": "str",
    "!items": [{"!key": "str", "templateAs": ("enum", ("Values", "KeysAndValues"))}],
}
TEMPLATE: dict[str, Any] = {
    "type": "str",
    "engineVersion": ("enum", ("v1", "v2")),
    "metadata": {"annotations": "strmap", "labels": "strmap", "finalizers": ["str"]},
    "mergePolicy": ("enum", ("Replace", "Merge")),
    "data": "strmap",
    "templateFrom": [{
        "configMap": TEMPLATE_REF,
        "secret": TEMPLATE_REF,
        "target": ("enum", ("Data", "Annotations", "Labels")),
        "literal": "str",
    }],
}
SPEC: dict[str, Any] = {
    "secretStoreRef": STORE_REF,
    "target": {
        "name": "str",
        "creationPolicy": ("enum", CREATION),
        "deletionPolicy": ("enum", DELETION),
        "template": TEMPLATE,
        "immutable": "bool",
    },
    "refreshPolicy": ("enum", ("CreatedOnce", "Periodic", "OnChange")),
    "refreshInterval": "str",
    "data": [{
        "!secretKey": "str",
        "!remoteRef": REMOTE_REF,
        "sourceRef": {"storeRef": STORE_REF, "generatorRef": GENERATOR_REF},
    }],
    "dataFrom": [{
        "extract": REMOTE_REF,
        "find": {
            "path": "str",
            "name": {"regexp": "str"},
            "tags": "strmap",
            "conversionStrategy": ("enum", ("Default", "Unicode")),
            "decodingStrategy": ("enum", DECODING),
        },
        "rewrite": [{
            "merge": {"into": "str", "priority": ["str"],
                      "conflictPolicy": ("enum", ("Ignore", "Error")),
                      "strategy": ("enum", ("Extract", "JSON"))},
            "regexp": {"!source": "str", "!target": "str"},
            "transform": {"!template": "str"},
        }],
        "sourceRef": {"storeRef": STORE_REF, "generatorRef": GENERATOR_REF},
    }],
}
OBJECT: dict[str, Any] = {"!apiVersion": "str", "!kind": "str", "metadata": "any",
                          "!spec": SPEC, "status": "any"}


def is_external_secret(obj: Mapping[str, Any]) -> bool:
    """True for an ESO ExternalSecret of a supported API version."""
    return obj.get("kind") == ES_KIND and str(obj.get("apiVersion", "")).startswith(GROUP + "/")


def is_store(obj: Mapping[str, Any]) -> bool:
    """True for an ESO SecretStore or ClusterSecretStore."""
    return obj.get("kind") in STORE_KINDS and str(obj.get("apiVersion", "")).startswith(
        GROUP + "/")


def _where(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check(node: Any, spec: Any, path: str, errors: list[str]) -> None:
    if spec == "any":
        return
    if spec == "str":
        if not isinstance(node, str):
            errors.append(f"{path}: must be a string")
    elif spec == "bool":
        if not isinstance(node, bool):
            errors.append(f"{path}: must be true or false")
    elif spec == "strmap":
        if not isinstance(node, Mapping) or not all(
                isinstance(v, str) for v in node.values()):
            errors.append(f"{path}: must be a map of strings")
    elif isinstance(spec, tuple):
        if node not in spec[1]:
            errors.append(f"{path}: must be one of {', '.join(spec[1])}")
    elif isinstance(spec, list):
        if not isinstance(node, list):
            errors.append(f"{path}: must be a list")
            return
        for i, item in enumerate(node):
            _check(item, spec[0], f"{path}[{i}]", errors)
    elif isinstance(spec, dict):
        if not isinstance(node, Mapping):
            errors.append(f"{path or 'object'}: must be a mapping")
            return
        fields = {k.lstrip("!"): v for k, v in spec.items()}
        for key, value in node.items():
            if key not in fields:
                errors.append(f"{_where(path, str(key))}: unknown field")
            elif value is not None:
                _check(value, fields[key], _where(path, str(key)), errors)
        for key in spec:
            if key.startswith("!") and node.get(key[1:]) is None:
                errors.append(f"{_where(path, key[1:])}: required field missing")


def problems(obj: Mapping[str, Any]) -> list[str]:
    """Every schema problem of one ExternalSecret, as ``field.path: what`` strings."""
    errors: list[str] = []
    if str(obj.get("apiVersion")) not in API_VERSIONS:
        errors.append(f"apiVersion: {obj.get('apiVersion')!r} is not one of "
                      f"{', '.join(API_VERSIONS)}")
    _check(obj, OBJECT, "", errors)
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return errors
    for i, item in enumerate(spec.get("data") or []):
        key = item.get("secretKey") if isinstance(item, Mapping) else None
        if isinstance(key, str) and not SECRET_KEY_RE.match(key):
            errors.append(f"spec.data[{i}].secretKey: {key!r} is not a valid Secret key")
    for i, item in enumerate(spec.get("dataFrom") or []):
        if isinstance(item, Mapping) and not any(item.get(k) for k in
                                                 ("extract", "find", "sourceRef")):
            errors.append(f"spec.dataFrom[{i}]: needs extract, find or sourceRef")
    target = spec.get("target")
    template = target.get("template") if isinstance(target, Mapping) else None
    if isinstance(template, Mapping) and template.get("engineVersion") == "v1" and \
            obj.get("apiVersion") == f"{GROUP}/v1":
        errors.append("spec.target.template.engineVersion: must be one of v2")
    name = target.get("name") if isinstance(target, Mapping) else None
    if isinstance(name, str) and not NAME_RE.match(name):
        errors.append(f"spec.target.name: {name!r} is not a valid Secret name")
    ref = spec.get("secretStoreRef")
    if not (isinstance(ref, Mapping) and ref.get("name")) and not _all_sourced(spec):
        errors.append("spec.secretStoreRef: missing (and not every entry names a sourceRef)")
    return errors


def _all_sourced(spec: Mapping[str, Any]) -> bool:
    items = [*(spec.get("data") or []), *(spec.get("dataFrom") or [])]
    return bool(items) and all(isinstance(i, Mapping) and isinstance(i.get("sourceRef"), Mapping)
                               and i["sourceRef"] for i in items)


def validate(objects: list[dict[str, Any]]) -> None:
    """Raise one InputError listing every problem of every ExternalSecret in ``objects``."""
    found: list[tuple[str, str]] = []
    for obj in objects:
        if is_external_secret(obj):
            found += [(object_ref(obj), p) for p in problems(obj)]
    if not found:
        return
    first_ref, first = found[0]
    more = f" (and {len(found) - 1} more: " + "; ".join(
        f"{r}: {p}" for r, p in found[1:6]) + ("; ..." if len(found) > 6 else "") + ")" \
        if len(found) > 1 else ""
    raise InputError(f"invalid ExternalSecret: {first}{more}", source=first_ref)
