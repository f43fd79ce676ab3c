"""ToolVersions shared by concurrent renders (a server's threads): every answer right, the memo
file whole afterwards."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from kiln.core.tools import ToolVersions

ECHO = "/bin/echo"


def test_concurrent_asks_all_get_their_own_answer_and_the_memo_file_stays_valid(
        tmp_path: Path) -> None:
    versions = ToolVersions(tmp_path)
    answers: dict[int, str] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(12)

    def ask(n: int) -> None:
        barrier.wait(10)
        for round_ in range(3):  # the first asks run echo, later ones hit the memo
            got = versions.get(ECHO, [f"version-{n}"], env={"PATH": "/usr/bin:/bin"})
            with lock:
                assert answers.setdefault(n, got) == got, round_

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers == {n: f"version-{n}" for n in range(12)}
    memo = json.loads((tmp_path / "tool-versions.json").read_text())
    assert sorted(memo.values()) == sorted(f"version-{n}" for n in range(12))
    assert [p.name for p in tmp_path.iterdir()] == ["tool-versions.json"]  # no temporary left
    # A fresh instance (the next process) answers from the file without running anything.
    again = ToolVersions(tmp_path)
    assert again.get(ECHO, ["version-3"]) == "version-3"
