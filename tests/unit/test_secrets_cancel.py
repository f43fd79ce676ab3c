"""A cancelled deadline (a server's client went away) ends secret reads at once, not after the
backend's own timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from kiln.core.deadline import Cancelled, Deadline
from kiln.core.secrets import FetchPolicy, ReadKey, fetch_all


class _HangingBackend:
    """A backend whose reads never answer (a Vault behind a dead network path)."""

    name = "hanging"

    def __init__(self) -> None:
        self.release = threading.Event()

    def open(self) -> None:
        return None

    def read(self, key: ReadKey) -> Mapping[str, Any]:
        self.release.wait(30)
        return {"value": "never"}


def test_a_cancel_ends_pending_reads_with_the_cancellation() -> None:
    backend = _HangingBackend()
    deadline = Deadline(60)
    policy = FetchPolicy(concurrency=2, timeout=30, retries=0, deadline=deadline)
    threading.Timer(0.3, deadline.cancel, ("the client cancelled the call",)).start()
    started = time.monotonic()
    try:
        with pytest.raises(Cancelled) as caught:
            fetch_all(backend, [ReadKey("secret/a"), ReadKey("secret/b")], policy)
    finally:
        backend.release.set()
    assert time.monotonic() - started < 5
    assert "the client cancelled the call" in caught.value.one_line()
