"""Running git for the git sources: a fixed, safe command line and an operator-only environment.

Every git process kiln starts here:

- gets ``-c core.hooksPath=/dev/null`` (no hook ever runs), ``protocol.allow=never`` with only
  https, http, ssh, git and file allowed (``ext::`` and every other remote helper refused by
  git itself, whatever the URL check let through), ``core.fsmonitor=false`` and
  ``gc.auto=0`` (no background work in a mirror other requests read);
- runs in the operator's environment (``env`` given to :class:`GitRunner`, by default kiln's
  own), without the variables that would point git at another repository (``GIT_DIR``,
  ``GIT_WORK_TREE``, ``GIT_OBJECT_DIRECTORY``...), with ``GIT_TERMINAL_PROMPT=0``,
  ``GIT_PROTOCOL_FROM_USER=0``, ``GIT_ALLOW_PROTOCOL`` set to the five transports and
  ``LC_ALL=C``; credentials reach git only from there (credential helpers and git config,
  ``GIT_ASKPASS``, ``GIT_SSH_COMMAND``, ssh keys), never from a request;
- runs in its own session (no controlling terminal: nothing can prompt), stdin closed unless
  kiln feeds it, and its whole process group is killed when the operator's timeout passes
  (SIGTERM, SIGKILL 1 s later) or the caller's :class:`~kiln.core.deadline.Deadline` passes
  or is cancelled;
- fails as one line: :class:`GitTimeout`, the deadline's own error, or the caller's choice of
  error class with git's last ``fatal:``/``error:`` line, credentials masked.

Values reach git as values: a repository URL only after :func:`kiln.gitsource.urls.
normalize_url` and after ``--``; a revision only as a validated hex object id or a ref name
git itself advertised.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from kiln.core.redact import mask_credentials
from kiln.gitsource.errors import GitRemoteError, GitSourceError, GitTimeout

if TYPE_CHECKING:
    from kiln.core.deadline import Deadline

log = logging.getLogger("kiln.gitsource")

KILL_GRACE = 1.0
"""Seconds between SIGTERM and SIGKILL for a git process whose time is up."""
TRANSPORTS = ("https", "http", "ssh", "git", "file")
"""The only transports git may use."""
DROPPED_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
               "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE",
               "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM",
               "GIT_REPLACE_REF_BASE", "GIT_NO_REPLACE_OBJECTS", "GIT_SHALLOW_FILE",
               "GIT_QUARANTINE_PATH", "GIT_EXEC_PATH", "GIT_TEMPLATE_DIR",
               "GIT_PROTOCOL_FROM_USER", "GIT_ALLOW_PROTOCOL", "GIT_TERMINAL_PROMPT")
"""Operator variables never passed on: they would make git read another repository, run
other programs as git's own, or widen the transports."""
STDERR_TAIL = 4000
_GENERIC = ("could not read from remote repository", "the remote end hung up")
"""git's closing lines that say nothing of the cause (the line before them does)."""


def _config() -> list[str]:
    pairs = ["core.hooksPath=/dev/null", "core.fsmonitor=false", "gc.auto=0",
             "maintenance.auto=false", "protocol.allow=never", "core.logAllRefUpdates=false",
             "fetch.writeCommitGraph=false", "credential.interactive=never"]
    pairs += [f"protocol.{name}.allow=always" for name in TRANSPORTS]
    out: list[str] = []
    for pair in pairs:
        out += ["-c", pair]
    return out


