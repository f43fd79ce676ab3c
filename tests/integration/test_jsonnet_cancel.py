"""A cancelled deadline (a server's client went away) ends a jsonnet evaluation at once: the
worker is killed, the cancellation is the error."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from kiln.core.deadline import Cancelled, Deadline, DeadlineExceeded
from kiln.core.engine import Engine
from tests.helpers import write_tree

SLOW = """\
local count(n, acc) = if n == 0 then acc else count(n - 1, acc + 1) tailstrict;
{
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'slow' },
  data: { n: std.toString(count(1000000000, 0)) },
}
"""


def _workers() -> set[int]:
    """Pids of this process's children (the jsonnet worker among them)."""
    me = os.getpid()
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == me:
            found.add(int(entry))
    return found


@pytest.mark.parametrize("how", ["cancel", "expire"])
def test_the_deadline_ends_a_long_evaluation(tmp_path: Path, how: str) -> None:
    app_dir = write_tree(tmp_path / "app", {"main.jsonnet": SLOW})
    engine = Engine(tmp_path / "cache", env={}, entry_points=False)
    app = engine.load_app(app_dir)
    before = _workers()
    deadline = Deadline(1.0 if how == "expire" else 120)
    if how == "cancel":
        threading.Timer(1.0, deadline.cancel, ("the client cancelled the call",)).start()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        engine.render(app, deadline=deadline)
    assert time.monotonic() - started < 6
    if how == "cancel":
        assert isinstance(caught.value, Cancelled)
        assert "the client cancelled the call" in caught.value.one_line()
    assert "main.jsonnet" in caught.value.one_line()
    end = time.monotonic() + 5
    while _workers() - before and time.monotonic() < end:
        time.sleep(0.05)
    assert not _workers() - before  # the worker is gone
