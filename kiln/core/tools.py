"""Run external tools (helm, kubectl, sops, ...) with a timeout, a clean failure and a version memo.

A timeout kills the tool's whole process group (Argo CD's ARGOCD_EXEC_TIMEOUT semantics: SIGTERM,
then SIGKILL 5 s later). So does any exception while it runs, such as
:class:`kiln.core.interrupt.Interrupted` when kiln itself gets SIGTERM/SIGINT, with a 1 s grace
(Argo CD gives kiln 5 s before its own SIGKILL, and the private trees must still be removed). A
failure becomes a one-line ToolError carrying the tail of the tool's stderr.

Under a :class:`kiln.core.deadline.Deadline` (``run_tool(..., deadline=...)``) the run is also
capped by the time left (when that cuts it short, the group gets the :data:`INTERRUPT_GRACE`
between SIGTERM and SIGKILL), and the tool is registered with the deadline while it runs: when
another thread cancels the deadline (:meth:`Deadline.cancel`), the tool's process group gets
SIGTERM at once and SIGKILL :data:`INTERRUPT_GRACE` seconds later, and ``run_tool`` raises the
deadline's :class:`~kiln.core.deadline.Cancelled` (a passed deadline: DeadlineExceeded), never a
ToolError about the signal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.core.errors import ToolError

if TYPE_CHECKING:
    import subprocess

    from kiln.core.deadline import Deadline

log = logging.getLogger("kiln.tools")

DEFAULT_TIMEOUT = 90.0
KILL_GRACE = 5.0
INTERRUPT_GRACE = 1.0
STDERR_TAIL = 2000


def find_tool(name: str, override_env: str | None = None,
              env: Mapping[str, str] | None = None) -> str:
    """Locate a tool: ``$override_env`` if set, else beside the running Python, else on PATH."""
    env = os.environ if env is None else env
    if override_env and env.get(override_env):
        return env[override_env]
    import sys

    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ToolError(f"{name} not found (install it or set {override_env or 'PATH'})")
    return found


def run_tool(
    argv: Sequence[str],
    *,
    what: str,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: Deadline | None = None,
) -> bytes:
    """Run ``argv`` and return its stdout; raise ToolError naming ``what`` on failure or timeout.

    With ``deadline`` the run is capped by the time left and cancelled with it: the error is
    then the deadline's (DeadlineExceeded, or Cancelled, naming ``running <what>``), and the
    tool's whole process group is gone."""
    import subprocess

    log.debug("running %s", argv[0])
    if deadline is not None:
        deadline.check(f"running {what}")
        timeout = deadline.cap(timeout)
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise ToolError(f"cannot run {argv[0]}: {exc.strerror}", source=what) from None
    unregister = deadline.on_cancel(_Canceller(proc)) if deadline is not None else None
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        if deadline is not None and deadline.expired():
            # The deadline cut it short: the short grace, so kiln's own error still comes
            # before its caller's SIGKILL (and the CLI watchdog).
            _kill_group(proc, INTERRUPT_GRACE)
            raise deadline.error(f"running {what}") from None
        _kill_group(proc)
        raise ToolError(f"{Path(argv[0]).name} timed out after {timeout:g}s", source=what) from None
    except BaseException:
        _kill_group(proc, INTERRUPT_GRACE)
        raise
    finally:
        if unregister is not None:
            unregister()
    if deadline is not None and deadline.cancelled is not None:
        # Cancelled while it ran: whatever the tool answered (likely death by SIGTERM), the
        # run is over; what is left of its group (children that outlived it) goes too.
        _kill_group(proc, 0)
        raise deadline.error(f"running {what}")
    if proc.returncode != 0:
        raise ToolError(tool_message(argv[0], err), source=what)
    return out


