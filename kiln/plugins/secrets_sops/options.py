"""The ``secrets.sops`` section of kiln.yaml."""

from __future__ import annotations

from types import MappingProxyType

from kiln.core.app import Options
from kiln.core.trust import Guard

MAX_FILE_BYTES = 5 << 20
"""Flux's per-file cap on encrypted documents (5 MiB)."""


class SopsOptions(Options, frozen=True):
    """Options of the SOPS resolver (``secrets.sops:``; ``-O secrets.sops.KEY=VALUE``).

    ``ageKeys`` holds age identities inline (prefer a file or the environment);
    ``ageKeyFile`` is an age keys file; ``keySecretFile`` a Kubernetes Secret manifest shaped like
    Flux's ``spec.decryption.secretRef`` (``*.agekey`` entries, ``sops.aws-kms``). Relative paths
    are taken from the app directory. ``ignoreMac`` skips MAC verification (Flux's behaviour);
    ``inProcess: false`` sends every document through the sops binary; ``maxFileBytes`` caps each
    encrypted document.

    ``ageKeyFile`` and ``keySecretFile`` name files read as credentials: only the operator sets
    them (``-O secrets.sops.ageKeyFile=...``, or ``SOPS_AGE_KEY_FILE``); from kiln.yaml they are
    refused, allowed or not (:mod:`kiln.core.trust`).
    """

    guarded = MappingProxyType({"ageKeyFile": Guard.FILE, "keySecretFile": Guard.FILE})

    age_keys: list[str] = []
    age_key_file: str = ""
    key_secret_file: str = ""
    ignore_mac: bool = False
    in_process: bool = True
    max_file_bytes: int = MAX_FILE_BYTES
    timeout: float = 30.0
