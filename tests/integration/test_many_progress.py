"""The progress display of a many-apps render on a real pseudo-terminal: it shows apps done /
total on stderr, and stdout (a pipe) gets exactly the stream a run without a terminal prints."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.helpers import REPO, run_kiln
from tests.integration.many_repo import make_repo

pytestmark = pytest.mark.integration


def _read_all(fd: int, proc: subprocess.Popen[bytes]) -> bytes:
    data = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the other end closed
                break
            if not chunk:
                break
            data += chunk
        elif proc.poll() is not None:
            break
    return data


def _on_a_terminal(root: Path, *args: str) -> tuple[int, bytes, bytes]:
    """Run kiln with stderr on a pseudo-terminal and stdout on a pipe."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "kiln", *args], cwd=root, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    try:
        terminal = _read_all(master, proc)
        out = proc.stdout.read() if proc.stdout else b""
        proc.wait(timeout=120)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, terminal


def test_a_terminal_shows_done_over_total_and_stdout_is_only_the_stream(tmp_path: Path
                                                                         ) -> None:
    root = tmp_path / "repo"
    apps = [a.path for a in make_repo(root, {"directory": 2, "helm": 1})]
    code, out, terminal = _on_a_terminal(root, "render", *apps, "--cache-dir",
                                         str(tmp_path / "c1"))
    assert code == 0, terminal
    assert b"3/3 apps" in terminal, terminal
    piped = run_kiln("render", *apps, "--cache-dir", str(tmp_path / "c2"), cwd=root)
    assert piped.returncode == 0 and piped.stderr == ""  # no terminal: no display at all
    assert out.decode() == piped.stdout
    quiet_code, quiet_out, quiet_terminal = _on_a_terminal(
        root, "render", "-q", *apps, "--cache-dir", str(tmp_path / "c1"))
    assert quiet_code == 0 and quiet_out == out
    assert quiet_terminal == b""
