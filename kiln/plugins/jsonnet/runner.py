"""Run one Jsonnet evaluation in a child process with a wall-clock timeout and a memory cap.

The child is forked when that is safe (one Python thread, go-jsonnet not loaded here: the Go
runtime's threads would not survive a fork), else spawned as a fresh interpreter. A fork costs
about a millisecond; go-jsonnet's import is paid in the child either way. The child's stderr
goes to an unnamed temporary file, so a Go runtime crash (its out-of-memory abort) never reaches
kiln's output; the parent reads it only to classify the death.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from kiln.core.errors import InputError, KilnError, RenderError
from kiln.core.toolenv import tool_environment
from kiln.plugins.jsonnet import protocol
from kiln.plugins.jsonnet.worker import serve

if TYPE_CHECKING:
    from kiln.core.deadline import Deadline

log = logging.getLogger("kiln.jsonnet")

HelmHandler = Callable[[dict[str, Any]], list[dict[str, Any]]]

_SPAWN_BOOT = ("import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
               "from kiln.plugins.jsonnet.worker import main; main(int(sys.argv[2]), "
               "int(sys.argv[3]))")
CPU_FACTOR = 4
CANCEL_POLL = 0.2
"""Seconds between checks of the command's deadline while the worker evaluates."""
_OOM_MARKS = ("out of memory", "cannot allocate memory", "failed to reserve",
              "failed to create new OS thread")


class _Child:
    """A started worker: forked (``pid``) or spawned (``proc``)."""

    def __init__(self, pid: int | None = None, proc: subprocess.Popen[bytes] | None = None):
        self.pid = pid
        self.proc = proc
        self.status: int | None = None

    def kill(self) -> None:
        """SIGKILL the worker (no-op once reaped)."""
        if self.status is not None:
            return
        if self.proc is not None:
            self.proc.kill()
        elif self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def wait(self) -> int:
        """Reap the worker and return its wait status as a returncode (-N for signal N)."""
        if self.status is None:
            if self.proc is not None:
                self.status = self.proc.wait()
            else:
                assert self.pid is not None
                _, raw = os.waitpid(self.pid, 0)
                self.status = os.waitstatus_to_exitcode(raw)
        return self.status


def can_fork() -> bool:
    """True when forking is safe: one Python thread and no Go runtime in this process."""
    return (hasattr(os, "fork") and threading.active_count() == 1
            and "_gojsonnet" not in sys.modules)


def evaluate(request: dict[str, Any], *, timeout: float, source: str,
             on_helm: HelmHandler, start: str = "auto",
             deadline: Deadline | None = None) -> dict[str, Any]:
    """Evaluate ``request`` in a worker and return its ``done`` frame (``json``, ``loaded``).

    ``timeout`` bounds the evaluation's wall-clock time, not counting time spent in ``on_helm``
    (nested Helm renders, which have their own timeout). ``deadline`` (the command's or a
    server request's) also ends it: when it passes or is cancelled the worker is killed within
    :data:`CANCEL_POLL` seconds and its error raised. ``start`` is ``fork``, ``spawn`` or
    ``auto``. Raises InputError or RenderError with one line naming ``source`` or the Jsonnet
    location.
    """
    use_fork = can_fork() if start == "auto" else start == "fork"
    # The CPU backstop only matters if kiln dies and leaves the worker behind: Go's GC threads
    # may burn more CPU than wall-clock time, hence the generous factor.
    request = {**request, "cpuSeconds": CPU_FACTOR * timeout + 10}
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    child: _Child | None = None
    try:
        if use_fork:
            child = _fork(to_child_r, from_child_w, stderr, (to_child_w, from_child_r))
        else:
            child = _spawn(to_child_r, from_child_w, stderr)
        os.close(to_child_r)
        os.close(from_child_w)
        to_child_r = from_child_w = -1
        return _converse(child, request, to_child_w, from_child_r, stderr,
                         timeout=timeout, source=source, on_helm=on_helm,
                         max_memory=int(request["maxMemory"]), bound=deadline)
    finally:
        if child is not None:
            child.kill()
            child.wait()
        for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
            if fd >= 0:
                os.close(fd)
        stderr.close()


def _fork(rfd: int, wfd: int, stderr: IO[bytes], parent_ends: tuple[int, int]) -> _Child:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which always leaves via _exit
        try:
            for fd in parent_ends:  # so the child sees EOF if kiln goes away
                os.close(fd)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            os.dup2(devnull, 1)
            os.dup2(stderr.fileno(), 2)
            _confine_environment()
            serve(rfd, wfd)
        finally:
            os._exit(0)
    return _Child(pid=pid)


