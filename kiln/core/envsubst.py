"""Argo CD's environment substitution for option values (``$VAR``, ``${VAR}``, ``$$`` escapes).

Argo CD expands option values (Helm parameters, value-file paths, kustomize images, jsonnet
variables) against the build environment with Go's ``os.Expand``: an unknown variable becomes
the empty string and ``$$`` stands for a literal ``$``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_VAR = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z0-9_]+)|(\$))")


def envsubst(text: str, env: Mapping[str, str]) -> str:
    """Expand ``$NAME`` and ``${NAME}`` from ``env`` (unknown names become ''); ``$$`` is ``$``."""
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if match.group(3):
            return "$"
        return env.get(match.group(1) or match.group(2) or "", "")

    return _VAR.sub(replace, text)


def referenced(text: str) -> set[str]:
    """The variable names ``text`` references as ``$NAME`` or ``${NAME}`` (``$$`` is not one)."""
    if "$" not in text:
        return set()
    return {m.group(1) or m.group(2) for m in _VAR.finditer(text) if not m.group(3)} - {""}
