"""Shared helpers for the external_secrets integration tests: app directories, CLI runs, YAML.

Not a test module. ``write_app`` lays manifests (and an optional kiln.yaml) out as a directory
app; ``kiln`` runs the real CLI with the test's cache directory, so every resolving test leaves
a cache for the plaintext scan to read.
"""

from __future__ import annotations

import base64
import os
import secrets as pysecrets
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import run_kiln

AMBIENT_PREFIXES = ("VAULT_", "AVP_", "ARGOCD_ENV_", "BAO_", "AWS_", "GOOGLE_", "KILN_GCP",
                    "KILN_EXTERNAL_SECRETS", "KILN_SECRET_STORE")


def clear_ambient(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every variable that would point kiln at a real backend."""
    for var in list(os.environ):
        if var.startswith(AMBIENT_PREFIXES):
            monkeypatch.delenv(var)


def unique(name: str) -> str:
    """``name`` with a random suffix (server state is shared by a session)."""
    return f"{name}-{pysecrets.token_hex(5)}"


def secret(name: str, **string_data: str) -> dict[str, Any]:
    """A Secret manifest named ``name`` holding ``string_data``."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "stringData": string_data}


def write_app(root: Path, manifests: Sequence[Mapping[str, Any]],
              settings: Mapping[str, Any] | None = None, name: str = "app") -> Path:
    """Write a directory app holding ``manifests`` (one file) and ``settings`` as kiln.yaml."""
    app = root / name
    app.mkdir(parents=True, exist_ok=True)
    (app / "manifests.yaml").write_text(yaml.safe_dump_all(list(manifests), sort_keys=False))
    if settings is not None:
        (app / "kiln.yaml").write_text(yaml.safe_dump(dict(settings), sort_keys=False))
    return app


def kiln(command: str, app: Path | str, tmp_path: Path, env: Mapping[str, str],
         *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``kiln COMMAND APP`` with the test's cache directory."""
    return run_kiln(command, str(app), "--cache-dir", str(tmp_path / "kiln-cache"), *args,
                    env=dict(env), stdin=stdin)


def docs(text: str) -> list[dict[str, Any]]:
    """Parse a YAML stream."""
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(objects: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    """Objects of ``kind``."""
    return [o for o in objects if o.get("kind") == kind]


def secret_values(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """A Secret's effective key/value bytes: ``data`` decoded, ``stringData`` over it."""
    out = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    out.update({k: str(v).encode() for k, v in (secret.get("stringData") or {}).items()})
    return out


def b64(value: str | bytes) -> str:
    """Standard base64 of ``value``."""
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()
