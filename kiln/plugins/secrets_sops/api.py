"""In-memory SOPS decryption: documents as bytes, and Kubernetes objects.

This is the API other parts of kiln call (the resolver, and a renderer that must decrypt
kustomize ``secretGenerator`` files before building). Nothing here writes to disk: age and AWS
KMS documents are decrypted in-process, everything else through ``sops`` on stdin.

    dec = Decryptor.for_app(app, env)           # keys and options from kiln.yaml + environment
    plain = dec.decrypt_bytes(data, name="secrets.env")   # format from the name, as Flux does
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.core.errors import ToolError
from kiln.core.sops_format import format_for_name, is_sops_metadata
from kiln.plugins.secrets_sops import formats
from kiln.plugins.secrets_sops.binary import sops_decrypt
from kiln.plugins.secrets_sops.cipher import CipherError, Comment, decrypt_value, is_encrypted
from kiln.plugins.secrets_sops.errors import SopsError, SopsKeyError
from kiln.plugins.secrets_sops.keys import (
    IN_PROCESS_TYPES,
    KeyRing,
    Unwrapped,
    check_binary_keys,
    load_keyring,
    unwrap_data_key,
)
from kiln.plugins.secrets_sops.options import SopsOptions
from kiln.plugins.secrets_sops.tree import (
    Metadata,
    Selector,
    TreeError,
    check_mac,
    decrypt_branches,
    parse_metadata,
)

if TYPE_CHECKING:
    from kiln.core.app import App

log = logging.getLogger("kiln.sops")

OnPlain = Callable[[Any], None]
_BINARY_ENV = ("SOPS_AGE_KEY_CMD", "SOPS_AGE_SSH_PRIVATE_KEY_FILE", "SOPS_AGE_SSH_PRIVATE_KEY_CMD")


class Decryptor:
    """Decrypts SOPS documents in memory with one key ring and one set of options.

    ``on_plain`` (optional) is called with every decrypted value, e.g. a redactor's register.
    """

    def __init__(self, ring: KeyRing, options: SopsOptions | None = None, *,
                 on_plain: OnPlain | None = None) -> None:
        self.ring = ring
        self.options = options or SopsOptions()
        self.on_plain = on_plain

    @classmethod
    def for_app(cls, app: App | None, env: Mapping[str, str], *,
                on_plain: OnPlain | None = None) -> Decryptor:
        """A decryptor with ``app``'s ``secrets.sops`` options and keys plus the environment."""
        options = app.secrets_for("sops", SopsOptions) if app is not None else SopsOptions()
        base = app.path if app is not None else Path.cwd()
        ring = load_keyring(env, age_keys=options.age_keys, age_key_file=options.age_key_file,
                            key_secret_file=options.key_secret_file, base=base)
        return cls(ring, options, on_plain=on_plain)

    # -- bytes -----------------------------------------------------------------------------

    def decrypt_bytes(self, data: bytes, *, name: str, fmt: str | None = None) -> bytes:
        """Decrypt a whole SOPS document and return its plaintext bytes, in its own format.

        ``name`` (a file path or Secret key) names the document in errors and, when ``fmt`` is
        None, picks the format by extension as Flux does (``.yaml/.yml/.json/.env/.ini``, else
        binary). Raises SopsError / SopsKeyError naming ``name``; never returns partial output.
        """
        fmt = fmt or format_for_name(name)
        self._check_size(len(data), name)
        try:
            doc = formats.load(data, fmt)
            meta = parse_metadata(doc.metadata)
        except (formats.FormatError, TreeError) as exc:
            raise SopsError(f"not a valid SOPS {fmt} document: {exc}", source=name) from None
        if self.options.in_process and not (meta.has_comment_rules and fmt != "json"):
            key = self._data_key(meta, name)
            if key is not None:
                branches = self._decrypt(doc.branches, meta, key, name)
                if doc.comments:
                    doc.comments = self._comments(doc.comments, meta, key)
                return formats.emit(doc, branches)
        out = self._binary(data, fmt, meta, name)
        if self.on_plain is not None:
            _report_changed(doc.branches, _plain_branches(out, fmt), self.on_plain)
        return out

    def verify_documents(self, data: bytes, *, name: str, fmt: str = "yaml") -> list[str]:
        """Check the MAC of every whole-object SOPS document in a YAML/JSON manifest file.

        Documents sharing one ``sops`` map (one encrypted file) are checked together; plain
        documents are skipped. Returns the MAC token (the stored, encrypted ``sops.mac``) of
        each group verified; plaintext is discarded. Raises SopsError naming ``name``.
        """
        import msgspec

        self._check_size(len(data), name)
        try:
            if fmt == "json":
                value = json.loads(data)
                docs = value if isinstance(value, list) else [value]
            else:
                docs = formats.load_plain_yaml(data)
        except (ValueError, formats.FormatError) as exc:
            raise SopsError(f"not a valid {fmt} manifest: {formats.first_line(exc)}",
                            source=name) from None
        groups: dict[str, list[dict[str, Any]]] = {}
        for doc in docs:
            meta = doc.get("sops") if isinstance(doc, dict) else None
            if is_sops_metadata(meta):
                ident = json.dumps(meta, sort_keys=True, default=str)
                groups.setdefault(ident, []).append(doc)
        strict = Decryptor(self.ring, msgspec.structs.replace(self.options, ignore_mac=False))
        tokens: list[str] = []
        for group in groups.values():
            strict.decrypt_objects(group, name=name)
            tokens.append(str(group[0]["sops"].get("mac")))
        return tokens

    # -- objects ---------------------------------------------------------------------------

    def decrypt_objects(self, objs: list[dict[str, Any]], *, name: str) -> list[dict[str, Any]]:
        """Decrypt objects that share one ``sops`` map: the documents of one multi-document file.

        sops computes one MAC over every document of a file, so they are decrypted (and the MAC
        checked) together. Returns new objects without ``sops``.
        """
        encoded = json.dumps(objs, ensure_ascii=False, default=str).encode()
        self._check_size(len(encoded), name)
        bodies = [{k: v for k, v in obj.items() if k != "sops"} for obj in objs]
        try:
            meta = parse_metadata(objs[0].get("sops"))
        except TreeError as exc:
            raise SopsError(f"not a valid SOPS object: {exc}", source=name) from None
        if self.options.in_process:
            key = self._data_key(meta, name)
            if key is not None:
                return self._decrypt(bodies, meta, key, name)
        if len(objs) == 1:
            out = self._binary(encoded[1:-1], "json", meta, name)
            try:
                plain = [json.loads(out)]
            except ValueError:
                raise SopsError("sops returned output that is not JSON", source=name) from None
        else:
            import yaml

            stream = yaml.safe_dump_all(objs, sort_keys=False).encode()
            out = self._binary(stream, "yaml", meta, name)
            doc = formats.load_plain_yaml(out)
            plain = doc
        if self.on_plain is not None:
            _report_changed(bodies, plain, self.on_plain)
        return plain

    # -- internals -------------------------------------------------------------------------

    def _check_size(self, size: int, name: str) -> None:
        limit = self.options.max_file_bytes
        if size > limit:
            raise SopsError(f"encrypted document is larger than the {limit}-byte limit "
                            "(secrets.sops.maxFileBytes)", source=name)

    def _data_key(self, meta: Metadata, name: str) -> bytes | None:
        """The data key in-process, None when the sops binary must try, else SopsKeyError."""
        try:
            return unwrap_data_key(meta, self.ring)
        except Unwrapped as exc:
            if self._binary_may_help(meta):
                log.debug("%s: data key not unwrapped in-process (%s): using sops", name, exc)
                return None
            raise SopsKeyError(
                f"no available key can decrypt this document; it is encrypted for: "
                f"{meta.recipients()} ({'; '.join(exc.reasons)})", source=name) from None

    def _binary_may_help(self, meta: Metadata) -> bool:
        if len(meta.groups) != 1:
            return True
        if any(k.type not in IN_PROCESS_TYPES for k in meta.keys):
            return True
        return any(self.ring.env.get(v) for v in _BINARY_ENV)

    def _decrypt(self, branches: list[Any], meta: Metadata, key: bytes, name: str) -> list[Any]:
        try:
            out, computed = decrypt_branches(branches, meta, key, on_plain=self.on_plain)
            if not self.options.ignore_mac:
                check_mac(meta, key, computed)
        except TreeError as exc:
            where = f" at {exc.path}" if exc.path else ""
            raise SopsError(f"cannot decrypt{where}: {exc}", source=name) from None
        return out

    def _comments(self, comments: dict[int, str], meta: Metadata, key: bytes) -> dict[int, str]:
        if not Selector(meta).encrypted(()):
            return comments
        out: dict[int, str] = {}
        for pos, text in comments.items():
            if is_encrypted(text):
                with contextlib.suppress(CipherError):  # sops keeps what it cannot decrypt
                    text = str(decrypt_value(text, key, ":"))
            out[pos] = Comment(text)
        return out

    def _binary(self, data: bytes, fmt: str, meta: Metadata, name: str) -> bytes:
        check_binary_keys(meta, self.ring.env, name)  # before sops may contact anything
        try:
            out = sops_decrypt(data, fmt, self.ring, ignore_mac=self.options.ignore_mac,
                               timeout=self.options.timeout, source=name)
        except ToolError as exc:
            if "MAC mismatch" in exc.message or "Could not decrypt" in exc.message:
                raise SopsError(f"cannot decrypt: {exc.message}", source=name) from None
            raise SopsKeyError(
                f"no available key can decrypt this document; it is encrypted for: "
                f"{meta.recipients()} ({exc.message})", source=name) from None
        return out


def _plain_branches(data: bytes, fmt: str) -> list[Any]:
    """Parse sops' plaintext output back into branches, to find the values to redact."""
    try:
        if fmt == "yaml":
            return formats.load_plain_yaml(data)
        if fmt in ("json", "binary"):
            value = json.loads(data) if fmt == "json" else {"data": data.decode("utf-8")}
            return [value]
        if fmt == "dotenv":
            pairs = (ln.partition("=") for ln in data.decode("utf-8").split("\n"))
            return [{k: v.replace("\\n", "\n") for k, sep, v in pairs
                     if sep and not k.startswith("#")}]
    except (ValueError, formats.FormatError):
        pass
    return []


def _report_changed(before: Any, after: Any, on_plain: OnPlain) -> None:
    """Report every value that was ciphertext in ``before`` and is plaintext in ``after``."""
    if isinstance(before, dict) and isinstance(after, dict):
        for k, v in before.items():
            if k in after:
                _report_changed(v, after[k], on_plain)
    elif isinstance(before, list) and isinstance(after, list):
        for b, a in zip(before, after, strict=False):
            _report_changed(b, a, on_plain)
    elif is_encrypted(before):
        on_plain(after)
