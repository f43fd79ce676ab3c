"""SecretStore / ClusterSecretStore providers as kiln backends, and ESO's value semantics.

A store (from the render, or from ``secrets.externalSecrets.stores``) with a ``vault``, ``aws``
(SecretsManager) or ``gcpsm`` provider becomes a :class:`Store`: a kiln backend plus how ESO
turns a ``remoteRef`` into a read (:meth:`Store.read_key`) and a read into bytes
(:meth:`Store.value`, :meth:`Store.extract`), following ESO's providers: Vault's path building
and whole-map JSON, AWS's ``uuid/`` versions and stages, gjson-style ``property`` paths.
Credentials come from kiln's environment (``VAULT_TOKEN``/``AVP_AUTH_TYPE``..., the AWS
credential chain, Application Default Credentials), never from the store's cluster Secrets.
A store is repository input (:mod:`kiln.core.trust`): its Vault ``server`` and ``namespace``
must be the operator's ``VAULT_ADDR`` / ``VAULT_NAMESPACE`` unless the operator allows
``spec.provider.vault.server`` / ``spec.provider.vault.namespace``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kiln.core import secrets
from kiln.core.errors import SecretError, SecretNotFound
from kiln.core.manifests import object_ref
from kiln.core.secrets import ReadKey
from kiln.core.trust import Allowlist, Guard, Origin, check
from kiln.plugins.external_secrets.config import BINARY, WHOLE

PROVIDERS = ("vault", "aws", "gcpsm")


class StoreError(SecretError):
    """A store is missing, unsupported or misconfigured (named, never with a value)."""


@dataclass
class Store:
    """One SecretStore: ``provider`` (vault, aws, gcpsm), its spec, and the backend used."""

    ref: str
    provider: str
    spec: Mapping[str, Any]
    backend: secrets.Backend
    policy: secrets.FetchPolicy

    # -- reads ----------------------------------------------------------------------------------

    def read_key(self, remote: Mapping[str, Any]) -> ReadKey:
        """The backend read ESO would make for ``remote`` (a ``remoteRef``/``extract``)."""
        key = str(remote.get("key", ""))
        version = str(remote.get("version") or "")
        if self.provider == "vault":
            kv = "1" if str(self.spec.get("version", "v2")) == "v1" else "2"
            return ReadKey(vault_path(key, self.spec.get("path"), kv),
                           version if kv == "2" and version else None, kv)
        if self.provider == "aws":
            from kiln.plugins.external_secrets.aws import variant

            region = str(self.spec.get("region") or "")
            if version.startswith("uuid/"):
                return ReadKey(key, version[len("uuid/"):], variant(region, ""))
            return ReadKey(key, None, variant(region, version))
        from kiln.plugins.external_secrets.gcp import resource_read

        project = str(self.spec.get("projectID") or "")
        path = key if key.startswith("projects/") else f"projects/{project}/secrets/{key}"
        return resource_read(path, version or None)

    # -- values ---------------------------------------------------------------------------------

    def _document(self, data: Mapping[str, Any]) -> Any:
        """The value ``property`` paths walk: Vault's map, or the parsed JSON payload."""
        if self.provider == "vault":
            return dict(data)
        if data.get(BINARY):
            return None
        try:
            return json.loads(str(data.get(WHOLE, "")))
        except json.JSONDecodeError:
            return None

    def value(self, data: Mapping[str, Any], remote: Mapping[str, Any]) -> bytes:
        """The bytes ESO stores for one ``data[]`` entry (before ``decodingStrategy``)."""
        prop = str(remote.get("property") or "")
        if not prop:
            if self.provider == "vault":
                return json.dumps(dict(data), sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=False).encode()
            whole = str(data.get(WHOLE, ""))
            return base64.b64decode(whole) if data.get(BINARY) else whole.encode()
        doc = self._document(data)
        found, value = gjson_get(doc, prop)
        if not found:
            raise SecretNotFound(f"property {prop!r} not found in {remote.get('key')}")
        return gjson_string(value).encode()

    def extract(self, data: Mapping[str, Any], remote: Mapping[str, Any]) -> dict[str, bytes]:
        """The key/value pairs ESO stores for one ``dataFrom[].extract``."""
        doc = self._document(data)
        prop = str(remote.get("property") or "")
        if prop:
            found, doc = gjson_get(doc, prop)
            if not found:
                raise SecretNotFound(f"property {prop!r} not found in {remote.get('key')}")
        if not isinstance(doc, Mapping):
            raise SecretError(f"{remote.get('key')} is not a JSON object: dataFrom.extract "
                              "needs key/value pairs")
        return {str(k): gjson_string(v).encode() for k, v in doc.items()}


