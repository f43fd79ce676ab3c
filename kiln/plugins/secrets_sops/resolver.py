"""The ``sops`` secret resolver: decrypt SOPS-encrypted objects and Secret values, Flux's way.

- An object with a top-level ``sops`` map is decrypted whole (Flux's
  ``isSOPSEncryptedResource``, which asks for ``mac``; a map without one is refused unless
  ``ignoreMac``); the result has no ``sops`` key.
- A ``Secret`` whose ``data`` (base64) or ``stringData`` value is itself a SOPS document (YAML,
  JSON, dotenv, INI or binary envelope, spotted by its MAC marker) is decrypted per key; the
  format comes from the key's extension, binary otherwise.
- The annotation ``kustomize.toolkit.fluxcd.io/decrypt: Disabled`` skips an object.

Unlike Flux, the MAC is verified unless ``secrets.sops.ignoreMac`` is set; for objects whose
source file the renderer verified before a build that reorders fields (their MAC token is in
``SecretContext.verified``, see :meth:`SopsResolver.verify_file`) it is checked there instead.
Every error in a stream is collected and reported together; nothing is returned partially
decrypted. Decrypted values are marked final (:func:`kiln.core.secrets.final`): a placeholder
that happens to be inside a secret is never read or substituted by a later resolver.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kiln.core import secrets
from kiln.core.errors import SecretError, SecretErrors
from kiln.core.manifests import object_ref
from kiln.core.registry import SecretResolverBase
from kiln.core.sops_format import format_for_name, is_sops_metadata, looks_encrypted
from kiln.plugins.secrets_sops.options import SopsOptions

if TYPE_CHECKING:
    from kiln.core.context import RenderContext, SecretContext
    from kiln.plugins.secrets_sops.api import Decryptor

DISABLE_ANNOTATION = "kustomize.toolkit.fluxcd.io/decrypt"
_MARKER_HINTS = ("ENC[", "[sops]")


def is_sops_object(obj: dict[str, Any]) -> bool:
    """A whole-object SOPS resource: a top-level ``sops`` map of sops metadata. Flux asks for
    ``mac``; kiln also takes a map whose MAC was removed, so that it fails closed (refused
    unless ``ignoreMac``) instead of passing ciphertext through as data."""
    return is_sops_metadata(obj.get("sops"))


def _disabled(obj: dict[str, Any]) -> bool:
    meta = obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return isinstance(annotations, dict) and \
        str(annotations.get(DISABLE_ANNOTATION, "")).lower() == "disabled"


def _ref(obj: dict[str, Any], index: int) -> str:
    """Name an object for errors; one whose kind or name is ciphertext is named by position."""
    ref = object_ref(obj)
    if "ENC[" in ref:
        return f"object {index} of the stream (kind/name encrypted)"
    return ref


def _decode(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _secret_keys(obj: dict[str, Any]) -> list[tuple[str, str, bytes]]:
    """(field, key, document bytes) of every Secret value that is a SOPS document."""
    if obj.get("kind") != "Secret" or obj.get("apiVersion") != "v1":
        return []
    found: list[tuple[str, str, bytes]] = []
    data = obj.get("data")
    if isinstance(data, dict):
        for key, value in data.items():
            raw = _decode(value)
            if raw is not None and looks_encrypted(raw):
                found.append(("data", str(key), raw))
    string_data = obj.get("stringData")
    if isinstance(string_data, dict):
        for key, value in string_data.items():
            if isinstance(value, str) and any(h in value for h in _MARKER_HINTS):
                raw = value.encode()
                if looks_encrypted(raw):
                    found.append(("stringData", str(key), raw))
    return found


def _sops_groups(objects: Sequence[dict[str, Any]]) -> list[list[int]]:
    """Indices of whole-object SOPS documents, grouped by identical ``sops`` maps.

    The documents of one multi-document file carry the same metadata (and one MAC over all of
    them), so they are decrypted together; separately encrypted files never share a map.
    """
    import json

    groups: dict[str, list[int]] = {}
    for i, obj in enumerate(objects):
        if is_sops_object(obj) and not _disabled(obj):
            ident = json.dumps(obj["sops"], sort_keys=True, default=str)
            groups.setdefault(ident, []).append(i)
    return list(groups.values())


def _register_secret_data(obj: dict[str, Any], ctx: SecretContext) -> None:
    """A decrypted Secret's ``data`` values are base64: register the decoded secrets too."""
    data = obj.get("data") if obj.get("kind") == "Secret" else None
    if isinstance(data, dict):
        for value in data.values():
            raw = _decode(value)
            if raw:
                ctx.redactor.register(raw)


