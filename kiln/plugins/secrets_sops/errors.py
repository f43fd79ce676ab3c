"""The errors the SOPS resolver raises: each names the file (or object) and never a value."""

from __future__ import annotations

from kiln.core.errors import SecretError


class SopsError(SecretError):
    """A SOPS document could not be decrypted (bad format, tampered value, MAC mismatch)."""


class SopsKeyError(SopsError):
    """No available key can unwrap the document's data key; the message lists its recipients."""

