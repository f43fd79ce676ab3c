"""``kiln apply`` on the command line without a cluster: flags, clean failures, and the
promise that ``kiln render`` never imports the ``kubernetes`` client."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.apply.commands import parse_duration
from kiln.core.errors import UsageError
from tests.helpers import REPO, assert_clean_failure, run_kiln

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    (path / "a.yaml").write_text(CM.format("a"))
    return path


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0), ("250ms", 0.25),
    ("1.5m", 90.0), ("0", 0.0)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "m5", "-1", "5m-", "inf", "nan", "1h 2m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError, match="--timeout"):
        parse_duration(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_duration_parser_fuzz(text: str) -> None:
    with contextlib.suppress(UsageError):
        assert parse_duration(text) >= 0


_PROBE = """
import json, sys
from kiln.entry import main
try:
    main(sys.argv[2:])
finally:
    loaded = [m for m in sys.modules if m.split(".")[0] in ("kubernetes", "urllib3")
              or m.startswith("kiln.apply")]
    with open(sys.argv[1], "w") as out:
        json.dump(sorted(loaded), out)
"""


def test_render_never_imports_the_kubernetes_client(app: Path, tmp_path: Path) -> None:
    """A full-CLI render (no fast path) loads every command face, apply's included, and
    still imports nothing of ``kubernetes`` (nor its urllib3)."""
    import json
    import subprocess

    env = {**os.environ, "KILN_CMP_FASTPATH": "0",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    report = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(report), "render", str(app),
                           "--cache-dir", str(tmp_path / "c")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "kind: ConfigMap" in proc.stdout
    loaded = json.loads(report.read_text())
    assert "kiln.apply.commands" in loaded  # the face was loaded ...
    assert [m for m in loaded if not m.startswith("kiln.")] == []  # ... and nothing else


def test_apply_help_lists_the_flags() -> None:
    proc = run_kiln("apply", "--help")
    assert proc.returncode == 0, proc.stderr
    for flag in ("--kubeconfig", "--context", "--field-manager", "--dry-run", "--prune",
                 "--force-conflicts", "--wait", "--timeout", "--applyset", "--output",
                 "--namespace", "--source-root"):
        assert flag in proc.stdout


def test_no_kubeconfig_is_one_line(app: Path, tmp_path: Path, cache_dir: Path) -> None:
    missing = tmp_path / "nope"
    proc = run_kiln("apply", str(app), "--cache-dir", str(cache_dir),
                    env={"KUBECONFIG": str(missing), "KUBERNETES_SERVICE_HOST": ""})
    assert_clean_failure(proc, "no kubeconfig found", str(missing))
    proc = run_kiln("apply", str(app), "--kubeconfig", str(missing), "--cache-dir",
                    str(cache_dir))
    assert_clean_failure(proc, "--kubeconfig", "no such kubeconfig file")


def test_unknown_context_is_one_line(app: Path, tmp_path: Path, cache_dir: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: abc}}]\n"
        "contexts: [{name: a, context: {cluster: c, user: u}}]\n")
    proc = run_kiln("apply", str(app), "--kubeconfig", str(config), "--context", "zz",
                    "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "no context 'zz'")


def test_unreachable_cluster_is_one_line(app: Path, tmp_path: Path, cache_dir: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: s3cr3t-t0ken-value}}]\n"
        "contexts: [{name: a, context: {cluster: c, user: u}}]\n")
    proc = run_kiln("apply", str(app), "--kubeconfig", str(config), "--cache-dir",
                    str(cache_dir))
    assert_clean_failure(proc, "context a", "cannot reach the cluster")
    assert "s3cr3t-t0ken-value" not in proc.stderr


def test_usage_errors_exit_2(app: Path, cache_dir: Path) -> None:
    proc = run_kiln("apply", str(app), "--timeout", "soon", "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "--timeout", code=2)
    proc = run_kiln("apply", str(app), str(app), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "--applyset", code=2)
    proc = run_kiln("apply", "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, code=2)