class SopsResolver(SecretResolverBase):
    """Decrypts SOPS content in rendered objects, in memory, after the cache."""

    name = "sops"
    order = 10
    markers = ("sops", "kind: Secret")
    """Text whose absence from a rendered stream proves there is nothing to decrypt: a
    top-level ``sops`` map, or a Secret (whose values may be base64-encoded SOPS documents)."""
    options_type = SopsOptions

    def tool_version(self, ctx: RenderContext) -> str:
        """``sops --version`` (the binary used for key types not decrypted in-process),
        memoised on disk; no update check (no network)."""
        from kiln.core.tools import find_tool

        binary = find_tool("sops", "KILN_SOPS", ctx.env)
        text = ctx.tool_versions.get(binary, ["--version", "--disable-version-check"],
                                     env=ctx.env)
        return text.splitlines()[0].removeprefix("sops ").strip() if text else ""

    def wants(self, objects: Sequence[dict[str, Any]], ctx: SecretContext) -> bool:
        """True when an object has a top-level ``sops`` map or a Secret value looks encrypted."""
        for obj in objects:
            if _disabled(obj):
                continue
            if is_sops_object(obj) or _secret_keys(obj):
                return True
        return False

    def resolve(self, objects: list[dict[str, Any]], ctx: SecretContext) -> list[dict[str, Any]]:
        """Return the objects with every SOPS document decrypted; raise on any failure."""
        from kiln.plugins.secrets_sops.api import Decryptor

        dec = Decryptor.for_app(ctx.app, ctx.env, on_plain=ctx.redactor.register)
        errors: list[SecretError] = []
        out: list[dict[str, Any]] = list(objects)
        for indices in _sops_groups(objects):
            group = [objects[i] for i in indices]
            name = _ref(group[0], indices[0]) + (f" (+{len(group) - 1} documents of the same file)"
                                           if len(group) > 1 else "")
            try:
                for i, plain in zip(indices, _for_group(dec, group, ctx).decrypt_objects(
                        group, name=name), strict=True):
                    out[i] = _final_decrypted(objects[i], plain)
                    _register_secret_data(plain, ctx)
            except SecretError as exc:
                errors.append(exc)
        for i, obj in enumerate(out):
            try:
                out[i] = self._resolve_keys(obj, dec, _ref(obj, i))
            except SecretError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise SecretErrors(errors)
        return out

    def _resolve_keys(self, obj: dict[str, Any], dec: Decryptor, ref: str) -> dict[str, Any]:
        if _disabled(obj):
            return obj
        keys = _secret_keys(obj)
        if not keys:
            return obj
        obj = dict(obj)
        for field, key, raw in keys:
            plain = dec.decrypt_bytes(raw, name=f"{ref} {field}.{key}",
                                      fmt=format_for_name(key))
            if dec.on_plain is not None:
                dec.on_plain(plain)
            section = dict(obj[field])
            if field == "data":
                section[key] = secrets.final(base64.b64encode(plain).decode())
            else:
                section[key] = secrets.final(plain.decode("utf-8", "replace"))
            obj[field] = section
        return obj

    def decrypt_file(self, data: bytes, name: str, ctx: SecretContext, *,
                     fmt: str | None = None) -> bytes | None:
        """Decrypt one SOPS file's bytes in memory; None when ``data`` is not a SOPS document.

        The format is ``fmt``, else ``name``'s extension (Flux's rule). Every decrypted value
        is registered with ``ctx.redactor``. This is the file service the engine offers
        renderers (``RenderContext.decrypt_file``), e.g. for kustomize ``secretGenerator``
        files decrypted before the build.
        """
        if not looks_encrypted(data):
            return None
        from kiln.plugins.secrets_sops.api import Decryptor

        dec = Decryptor.for_app(ctx.app, ctx.env, on_plain=ctx.redactor.register)
        return dec.decrypt_bytes(data, name=name, fmt=fmt)

    def verify_file(self, data: bytes, name: str, ctx: SecretContext, *,
                    fmt: str | None = None) -> list[str] | None:
        """Verify the MAC of every whole-object SOPS document in a manifest file, in memory.

        For renderers that reorder fields (kustomize), which check the *source* file before the
        build; returns each verified document's MAC token (handed back to :meth:`resolve` in
        ``ctx.verified``, where those objects are then decrypted without a second, doomed, MAC
        check). None when ``data`` holds no SOPS document, or when ``ignoreMac`` is set (Flux's
        behaviour: nothing is verified). A tampered file raises SopsError naming ``name``.
        """
        if not looks_encrypted(data):
            return None
        from kiln.plugins.secrets_sops.api import Decryptor

        dec = Decryptor.for_app(ctx.app, ctx.env)
        if dec.options.ignore_mac:
            return None
        return dec.verify_documents(data, name=name, fmt=fmt or "yaml") or None


def _final_decrypted(before: Any, after: Any) -> Any:
    """``after`` with every value that was ciphertext in ``before`` marked as resolver output."""
    from kiln.plugins.secrets_sops.cipher import is_encrypted

    if isinstance(before, dict) and isinstance(after, dict):
        return {k: _final_decrypted(before[k], v) if k in before else v
                for k, v in after.items()}
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [_final_decrypted(b, a) for b, a in zip(before, after, strict=True)]
    if not is_encrypted(before):
        return after
    # A typed scalar (type:time's TimeText) is plain text in an object, as in sops' JSON.
    return secrets.final(str.__str__(after) if isinstance(after, str) else after)


def _for_group(dec: Decryptor, group: list[dict[str, Any]], ctx: SecretContext) -> Decryptor:
    """The decryptor for one whole-object group: without the MAC check when the renderer
    verified the group's source file (its MAC token is in ``ctx.verified``), since a renderer
    that reorders fields makes the check on the rendered object fail whatever the content."""
    mac = group[0]["sops"].get("mac")
    if dec.options.ignore_mac or not ctx.verified or mac not in ctx.verified:
        return dec
    import msgspec

    from kiln.plugins.secrets_sops.api import Decryptor

    return Decryptor(dec.ring, msgspec.structs.replace(dec.options, ignore_mac=True),
                     on_plain=dec.on_plain)
