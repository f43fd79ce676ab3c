"""Shared fixtures: an isolated cache directory, a CLI runner, and tool lookups that fail loudly.

A tool that is missing is a test *failure*, never a skip: CI installs every tool the suite uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A fresh, empty kiln cache directory for one test."""
    path = tmp_path / "kiln-cache"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Keep tests away from the user's real cache and plugin settings."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for var in ("KILN_CACHE_DIR", "KILN_DISABLE_PLUGINS", "KILN_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    yield
