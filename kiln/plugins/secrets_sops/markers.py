"""Recognise SOPS documents cheaply, without parsing them (no YAML import on the hot path).

``wants()`` runs on every render, cache hits included, so what it needs lives here rather than
in :mod:`.formats`, which loads PyYAML.
"""

from __future__ import annotations

FORMATS = ("yaml", "json", "dotenv", "ini", "binary")
_EXTENSIONS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".env": "dotenv",
               ".ini": "ini"}

# What Flux looks for in a Secret value's bytes to call it a SOPS document.
MARKERS = (b"mac: ENC[", b'"mac": "ENC[', b"sops_mac=ENC[", b"[sops]")
# Fail closed: ciphertext plus sops metadata is a SOPS document even with its MAC removed.
CIPHERTEXT = b"ENC[AES256_GCM,"
METADATA_MARKERS = (b"sops:", b'"sops":', b"sops_lastmodified=", b"sops_version=")
METADATA_KEYS = frozenset({"mac", "lastmodified", "version", "key_groups", "age", "kms",
                           "gcp_kms", "azure_kv", "hc_vault", "pgp", "hckms"})
"""Keys of a ``sops`` map: any of them makes an object a SOPS document (Flux asks for ``mac``
only, so an object whose MAC was removed would pass through encrypted)."""


def format_for_name(name: str) -> str:
    """The format Flux (and sops) infer from a file or key name: by extension, else binary."""
    lower = name.lower()
    if lower.endswith(".dockerconfigjson"):
        return "json"
    for ext, fmt in _EXTENSIONS.items():
        if lower.endswith(ext):
            return fmt
    return "binary"


def looks_encrypted(data: bytes) -> bool:
    """Flux's cheap test (a SOPS MAC marker of any format), or ciphertext next to sops
    metadata: a document whose MAC was removed is still one (and is refused, fail closed)."""
    if any(marker in data for marker in MARKERS):
        return True
    return CIPHERTEXT in data and any(marker in data for marker in METADATA_MARKERS)


def is_sops_metadata(value: object) -> bool:
    """Whether a top-level ``sops`` value is sops metadata (a map with any sops key)."""
    return isinstance(value, dict) and not METADATA_KEYS.isdisjoint(value)