def vault_path(key: str, mount: Any, kv: str) -> str:
    """ESO's Vault path building: strip a leading ``MOUNT/`` (and ``data/`` on v2) from
    ``key``, then prefix ``MOUNT[/data]``; without a mount, insert ``data/`` after the first
    segment on v2 unless the key already has ``/data/``."""
    out = key.strip("/")
    if isinstance(mount, str) and mount:
        mount = mount.strip("/")
        if out.startswith(mount + "/"):
            out = out[len(mount) + 1:]
            if kv == "2" and out.startswith("data/"):
                out = out[len("data/"):]
        return "/".join([mount, *(["data"] if kv == "2" else []), out])
    if kv == "2" and "/data/" not in out:
        head, _, rest = out.partition("/")
        return f"{head}/data/{rest}" if rest else f"{head}/data"
    return out


def gjson_get(doc: Any, path: str) -> tuple[bool, Any]:
    """Walk ``a.b.0`` (``\\.`` escapes a dot) through ``doc``; fall back to ``path`` as one key,
    as ESO does. Returns (found, value)."""
    parts: list[str] = []
    current = ""
    i = 0
    while i < len(path):
        if path[i] == "\\" and i + 1 < len(path):
            current += path[i + 1]
            i += 2
            continue
        if path[i] == ".":
            parts.append(current)
            current = ""
        else:
            current += path[i]
        i += 1
    parts.append(current)
    node = doc
    for part in parts:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            if isinstance(doc, Mapping) and path in doc:
                return True, doc[path]
            return False, None
    return True, node


def gjson_string(value: Any) -> str:
    """gjson's ``String()``: strings raw, ``null`` empty, everything else as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def decode(value: bytes, strategy: str) -> bytes:
    """Apply ESO's ``decodingStrategy`` (None, Base64, Base64URL, Auto) to one value."""
    if strategy in ("", "None"):
        return value
    text = value.strip()
    if strategy in ("Base64", "Base64URL"):
        try:
            return (base64.b64decode(text, validate=True) if strategy == "Base64"
                    else base64.urlsafe_b64decode(_pad(text)))
        except (binascii.Error, ValueError):
            raise SecretError(f"value is not valid {strategy} (decodingStrategy)") from None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.urlsafe_b64decode(_pad(text))
    except (binascii.Error, ValueError):
        return value


def _pad(text: bytes) -> bytes:
    if not all(c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="
               for c in text):
        raise binascii.Error("not base64url")
    return text + b"=" * (-len(text) % 4)


def provider_of(store: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """(provider name, provider spec) of a store manifest; StoreError when unsupported."""
    ref = object_ref(dict(store))
    spec = store.get("spec")
    provider = spec.get("provider") if isinstance(spec, Mapping) else None
    if not isinstance(provider, Mapping) or len(provider) != 1:
        raise StoreError("spec.provider must name exactly one provider", source=ref)
    name, pspec = next(iter(provider.items()))
    if name not in PROVIDERS:
        raise StoreError(f"provider {name!r} is not supported by kiln (vault, aws, gcpsm)",
                         source=ref)
    if not isinstance(pspec, Mapping):
        raise StoreError(f"spec.provider.{name} must be a mapping", source=ref)
    if name == "aws" and pspec.get("service") not in ("SecretsManager", None):
        raise StoreError(f"aws service {pspec.get('service')!r} is not supported (only "
                         "SecretsManager)", source=ref)
    if name == "vault" and not pspec.get("server"):
        raise StoreError("spec.provider.vault.server is required", source=ref)
    if name == "gcpsm" and not pspec.get("projectID"):
        raise StoreError("spec.provider.gcpsm.projectID is required", source=ref)
    return name, pspec


def check_vault_store(spec: Mapping[str, Any], origin: Origin, env: Mapping[str, str]) -> None:
    """Refuse a Vault store below operator level that names another server or namespace than
    the operator's ``VAULT_ADDR`` / ``VAULT_NAMESPACE`` (kiln's token would go there), unless
    the operator allows ``spec.provider.vault.server`` / ``.namespace``. Raises TrustError."""
    allow = Allowlist.from_env(env)
    server = str(spec.get("server") or "").strip().rstrip("/")
    if server != env.get("VAULT_ADDR", "").strip().rstrip("/"):
        check("spec.provider.vault.server", Guard.ROUTE, origin, allow)
    namespace = str(spec.get("namespace") or "").strip()
    if namespace and namespace != env.get("VAULT_NAMESPACE", "").strip():
        check("spec.provider.vault.namespace", Guard.ROUTE, origin, allow)
