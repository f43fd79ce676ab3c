"""Recognise SOPS documents cheaply, without parsing them (no YAML import on the hot path).

A file format, not a plugin: the SOPS resolver (whose ``wants()`` runs on every render, cache
hits included) and any renderer that must not feed ciphertext to its tool (kustomize's
``secretGenerator`` sources) use this one test, so they cannot disagree about what is
encrypted.
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


STRUCTURED_MARKERS = MARKERS[:2]
STRUCTURED_METADATA = METADATA_MARKERS[:2]


def looks_encrypted(data: bytes, *, structured: bool = False) -> bool:
    """Flux's cheap test (a SOPS MAC marker of any format), or ciphertext next to sops
    metadata: a document whose MAC was removed is still one (and is refused, fail closed).
    ``structured`` looks for the YAML/JSON forms only (a Kubernetes object file)."""
    markers, metadata = ((STRUCTURED_MARKERS, STRUCTURED_METADATA) if structured
                         else (MARKERS, METADATA_MARKERS))
    if any(marker in data for marker in markers):
        return True
    return CIPHERTEXT in data and any(marker in data for marker in metadata)


def is_sops_metadata(value: object) -> bool:
    """Whether a top-level ``sops`` value is sops metadata (a map with any sops key)."""
    return isinstance(value, dict) and not METADATA_KEYS.isdisjoint(value)
