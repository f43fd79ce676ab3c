"""Shared fixtures: an isolated cache directory, a CLI runner, and tool lookups that fail loudly.

A tool that is missing is a test *failure*, never a skip: CI installs every tool the suite uses.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CLEARED_PREFIXES = ("KILN_", "VAULT_", "AVP_", "AWS_", "ARGOCD_", "SOPS_", "GOOGLE_", "PARAM_",
                    "HELM_", "KUBE")
"""Settings a CI machine or a developer's shell may carry: none of them may reach a test."""
CLEARED_NAMES = ("KUBECONFIG", "CLOUDSDK_CONFIG", "REDIS_URL")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A fresh, empty kiln cache directory for one test."""
    path = tmp_path / "kiln-cache"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Keep tests away from the user's real cache and every kiln, Vault, AVP, AWS, SOPS and
    Argo CD setting of the machine running them."""
    for var in list(os.environ):
        if var.startswith(CLEARED_PREFIXES) or var in CLEARED_NAMES:
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    yield
