"""The SOPS document model: metadata, which leaves are ciphertext, and decryption with the MAC.

A document is a list of branches (one per YAML document, one for every other format) plus the
``sops`` metadata map. Which leaves are encrypted is decided by the file's own selectors
(``unencrypted_suffix`` by default ``_unencrypted``, ``encrypted_suffix``, ``unencrypted_regex``,
``encrypted_regex``, the comment regexes), exactly as sops decides, never by a local config.
The MAC is SHA-512 over the plaintext leaves in document order (with ``mac_only_encrypted``,
only the encrypted ones after a fixed 32-byte prefix), upper-case hex, itself encrypted with the
data key and the ``lastmodified`` text as additional data.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kiln.plugins.secrets_sops.cipher import CipherError, Comment, decrypt_value, mac_bytes

DEFAULT_UNENCRYPTED_SUFFIX = "_unencrypted"
MAC_ONLY_ENCRYPTED_PREFIX = bytes.fromhex(
    "8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69"
)
KEY_TYPES = ("age", "kms", "gcp_kms", "azure_kv", "hc_vault", "pgp", "hckms")
_SELECTORS = ("unencrypted_suffix", "encrypted_suffix", "unencrypted_regex", "encrypted_regex",
              "unencrypted_comment_regex", "encrypted_comment_regex")


class TreeError(Exception):
    """Decryption of the tree failed; ``path`` names the field (message holds no value)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class MasterKey:
    """One wrapped copy of the data key: its type (``age``, ``kms``...) and its fields."""

    type: str
    fields: Mapping[str, Any]

    @property
    def ident(self) -> str:
        """A printable name for the key: recipient, ARN, resource id, fingerprint..."""
        f = self.fields
        if self.type == "hc_vault":
            return f"{f.get('vault_address', '')}/v1/{f.get('engine_path', '')}/keys/" \
                   f"{f.get('key_name', '')}"
        if self.type == "azure_kv":
            return f"{f.get('vault_url', '')}/keys/{f.get('name', '')}/{f.get('version', '')}"
        for name in ("recipient", "arn", "resource_id", "fp", "key_id"):
            if f.get(name):
                return str(f[name])
        return "?"

    @property
    def enc(self) -> str:
        """The wrapped data key as stored in the file."""
        return str(self.fields.get("enc") or "")


@dataclass(frozen=True)
class Metadata:
    """The parts of a document's ``sops`` map that decryption needs."""

    groups: tuple[tuple[MasterKey, ...], ...]
    shamir_threshold: int
    lastmodified: str
    mac: str
    selectors: Mapping[str, str] = field(default_factory=dict)
    mac_only_encrypted: bool = False

    @property
    def keys(self) -> list[MasterKey]:
        """Every master key, all groups flattened."""
        return [k for group in self.groups for k in group]

    def recipients(self) -> str:
        """A one-line list of every key the document is encrypted for, for error messages."""
        return ", ".join(f"{k.type} {k.ident}" for k in self.keys) or "no keys"

    @property
    def has_comment_rules(self) -> bool:
        """Whether a comment regex decides encryption (needs comment-aware parsing)."""
        return bool(self.selectors.get("unencrypted_comment_regex")
                    or self.selectors.get("encrypted_comment_regex"))


def parse_metadata(raw: Any) -> Metadata:
    """Read a ``sops`` map (already unflattened for dotenv/INI) into Metadata; TreeError if bad."""
    if not isinstance(raw, Mapping):
        raise TreeError("the 'sops' entry is not a mapping")
    groups: list[tuple[MasterKey, ...]] = []
    top = _keys_of(raw)
    if top:
        groups.append(top)
    elif isinstance(raw.get("key_groups"), list):
        for group in raw["key_groups"]:
            if isinstance(group, Mapping):
                groups.append(_keys_of(group))
    if not any(groups):
        raise TreeError("the sops metadata lists no keys")
    selectors = {k: str(raw[k]) for k in _SELECTORS if raw.get(k) not in (None, "")}
    if len(selectors) > 1:
        raise TreeError("the sops metadata sets more than one of " + ", ".join(_SELECTORS))
    if not selectors:
        selectors = {"unencrypted_suffix": DEFAULT_UNENCRYPTED_SUFFIX}
    lastmodified = raw.get("lastmodified")
    if isinstance(lastmodified, datetime):
        lastmodified = lastmodified.isoformat().replace("+00:00", "Z")
    if not isinstance(lastmodified, str) or not lastmodified:
        raise TreeError("the sops metadata has no lastmodified")
    mac_only = raw.get("mac_only_encrypted", False)
    if isinstance(mac_only, str):
        mac_only = mac_only.strip().lower() in ("true", "1", "t")
    try:
        threshold = int(raw.get("shamir_threshold") or 0)
    except (TypeError, ValueError):
        raise TreeError("the sops metadata has a malformed shamir_threshold") from None
    return Metadata(
        groups=tuple(groups),
        shamir_threshold=threshold,
        lastmodified=_rfc3339(lastmodified),
        mac=str(raw.get("mac") or ""),
        selectors=selectors,
        mac_only_encrypted=bool(mac_only),
    )


