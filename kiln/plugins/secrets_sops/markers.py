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
    """Flux's cheap test: does a value's content carry a SOPS MAC marker of any format?"""
    return any(marker in data for marker in MARKERS)
