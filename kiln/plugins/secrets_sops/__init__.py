"""SOPS decryption with Flux semantics: age and AWS KMS in-process, other keys via ``sops``.

See :mod:`kiln.plugins.secrets_sops.resolver` for what is decrypted and
:mod:`kiln.plugins.secrets_sops.api` for the in-memory API renderers can call.
"""

from __future__ import annotations

from kiln.core.faces import Faces, Flag, with_faces
from kiln.core.hookspecs import hookimpl
from kiln.core.registry import ResolverRegistry
from kiln.plugins.secrets_sops.options import SopsOptions
from kiln.plugins.secrets_sops.resolver import SopsResolver

__all__ = ["FACES", "SopsOptions", "SopsResolver"]

FACES = Faces(
    flags=(
        Flag(("--sops-ignore-mac",), "secrets.sops.ignoreMac", "bool",
             help="SOPS: skip the MAC check."),
    ),
    tools=("sops",),
)
"""The SOPS resolver's flag and tool."""


@hookimpl
def kiln_register_secret_resolvers(registry: ResolverRegistry) -> None:
    """Register the ``sops`` resolver (order 10: before placeholder resolvers)."""
    registry.add(with_faces(SopsResolver(), FACES))