def git_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment git runs in: the operator's ``env`` without :data:`DROPPED_ENV`, with
    prompts off, only :data:`TRANSPORTS` allowed and messages in English (``LC_ALL=C``: kiln
    reads them)."""
    child = {k: v for k, v in env.items() if k not in DROPPED_ENV}
    child.update({"GIT_TERMINAL_PROMPT": "0", "GIT_PROTOCOL_FROM_USER": "0",
                  "GIT_ALLOW_PROTOCOL": ":".join(TRANSPORTS), "LC_ALL": "C",
                  "GCM_INTERACTIVE": "never"})
    return child


def last_line(stderr: bytes) -> str:
    """git's first telling ``fatal:`` / ``error:`` line of ``stderr`` (else its last line),
    one line, credentials masked."""
    text = mask_credentials(stderr.decode("utf-8", "replace").strip()[-STDERR_TAIL:])
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.lower().startswith(("fatal", "error"))]
    specific = [ln for ln in errors if not any(g in ln.lower() for g in _GENERIC)]
    errors = specific or errors
    chosen = errors[0] if errors else (lines[-1] if lines else "failed with no message")
    return " ".join(chosen.split())[:500]


class Running:
    """A started git process whose time is bounded: killed (whole group) when the timeout
    passes or the deadline passes or is cancelled. Use as a context manager; read
    :attr:`stdout` inside it; :meth:`finish` checks how it ended."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str], timeout: float,
                 deadline: Deadline | None, what: str, source: str,
                 stdin: bool = False) -> None:
        self.what = what
        self.source = source
        self.deadline = deadline
        self.timeout = timeout
        limit = deadline.cap(timeout) if deadline is not None else timeout
        if deadline is not None:
            deadline.check(what)
        try:
            self.proc = subprocess.Popen(
                list(argv), env=dict(env), start_new_session=True,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise GitRemoteError(f"cannot run git: {exc.strerror or exc}", source=source
                                 ) from None
        self.killed: str | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(limit, self._expire)
        self._timer.daemon = True
        self._timer.start()
        self._unregister = (deadline.on_cancel(lambda: self.kill("cancelled"))
                            if deadline is not None else None)
        self._stderr: list[bytes] = []
        self._err_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._err_thread.start()
        self.on_exit: Callable[[Running], None] | None = None

    @property
    def stdout(self) -> IO[bytes]:
        """The process's standard output."""
        assert self.proc.stdout is not None
        return self.proc.stdout

    @property
    def stdin(self) -> IO[bytes]:
        """The process's standard input (only when started with ``stdin=True``)."""
        assert self.proc.stdin is not None
        return self.proc.stdin

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        size = 0
        for chunk in iter(lambda: self.proc.stderr.read(8192), b""):  # type: ignore[union-attr]
            size += len(chunk)
            self._stderr.append(chunk)
            while size > 4 * STDERR_TAIL and len(self._stderr) > 1:
                size -= len(self._stderr.pop(0))

    def _expire(self) -> None:
        self.kill("timeout")

    def kill(self, why: str) -> None:
        """SIGTERM the process group now, SIGKILL it :data:`KILL_GRACE` seconds later (never
        blocks: the caller may be a deadline's cancelling thread)."""
        with self._lock:
            if self.killed is not None or self.proc.returncode is not None:
                return
            self.killed = why
        self._signal(signal.SIGTERM)
        timer = threading.Timer(KILL_GRACE, self._signal, (signal.SIGKILL,))
        timer.daemon = True
        timer.start()

    def _signal(self, sig: int) -> None:
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        if self._unregister is not None:
            self._unregister()
        if exc[0] is not None and self.proc.returncode is None and self.proc.poll() is None:
            self.kill("error")
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            self.proc.wait(timeout=KILL_GRACE * 3 + 5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._err_thread.join(timeout=5)
        if self.killed is not None or exc[0] is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # no child outlives a killed git
        if self.on_exit is not None:
            self.on_exit(self)

    @property
    def stderr(self) -> bytes:
        """What git wrote to stderr (its tail)."""
        return b"".join(self._stderr)

    def finish(self, error: type[GitSourceError] = GitRemoteError) -> None:
        """Wait for the end (the process's stdout must be read or closed); raise the
        deadline's error when it passed or was cancelled, GitTimeout past the timeout,
        ``error`` with git's last line when git failed."""
        self._timer.cancel()
        self.proc.wait()
        self._err_thread.join(timeout=5)
        self.check_killed()
        if self.proc.returncode != 0:
            raise error(f"{self.what} failed: {last_line(self.stderr)}", source=self.source)

    def check_killed(self) -> None:
        """Raise the deadline's error or GitTimeout when the process was killed for time."""
        if self.killed == "cancelled" or (self.killed == "timeout" and self.deadline is not None
                                          and self.deadline.expired()):
            assert self.deadline is not None
            raise self.deadline.error(self.what)
        if self.killed == "timeout":
            raise GitTimeout(f"{self.what} did not finish within {self.timeout:g}s",
                             source=self.source)
        if self.killed == "closed":
            raise GitRemoteError(f"{self.what} was stopped: the server is stopping",
                                 source=self.source)


class GitRunner:
    """Runs git (see the module docstring) for one operator environment and timeout."""

    def __init__(self, env: Mapping[str, str] | None = None, timeout: float = 120.0) -> None:
        self.env = git_environment(os.environ if env is None else env)
        self.timeout = timeout
        found = shutil.which("git", path=self.env.get("PATH"))
        self.binary = found
        self._config = _config()
        self._lock = threading.Lock()
        self._live: set[Running] = set()
        self._closed = False
        self.started = 0
        """git processes started so far."""

    def close(self) -> None:
        """Kill every git process still running and refuse to start more."""
        with self._lock:
            self._closed = True
            live = list(self._live)
        for running in live:
            running.kill("closed")

    def _forget(self, running: Running) -> None:
        with self._lock:
            self._live.discard(running)

    def argv(self, args: Sequence[str], git_dir: Path | None) -> list[str]:
        """The full command line for ``git args`` (in ``git_dir`` when given)."""
        if self.binary is None:
            raise GitRemoteError("git is not installed (needed for git sources)")
        head = [self.binary, *self._config]
        if git_dir is not None:
            head.append(f"--git-dir={git_dir}")
        return [*head, *args]

    def start(self, args: Sequence[str], *, what: str, source: str,
              deadline: Deadline | None, git_dir: Path | None = None,
              stdin: bool = False, timeout: float | None = None) -> Running:
        """Start ``git args``; use the result as a context manager."""
        if self._closed:
            raise GitRemoteError("the git sources are closed (the server is stopping)",
                                 source=source)
        running = Running(self.argv(args, git_dir), env=self.env,
                          timeout=self.timeout if timeout is None else timeout,
                          deadline=deadline, what=what, source=source, stdin=stdin)
        running.on_exit = self._forget
        with self._lock:
            self._live.add(running)
            self.started += 1
            closed = self._closed
        if closed:
            running.kill("closed")
        return running

    def run(self, args: Sequence[str], *, what: str, source: str, deadline: Deadline | None,
            git_dir: Path | None = None, error: type[GitSourceError] = GitRemoteError,
            timeout: float | None = None) -> bytes:
        """Run ``git args`` to the end and return its stdout; raise ``error`` (git failed),
        GitTimeout or the deadline's error, one line naming ``source``."""
        started = time.monotonic()
        with self.start(args, what=what, source=source, deadline=deadline, git_dir=git_dir,
                        timeout=timeout) as running:
            out = running.stdout.read()
            running.finish(error)
        log.debug("%s took %.3fs", what, time.monotonic() - started)
        return out

    def succeeds(self, args: Sequence[str], *, what: str, source: str,
                 deadline: Deadline | None, git_dir: Path | None = None) -> bytes | None:
        """Run ``git args``: its stdout when it exits 0, None when it exits otherwise (a
        timeout or the deadline still raise)."""
        with self.start(args, what=what, source=source, deadline=deadline,
                        git_dir=git_dir) as running:
            out = running.stdout.read()
            running.proc.wait()
            running.check_killed()
            return out if running.proc.returncode == 0 else None

    @contextlib.contextmanager
    def batch(self, git_dir: Path, ids: Sequence[str], *, what: str, source: str,
              deadline: Deadline | None) -> Iterator[Running]:
        """``git cat-file --batch`` fed ``ids`` (one line each, by a writer thread) in
        ``git_dir``: the caller reads the answers from the result's stdout."""
        with self.start(["cat-file", "--batch", "--buffer"], what=what, source=source,
                        deadline=deadline, git_dir=git_dir, stdin=True) as running:
            def feed() -> None:
                try:
                    for start in range(0, len(ids), 512):
                        running.stdin.write("".join(f"{i}\n" for i in ids[start:start + 512]
                                                    ).encode("ascii"))
                    running.stdin.close()
                except (OSError, ValueError):
                    pass  # git went away: the reader sees it

            writer = threading.Thread(target=feed, daemon=True)
            writer.start()
            try:
                yield running
            finally:
                writer.join(timeout=1)


__all__ = ["DROPPED_ENV", "TRANSPORTS", "GitRunner", "Running", "git_environment",
           "last_line"]