class _Canceller:
    """What a cancelled deadline does to a running tool: SIGTERM its process group now and
    SIGKILL it :data:`INTERRUPT_GRACE` seconds later unless the tool was reaped meanwhile (a
    daemon timer: the cancelling thread never waits)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def __call__(self) -> None:
        import signal

        self._signal(signal.SIGTERM)
        timer = threading.Timer(INTERRUPT_GRACE, self._signal, (signal.SIGKILL,))
        timer.daemon = True
        timer.start()

    def _signal(self, sig: int) -> None:
        if self.proc.returncode is not None:
            return  # reaped: its group is handled by run_tool, and the id may be reused
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


def tool_message(tool: str, stderr: bytes) -> str:
    """Turn a tool's stderr into one line: its last meaningful lines, tool name first, with
    credential-shaped text (URL passwords, Authorization headers, tokens) masked."""
    from kiln.core.redact import mask_credentials

    # Masked before the line is chosen, so a private key spread over lines is masked whole.
    text = mask_credentials(stderr.decode("utf-8", "replace").strip()[-STDERR_TAIL:])
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.lower().startswith(("error", "fatal"))]
    chosen = errors[-1] if errors else (lines[-1] if lines else "failed with no message")
    return f"{Path(tool).name}: {chosen}"


def _kill_group(proc: subprocess.Popen[bytes], grace: float = KILL_GRACE) -> None:
    """SIGTERM the tool's process group, SIGKILL what is left of it after ``grace`` seconds (or
    as soon as the tool itself has exited: its children must not outlive it); reap the tool."""
    import signal
    import subprocess

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class ToolVersions:
    """Remember tool versions on disk, keyed by the binary's real path, size and mtime.

    Asking ``helm version`` costs a process; a cache hit must not pay it, so the answer is kept
    in ``<cache_dir>/tool-versions.json`` until the binary changes.
    """

    def __init__(self, directory: Path | None) -> None:

        self._file = directory / "tool-versions.json" if directory else None
        self._memo: dict[str, str] | None = None
        # One memo shared by a server's concurrent renders: reads, updates and the file write
        # hold the lock; running the tool does not (two threads may ask it at once: harmless).
        self._lock = threading.Lock()

    def _load(self) -> dict[str, str]:
        """The memo, read from the file on first use (the lock is held)."""
        if self._memo is None:
            memo: dict[str, str] = {}
            if self._file is not None:
                try:
                    loaded = json.loads(self._file.read_text())
                except (OSError, ValueError):
                    loaded = {}
                if isinstance(loaded, dict):
                    memo = {str(k): str(v) for k, v in loaded.items()}
            self._memo = memo
        return self._memo

    def get(self, binary: str, args: Sequence[str], *, env: Mapping[str, str] | None = None,
            timeout: float = 30.0) -> str:
        """Return the stripped stdout of ``binary args``, memoised while the binary is unchanged.

        The tool runs with the allowlisted part of ``env`` (:mod:`kiln.core.toolenv`).
        """
        real = os.path.realpath(binary)
        try:
            st = os.stat(real)
        except OSError:
            raise ToolError(f"{binary} not found") from None
        ident = f"{real}|{st.st_size}|{st.st_mtime_ns}|{' '.join(args)}"
        key = hashlib.sha256(ident.encode()).hexdigest()[:32]
        with self._lock:
            known = self._load().get(key)
        if known is not None:
            return known
        from kiln.core.toolenv import tool_environment

        child = tool_environment(os.environ if env is None else env)
        out = run_tool([binary, *args], what=binary, env=child, timeout=timeout)
        value = out.decode("utf-8", "replace").strip()
        with self._lock:
            self._load()[key] = value
            self._save()
        return value

    def _save(self) -> None:
        """Write the memo atomically (the lock is held; a private temporary name, so two
        processes sharing the cache directory never write into one file)."""
        if self._file is None or self._memo is None:
            return
        import tempfile

        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self._file.name}.", dir=self._file.parent)
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(json.dumps(self._memo))
                os.replace(tmp, self._file)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            log.debug("cannot save tool versions: %s", exc)

