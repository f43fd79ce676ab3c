"""Fixtures the fuzz modules share."""

from __future__ import annotations

import pytest

from kiln.core.engine import Engine


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """An engine with no cache, no entry points and an empty environment."""
    return Engine(tmp_path_factory.mktemp("cache"), use_cache=False, entry_points=False, env={})
