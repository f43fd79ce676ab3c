"""What ``kiln apply`` shows while it works: one line per step on stderr, only on a terminal.

:func:`progress_for` returns a :class:`Progress` that writes to ``stream`` when it is a TTY,
else None (pipes and CI logs get nothing but errors; ``-o json`` is the machine answer). The
lines name objects (``Kind/namespace/name``) and actions, never a field value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from kiln.apply.applier import ApplyReport
    from kiln.apply.staging import Stage

MAX_NAMES = 3


class Progress:
    """Lines on ``stream``: each stage, each object's action, whom an apply waits on, and the
    counts at the end. The waiting line is rewritten in place."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._waiting = False

    def _line(self, text: str) -> None:
        if self._waiting:
            self.stream.write("\r\x1b[K")
            self._waiting = False
        self.stream.write(f"kiln: {text}\n")
        self.stream.flush()

    def stage(self, stage: Stage) -> None:
        """A stage starts."""
        self._line(f"wave {stage.wave} {stage.name}: {len(stage.objects)} object(s)")

    def object(self, ref: str, action: str) -> None:
        """An object was applied, found unchanged, or pruned."""
        if action != "unchanged":
            self._line(f"{ref} {action}")

    def waiting(self, refs: list[str]) -> None:
        """The objects not yet Current (rewritten on each poll)."""
        names = ", ".join(refs[:MAX_NAMES]) + (" ..." if len(refs) > MAX_NAMES else "")
        self.stream.write(f"\r\x1b[Kkiln: waiting on {len(refs)}: {names}")
        self.stream.flush()
        self._waiting = True

    def finished(self, report: ApplyReport) -> None:
        """The counts of a finished apply."""
        what = "would apply" if report.dry_run else "applied"
        self._line(f"{what} {len(report.applied)}, unchanged {len(report.unchanged)}, "
                   f"pruned {len(report.pruned)}, kept {len(report.kept)}")


def progress_for(stream: TextIO) -> Progress | None:
    """A :class:`Progress` on ``stream`` when it is a terminal, else None."""
    isatty = getattr(stream, "isatty", None)
    return Progress(stream) if isatty is not None and isatty() else None
