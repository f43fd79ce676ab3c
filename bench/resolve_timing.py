"""Shared by the secrets benchmarks: time kiln's secrets stage at a chosen concurrency.

Not a benchmark itself. The benchmarks put the repository on ``sys.path`` before importing it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any

from kiln.core.engine import Engine


def timed_resolve(env: dict[str, str], stream: Callable[[], list[dict[str, Any]]],
                  concurrency: int) -> tuple[float, list[dict[str, Any]]]:
    """Run ``Engine.resolve`` on a fresh ``stream()`` with ``concurrency`` parallel reads (a
    throwaway cache); return the seconds it took and the resolved objects."""
    with tempfile.TemporaryDirectory() as cache:
        engine = Engine(cache_dir=cache, env=env, entry_points=False)
        original = engine.secret_context

        def context(app: Any, *args: Any) -> Any:
            ctx = original(app, *args)
            ctx.concurrency = concurrency
            return ctx

        engine.secret_context = context  # type: ignore[method-assign]
        objects = stream()
        started = time.perf_counter()
        out = engine.resolve(objects)
        return time.perf_counter() - started, out
