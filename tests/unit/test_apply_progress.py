"""The progress display: on a terminal only, names and actions only."""

from __future__ import annotations

import io

from kiln.apply.applier import ApplyReport
from kiln.apply.progress import progress_for
from kiln.apply.staging import Stage


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_when_not_a_terminal() -> None:
    assert progress_for(io.StringIO()) is None


def test_lines_on_a_terminal() -> None:
    stream = _Tty()
    progress = progress_for(stream)
    assert progress is not None
    progress.stage(Stage(0, "resources", ({"kind": "ConfigMap"},), False))
    progress.object("ConfigMap/n/a", "created")
    progress.object("ConfigMap/n/b", "unchanged")
    progress.waiting(["Deployment/n/a", "Deployment/n/b", "Deployment/n/c", "Job/n/d"])
    progress.finished(ApplyReport(applied=["ConfigMap/n/a"], unchanged=["ConfigMap/n/b"]))
    text = stream.getvalue()
    assert "kiln: wave 0 resources: 1 object(s)\n" in text
    assert "kiln: ConfigMap/n/a created\n" in text
    assert "ConfigMap/n/b" not in text  # unchanged objects are not listed
    assert "\r\x1b[Kkiln: waiting on 4: Deployment/n/a, Deployment/n/b, Deployment/n/c ..." \
        in text
    assert text.endswith("\r\x1b[Kkiln: applied 1, unchanged 1, pruned 0, kept 0\n")
