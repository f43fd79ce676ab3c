"""Turn go-jsonnet's multi-line error text into kiln's one-line ``file:line:col: problem``."""

from __future__ import annotations

import re

_LOC = r"(?:\d+:\d+(?:-\d+)?|\(\d+:\d+\)-\(\d+:\d+\))"
_STATIC = re.compile(rf"^(?P<loc>\S.*?:{_LOC}) (?P<msg>.*)$")
_FRAME = re.compile(rf"^\t(?P<loc>[^\t<][^\t]*?:{_LOC})(?:\t|$)")
_RUNTIME = "RUNTIME ERROR: "
_IMPORTER = "importer error: "
_NATIVE_FAILED = "failed to execute native callback"
_STACK = "max stack frames exceeded"


def describe(text: str, *, native_error: str | None = None, max_stack: int = 0
             ) -> tuple[str | None, str]:
    """Return ``(location, message)`` for a go-jsonnet error.

    ``location`` is ``file:line:col`` of the innermost frame in a real file (None when the
    text carries none). ``native_error`` replaces go-jsonnet's opaque "failed to execute native
    callback" with what the native function reported.
    """
    lines = text.strip("\n").splitlines() or ["evaluation failed"]
    first = lines[0].strip()
    if first.startswith(_RUNTIME):
        message = first[len(_RUNTIME):]
        location = None
        for line in lines[1:]:
            frame = _FRAME.match(line)
            if frame:
                location = frame.group("loc")
                break
        if message.startswith(_IMPORTER):
            message = message[len(_IMPORTER):]
        if native_error and message.startswith(_NATIVE_FAILED):
            message = native_error
        nested = _STATIC.match(message)
        if nested:  # a syntax error in an imported file: its own location is the useful one
            return nested.group("loc"), nested.group("msg")
        if message.startswith(_STACK):
            message = (f"{message.rstrip('.')} (infinite recursion? the limit is jsonnet.maxStack"
                       f"={max_stack})" if max_stack else message)
        return location, message
    static = _STATIC.match(first)
    if static:
        return static.group("loc"), static.group("msg")
    return None, first