def _confine_environment() -> None:  # pragma: no cover - runs in the forked child
    """Drop from the worker's environment what a tool must not see (kiln.core.toolenv)."""
    keep = tool_environment(os.environ)
    for name in [n for n in os.environ if n not in keep]:
        del os.environ[name]


def _worker_path() -> list[str]:
    """The spawned worker's ``sys.path``: this process's, plus the directory kiln itself was
    imported from (``-S`` leaves out the ``.pth`` import hooks of an editable install, which
    would otherwise hide kiln from the worker)."""
    import kiln

    home = os.path.dirname(os.path.dirname(os.path.abspath(kiln.__file__)))
    return [*sys.path, home] if home not in sys.path else list(sys.path)


def _spawn(rfd: int, wfd: int, stderr: IO[bytes]) -> _Child:
    argv = [sys.executable, "-I", "-S", "-c", _SPAWN_BOOT, json.dumps(_worker_path()), str(rfd),
            str(wfd)]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=stderr, pass_fds=(rfd, wfd), start_new_session=True,
                                env=tool_environment(os.environ))
    except OSError as exc:
        raise RenderError(f"cannot start the jsonnet worker: {exc.strerror}") from None
    return _Child(proc=proc)


def _converse(child: _Child, request: dict[str, Any], wfd: int, rfd: int, stderr: IO[bytes],
              *, timeout: float, source: str, on_helm: HelmHandler,
              max_memory: int, bound: Deadline | None = None) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + timeout
    try:
        protocol.send(wfd, request)
    except OSError:
        raise _death(child, stderr, source, max_memory) from None
    reader = protocol.FrameReader()
    while True:
        message = reader.next()
        if message is None:
            if bound is not None and bound.expired():
                child.kill()
                raise bound.error(f"evaluating {source}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                child.kill()
                raise RenderError(f"jsonnet evaluation timed out after {timeout:g}s "
                                  "(jsonnet.timeout)", source=source)
            if bound is not None:
                remaining = max(0.001, min(remaining, bound.remaining(), CANCEL_POLL))
            ready, _, _ = select.select([rfd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(rfd, 1 << 20)
            if not chunk:
                raise _death(child, stderr, source, max_memory)
            reader.feed(chunk)
            continue
        op = message.get("op")
        if op == "helm":
            paused = time.monotonic()
            reply = _nested_helm(on_helm, message)
            deadline += time.monotonic() - paused
            try:
                protocol.send(wfd, reply)
            except OSError:
                raise _death(child, stderr, source, max_memory) from None
            continue
        child.wait()
        log.debug("jsonnet worker finished in %.1f ms", (time.monotonic() - started) * 1000)
        if op == "done":
            return dict(message)
        raise _error_from(message, source, max_memory)


def _nested_helm(on_helm: HelmHandler, message: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"objects": on_helm(message)}
    except KilnError as exc:
        return {"error": exc.one_line()}


def _error_from(message: dict[str, Any], source: str, max_memory: int) -> KilnError:
    kind = message.get("kind")
    if kind == "memory":
        return RenderError(_memory_text(max_memory), source=source)
    text = str(message.get("message") or "evaluation failed")
    where = message.get("source") or source
    if kind == "input":
        return InputError(text, source=where)
    return RenderError(text, source=where)


def _memory_text(max_memory: int) -> str:
    return (f"jsonnet evaluation exceeded the memory limit of {max_memory >> 20} MiB "
            "(jsonnet.maxMemoryBytes)")


def _death(child: _Child, stderr: IO[bytes], source: str, max_memory: int) -> KilnError:
    code = child.wait()
    stderr.seek(0)
    text = stderr.read(1 << 16).decode("utf-8", "replace")
    if any(mark in text for mark in _OOM_MARKS):
        return RenderError(_memory_text(max_memory), source=source)
    if code == -signal.SIGXCPU:
        return RenderError("jsonnet evaluation used up its CPU-time backstop "
                           "(jsonnet.timeout)", source=source)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    how = f"signal {-code}" if code < 0 else f"exit status {code}"
    # the last line says what went wrong (a traceback's first line only says "Traceback")
    detail = f": {lines[-1]}" if lines else ""
    return RenderError(f"the jsonnet worker died ({how}){detail}", source=source)
