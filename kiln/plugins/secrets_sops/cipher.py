"""SOPS value encryption: parse ``ENC[AES256_GCM,...]`` and decrypt it with AES-256-GCM.

Each value is sealed with the document's 32-byte data key, a random IV (32 bytes when sops
writes it) and the value's key path as additional data (``a:b:0:`` style, trailing colon).
The ``type`` field says how to turn the plaintext bytes back into a value.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from decimal import Decimal
from typing import Any

ENC_PREFIX = "ENC["
_ENC_RE = re.compile(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_INTEGRAL = re.compile(r"^[-+]?[0-9]+$")
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_KINDS = frozenset({"str", "bytes", "int", "float", "bool", "time", "comment"})
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class CipherError(Exception):
    """A value is not in sops' format or fails authentication (message holds no value)."""


class TimeText(str):
    """A timestamp's text (RFC 3339) as sops decrypts ``type:time``; emitted unquoted in YAML."""

    __slots__ = ()


class Comment(str):
    """A decrypted comment (``type:comment``): kept for dotenv/INI output, never hashed."""

    __slots__ = ()


def is_encrypted(value: object) -> bool:
    """Tell whether ``value`` looks like a sops-encrypted value."""
    return isinstance(value, str) and value.startswith(ENC_PREFIX)


def decrypt_value(token: str, key: bytes, aad: str) -> Any:
    """Decrypt one ``ENC[...]`` value; raise CipherError when malformed or not authentic.

    An empty string decrypts to an empty string (sops never encrypts empty values).
    """
    if token == "":
        return ""
    match = _ENC_RE.match(token)
    if match is None:
        raise CipherError("value is not in sops' ENC[AES256_GCM,...] format")
    try:
        data, iv, tag = (base64.b64decode(match.group(i), validate=True) for i in (1, 2, 3))
    except (binascii.Error, ValueError):
        raise CipherError("value has malformed base64 in its data, iv or tag") from None
    kind = match.group(4)
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(iv) < 8 or len(tag) != 16:
        raise CipherError("value has a malformed iv or tag")
    try:
        plain = AESGCM(key).decrypt(iv, data + tag, aad.encode())
    except InvalidTag:
        raise CipherError("authentication failed (tampered value or wrong key)") from None
    return _typed(plain, kind)


def _typed(plain: bytes, kind: str) -> Any:
    """Turn plaintext bytes into the value ``kind`` says. The ``type:`` field is not covered by
    the encryption, so every mismatch (an edited annotation) is a CipherError, never a crash;
    ``bytes`` is refused as sops (which cannot decrypt it either) never writes it in a file."""
    if kind not in _KINDS:
        raise CipherError(f"unknown value type {kind!r} (the type annotation was edited?)")
    if kind == "bytes":
        raise CipherError("value type 'bytes' is not one sops writes in a file (the type "
                          "annotation was edited?)")
    try:
        text = plain.decode("utf-8")
    except UnicodeDecodeError:
        raise CipherError(f"decrypted {kind} value is not UTF-8") from None
    if kind == "str":
        return text
    if kind == "int":
        try:
            return int(text, 10)
        except ValueError:
            raise CipherError("decrypted int value is not an integer") from None
    if kind == "float":
        try:
            number = float(text)
        except ValueError:
            raise CipherError("decrypted float value is not a number") from None
        # sops (Go) writes an integral float64 without a fraction: 1, not 1.0.
        return int(number) if number.is_integer() and _INTEGRAL.match(text) else number
    if kind == "bool":
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise CipherError("decrypted bool value is not a boolean")
    if kind == "time":
        if not _RFC3339.match(text):
            raise CipherError("decrypted time value is not an RFC 3339 timestamp")
        return TimeText(text)
    if kind == "comment":
        return Comment(text)
    raise CipherError(f"unknown value type {kind!r}")


def go_float(value: float) -> str:
    """Format a float as Go's ``strconv.FormatFloat(v, 'f', -1, 64)`` does (sops' MAC input)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def mac_bytes(value: Any) -> bytes:
    """The bytes sops hashes into the MAC for one plaintext leaf (bools as True/False)."""
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return go_float(value).encode()
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    raise CipherError(f"cannot hash a value of type {type(value).__name__}")
