"""SIGTERM and SIGINT in the middle of a render: kiln stops its tools and removes its private trees.

Argo CD stops an overrunning plugin with SIGTERM (SIGKILL 5 s later). The app is a kustomize
app whose ``secretGenerator`` env file is encrypted by the real sops, so kiln writes the
plaintext into a private build tree on ``/dev/shm``; ``KILN_KUSTOMIZE`` is a slow stand-in for
kustomize that records its PID, its child's PID and the build directory, then waits. The test
checks the plaintext is really in that tree before it signals kiln (the window is real), then
that kiln exits ``128 + signum`` with one line, nothing on stdout, the tool's whole process
group gone, the tree gone and no file under kiln's TMPDIR or ``/dev/shm`` holding the
plaintext. A Jsonnet render is stopped the same way: its evaluation worker must die too.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, write_tree
from tests.integration.sops_helpers import AgeKey, new_age_key, sops_encrypt, sops_env
from tests.secrets_scan import forms

pytestmark = pytest.mark.integration

SHM = Path("/dev/shm")
WRAPPER = """\
#!/bin/bash
# A kustomize that takes its time: answers 'version', else records who it is and waits.
if [ "$1" = version ]; then echo v5.4.3; exit 0; fi
echo "$2" > {marks}/build-dir
sleep 120 &
echo $! > {marks}/sleep.pid
echo $$ > {marks}/wrapper.pid
wait
"""
KUSTOMIZATION = """
    secretGenerator:
    - name: creds
      envs: [creds.env]
"""


@pytest.fixture(scope="module")
def key() -> AgeKey:
    return new_age_key()


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """The content of ``path`` once it is written (kiln must still be running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


def files_holding(dirs: list[Path], value: str) -> list[str]:
    """Every file under ``dirs`` holding ``value`` raw or base64 (files that vanish mid-scan
    or are not ours to read are skipped: other programs share /dev/shm)."""
    needles = forms(value)
    hits = []
    for top in dirs:
        for base, _, names in os.walk(top):
            for name in names:
                path = Path(base, name)
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                if any(n in data for n in needles):
                    hits.append(str(path))
    return hits


def start_kiln(app: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    full = {**env, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "kiln", "generate", "."], cwd=app, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def killer() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a failed test must not leave behind."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_kustomize_build_kills_the_tool_and_removes_the_plaintext_tree(
        tmp_path: Path, key: AgeKey, sig: signal.Signals,
        killer: list[subprocess.Popen[str]]) -> None:
    password = "pw-" + secrets.token_hex(12)
    app = write_tree(tmp_path / "repo", {"app/kustomization.yaml": KUSTOMIZATION}) / "app"
    (app / "creds.env").write_bytes(sops_encrypt(f"PASSWORD={password}\n".encode(), "dotenv",
                                                 tmp_path, "--age", key.recipient))
    marks = tmp_path / "marks"
    marks.mkdir()
    wrapper = tmp_path / "slow-kustomize"
    wrapper.write_text(WRAPPER.format(marks=marks))
    wrapper.chmod(0o755)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = sops_env(key, extra={"KILN_KUSTOMIZE": str(wrapper), "TMPDIR": str(tmpdir),
                               "XDG_CACHE_HOME": str(tmp_path / "xdg-cache")})
    proc = start_kiln(app, env)
    killer.append(proc)

    build_dir = Path(wait_for(marks / "build-dir", proc))
    wrapper_pid = int(wait_for(marks / "wrapper.pid", proc))
    sleep_pid = int((marks / "sleep.pid").read_text())
    # The window is real: the decrypted generator file sits in a private tree in memory.
    work = next(p for p in build_dir.parents if p.name.startswith("kiln-kustomize-"))
    assert work.parent == SHM, build_dir
    assert files_holding([work], password), "the plaintext tree was not there to clean up"

    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert out == ""
    assert err == f"kiln: error: interrupted by {sig.name}\n"
    assert not alive(wrapper_pid) and not alive(sleep_pid)  # the tool's whole group
    assert not work.exists()
    assert files_holding([SHM, tmpdir, tmp_path / "xdg-cache"], password) == []


JSONNET_FOREVER = """
local inner(i) = std.foldl(function(acc, x) acc + x * i, std.range(1, 10000), 0);
local total = std.foldl(function(acc, i) acc + inner(i), std.range(1, 10000), 0);
{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { n: '' + total } }
"""
"""10^8 steps in constant memory: far longer than the test waits."""


def children(pid: int) -> list[int]:
    """The PIDs whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def test_sigterm_mid_jsonnet_evaluation_kills_the_worker(
        tmp_path: Path, killer: list[subprocess.Popen[str]]) -> None:
    app = write_tree(tmp_path / "app", {"main.jsonnet": JSONNET_FOREVER})
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg-cache")}
    proc = start_kiln(app, env)
    killer.append(proc)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while not workers:
        assert time.monotonic() < deadline, "no jsonnet worker started"
        assert proc.poll() is None, proc.communicate()
        workers = children(proc.pid)
        time.sleep(0.05)
    time.sleep(0.5)  # well into the evaluation

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 143, (proc.returncode, err)
    assert out == ""
    assert err == "kiln: error: interrupted by SIGTERM\n"
    assert not any(alive(pid) for pid in workers)


class BlackHole:
    """A Vault that accepts connections and never answers (an overloaded server); counts the
    connections it accepted."""

    def __init__(self) -> None:
        import socket
        import threading

        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.addr = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.accepted: list[Any] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.server.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    try:
        yield hole
    finally:
        hole.close()


def test_sigterm_while_secret_reads_hang_exits_at_once(
        black_hole: BlackHole, killer: list[subprocess.Popen[str]], tmp_path: Path) -> None:
    """Reads run in worker threads: kiln must not wait for them (nor for the reads still
    queued) once interrupted; Argo CD's SIGKILL comes 5 s after its SIGTERM."""
    stream = "".join(
        f"---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s{i}\n"
        f"stringData:\n  k: <path:secret/data/app{i}#k>\n" for i in range(20))
    env = {**os.environ, "AVP_TYPE": "vault", "AVP_AUTH_TYPE": "token", "VAULT_TOKEN": "t",
           "VAULT_ADDR": black_hole.addr, "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
           "PYTHONPATH": str(REPO)}
    (tmp_path / "stream.yaml").write_text(stream)
    proc = subprocess.Popen([sys.executable, "-m", "kiln", "generate", "stream.yaml"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    killer.append(proc)
    deadline = time.monotonic() + 60
    while len(black_hole.accepted) < 2:  # reads are in flight in the worker threads
        assert time.monotonic() < deadline, "kiln never reached the secrets backend"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == 143, (proc.returncode, err)
    assert took < 4, f"kiln took {took:.1f}s to stop"
    assert out == ""
    assert err == "kiln: error: interrupted by SIGTERM\n"