def _keys_of(section: Mapping[str, Any]) -> tuple[MasterKey, ...]:
    found: list[MasterKey] = []
    for kind in KEY_TYPES:
        entries = section.get(kind)
        if isinstance(entries, list):
            found.extend(MasterKey(kind, e) for e in entries if isinstance(e, Mapping))
    return tuple(found)


_FRACTION = re.compile(r"(T\d\d:\d\d:\d\d)\.\d+")


def _rfc3339(text: str) -> str:
    """Go re-formats the parsed time with RFC 3339 (seconds precision) before using it as AAD."""
    return _FRACTION.sub(r"\1", text.strip())


class Selector:
    """Decides, as sops does, whether the leaf at a key path is encrypted."""

    def __init__(self, meta: Metadata) -> None:
        s = meta.selectors
        self._unenc_suffix = s.get("unencrypted_suffix", "")
        self._enc_suffix = s.get("encrypted_suffix", "")
        self._unenc_re = _compile(s.get("unencrypted_regex", ""))
        self._enc_re = _compile(s.get("encrypted_regex", ""))
        self._enc_comment = bool(s.get("encrypted_comment_regex"))
        self._memo: dict[tuple[str, ...], bool] = {}

    def encrypted(self, path: tuple[str, ...]) -> bool:
        """Whether the leaf at ``path`` (mapping keys only) is ciphertext (no comments seen)."""
        known = self._memo.get(path)
        if known is not None:
            return known
        result = True
        if self._unenc_suffix and any(p.endswith(self._unenc_suffix) for p in path):
            result = False
        if self._enc_suffix:
            result = any(p.endswith(self._enc_suffix) for p in path)
        if self._unenc_re is not None and any(self._unenc_re.search(p) for p in path):
            result = False
        if self._enc_re is not None:
            result = any(self._enc_re.search(p) for p in path)
        if self._enc_comment:
            result = False  # no comment above the leaf can match: nothing is encrypted
        self._memo[path] = result
        return result


def _compile(pattern: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error:
        raise TreeError("the sops metadata holds a regex Python cannot compile") from None


def decrypt_branches(branches: list[Any], meta: Metadata, key: bytes, *,
                     on_plain: Callable[[Any], None] | None = None) -> tuple[list[Any], str]:
    """Decrypt every branch in place order; return (new branches, computed MAC hex).

    ``on_plain`` sees every decrypted value (the resolver registers them for redaction).
    Comments (:class:`Comment` leaves) are decrypted when encrypted but never hashed.
    """
    selector = Selector(meta)
    digest = hashlib.sha512()
    if meta.mac_only_encrypted:
        digest.update(MAC_ONLY_ENCRYPTED_PREFIX)
    mac_all = not meta.mac_only_encrypted

    def leaf(value: Any, path: tuple[str, ...]) -> Any:
        encrypted = selector.encrypted(path)
        is_comment = isinstance(value, Comment)
        if encrypted:
            aad = ":".join(path) + ":"
            if not isinstance(value, str):
                raise TreeError(f"expected an encrypted string, found {type(value).__name__}",
                                ":".join(path))
            try:
                plain = decrypt_value(value, key, aad)
            except CipherError as exc:
                if is_comment:
                    plain = value  # sops keeps a comment it cannot decrypt as it is
                else:
                    raise TreeError(str(exc), ":".join(path)) from None
            if is_comment and not isinstance(plain, Comment):
                plain = Comment(plain)
            elif isinstance(plain, Comment) and not is_comment:
                # A value annotated as a comment: sops would leave it out of the MAC (a mismatch).
                raise TreeError("the value's type annotation says comment (the file was "
                                "edited after it was encrypted)", ":".join(path))
            if on_plain is not None and not is_comment:
                on_plain(plain)
            value = plain
        if (mac_all or encrypted) and not is_comment:
            try:
                digest.update(mac_bytes(value))
            except CipherError as exc:
                raise TreeError(str(exc), ":".join(path)) from None
        return value

    def walk(value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, _key(k, path))) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path) for v in value]
        if value is None:
            return None
        return leaf(value, path)

    out = [walk(branch, ()) for branch in branches]
    return out, digest.hexdigest().upper()


def _key(key: Any, path: tuple[str, ...]) -> str:
    if isinstance(key, str):
        return key
    raise TreeError(f"non-string key of type {type(key).__name__}", ":".join(path))


def check_mac(meta: Metadata, key: bytes, computed: str) -> None:
    """Raise TreeError unless the stored MAC decrypts to ``computed``; a document without a
    MAC fails too (as with sops: only ``ignoreMac`` skips this check)."""
    if not meta.mac:
        raise TreeError("the document has no MAC (sops.mac is missing or empty), so its "
                        "integrity cannot be checked (ignoreMac / --sops-ignore-mac decrypts "
                        "it anyway)", "sops:mac")
    try:
        stored = decrypt_value(meta.mac, key, meta.lastmodified)
    except CipherError:
        raise TreeError("cannot decrypt the MAC (tampered MAC or lastmodified)", "sops:mac") \
            from None
    if stored != computed:
        raise TreeError("MAC mismatch: the file was modified after it was encrypted "
                        "(use ignoreMac to skip the check)", "sops:mac")
