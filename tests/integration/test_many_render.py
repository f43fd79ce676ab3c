"""``kiln render PATH...`` on a real git monorepo of helm, kustomize, jsonnet and directory
apps: every output form against each app's real tool (parsed by PyYAML / json), the layout of
``--output-dir``, a failing app among good ones, the cache on a second run, and interrupts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, assert_clean_failure, run_kiln, write_tree
from tests.integration.many_repo import RepoApp, make_repo, oracle

pytestmark = pytest.mark.integration

COUNTS = {"directory": 2, "kustomize": 2, "helm": 2, "jsonnet": 1}


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, list[RepoApp]]:
    root = tmp_path / "repo"
    return root, make_repo(root, COUNTS)


def paths_of(apps: list[RepoApp]) -> list[str]:
    return [a.path for a in apps]


def kiln(root: Path, *args: str, cache: Path, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return run_kiln("render", *args, "--cache-dir", str(cache), cwd=root, env=env)


def test_several_paths_print_one_stream_of_every_app_in_order(
        repo: tuple[Path, list[RepoApp]], tmp_path: Path) -> None:
    root, apps = repo
    proc = kiln(root, *paths_of(apps), cache=tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no TTY: no progress, nothing to warn about
    expected = [obj for app in apps for obj in oracle(root, app, tmp_path)]
    assert [d for d in yaml.safe_load_all(proc.stdout) if d is not None] == expected
    sources = [line.removeprefix("# Source: ") for line in proc.stdout.splitlines()
               if line.startswith("# Source: ")]
    assert sources == paths_of(apps)


def test_one_job_and_four_jobs_print_the_same_bytes(repo: tuple[Path, list[RepoApp]],
                                                     tmp_path: Path) -> None:
    root, apps = repo
    one = kiln(root, "--jobs", "1", *paths_of(apps), cache=tmp_path / "c1")
    four = kiln(root, "-j", "4", *paths_of(apps), cache=tmp_path / "c4")
    assert one.returncode == four.returncode == 0, (one.stderr, four.stderr)
    assert one.stdout == four.stdout and one.stdout


def test_json_lists_every_app_and_a_second_run_is_all_cache_hits(
        repo: tuple[Path, list[RepoApp]], tmp_path: Path) -> None:
    root, apps = repo
    first = kiln(root, "-o", "json", *paths_of(apps), cache=tmp_path / "c")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert [(a["path"], a["name"]) for a in doc["apps"]] == [(p, p) for p in paths_of(apps)]
    for entry, app in zip(doc["apps"], apps, strict=True):
        assert entry["objects"] == oracle(root, app, tmp_path)
        assert entry["cacheHit"] is False and len(entry["key"]) == 64
        assert "error" not in entry
    second = json.loads(kiln(root, "-o", "json", *paths_of(apps), cache=tmp_path / "c").stdout)
    assert [a["cacheHit"] for a in second["apps"]] == [True] * len(apps)
    assert [a["key"] for a in second["apps"]] == [a["key"] for a in doc["apps"]]
    assert [a["objects"] for a in second["apps"]] == [a["objects"] for a in doc["apps"]]


def test_output_dir_mirrors_the_source_layout(repo: tuple[Path, list[RepoApp]],
                                              tmp_path: Path) -> None:
    root, apps = repo
    out = tmp_path / "rendered"
    proc = kiln(root, "--output-dir", str(out), *paths_of(apps), cache=tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted(f"{a.path}/manifest.yaml" for a in apps)
    for app in apps:
        text = (out / app.path / "manifest.yaml").read_text()
        assert [d for d in yaml.safe_load_all(text) if d] == oracle(root, app, tmp_path)
    # a PATH given from inside the repository lands at its path from the repository root
    sub = kiln(root / "apps", "--output-dir", str(tmp_path / "two"), "helm-0", "helm-1",
               cache=tmp_path / "c")
    assert sub.returncode == 0, sub.stderr
    assert (tmp_path / "two/apps/helm-0/manifest.yaml").read_text() == \
        (out / "apps/helm-0/manifest.yaml").read_text()


def test_a_failing_app_is_one_line_naming_it_and_the_others_complete(
        repo: tuple[Path, list[RepoApp]], tmp_path: Path) -> None:
    root, apps = repo
    write_tree(root / "apps/broken", {"Chart.yaml": "apiVersion: v2\nname: broken\n"
                                      "version: 0.1.0\n",
                                      "templates/bad.yaml": '{{ fail "chosen failure" }}\n'})
    paths = [*paths_of(apps[:3]), "apps/broken", *paths_of(apps[3:])]
    cache = tmp_path / "c"
    stream = kiln(root, *paths, cache=cache)
    assert_clean_failure(stream, "apps/broken: ", "chosen failure")
    assert stream.stderr.count("kiln: error: ") == 1, stream.stderr
    assert stream.stderr.startswith("kiln: error: apps/broken: ")
    # the good apps did render (they are in the cache now: a JSON run says so)
    doc = json.loads(kiln(root, "-o", "json", *paths, cache=cache).stdout)
    entries = {a["path"]: a for a in doc["apps"]}
    assert "chosen failure" in entries["apps/broken"]["error"]
    assert "objects" not in entries["apps/broken"]
    assert all(entries[a.path]["cacheHit"] for a in apps)
    assert [entries[a.path]["objects"] for a in apps] == [oracle(root, a, tmp_path)
                                                          for a in apps]
    out = tmp_path / "out"
    tree = kiln(root, "--output-dir", str(out), *paths, cache=cache)
    assert tree.returncode == 1 and tree.stdout == ""
    assert tree.stderr.count("kiln: error: ") == 1 and "apps/broken" in tree.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == \
        sorted(f"{a.path}/manifest.yaml" for a in apps)


def test_json_with_a_failure_still_exits_1(repo: tuple[Path, list[RepoApp]],
                                           tmp_path: Path) -> None:
    root, apps = repo
    (root / "apps/empty").mkdir()
    (root / "apps/empty/README.md").write_text("nothing to render\n")
    proc = kiln(root, "-o", "json", apps[0].path, "apps/empty", cache=tmp_path / "c")
    assert proc.returncode == 1
    assert proc.stderr.startswith("kiln: error: apps/empty: ") and "rendered no objects" in \
        proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["apps"][0]["objects"] == oracle(root, apps[0], tmp_path)
    assert doc["apps"][1]["key"] is None and "rendered no objects" in doc["apps"][1]["error"]


@pytest.mark.parametrize(("args", "needle"), [
    (["--output-dir", "apps/helm-0/out", "apps/helm-0", "apps/helm-1"], "overlaps the source"),
    (["--output-dir", ".", "apps/helm-0", "apps/helm-1"], "overlaps the source"),
    (["--output-dir", "o", "-o", "json", "apps/helm-0", "apps/helm-1"], "-o json"),
    (["--applications", "apps", "apps/helm-0"], "not both"),
    (["--output-dir", "o", "apps/helm-0", "./apps/helm-0/"], "would both write"),
])
def test_what_does_not_go_together_is_a_usage_error(repo: tuple[Path, list[RepoApp]],
                                                    tmp_path: Path, args: list[str],
                                                    needle: str) -> None:
    root, _ = repo
    proc = kiln(root, *args, cache=tmp_path / "c")
    assert_clean_failure(proc, needle, code=2)
    assert not (root / "o").exists() and not (root / "apps/helm-0/out").exists()


def test_jobs_must_be_positive_and_paths_need_one_work_tree(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_tree(tmp_path / name, {"cm.yaml": f"apiVersion: v1\nkind: ConfigMap\n"
                                     f"metadata: {{name: {name}}}\n"})
    cache = tmp_path / "c"
    assert_clean_failure(kiln(tmp_path, "--jobs", "0", "a", "b", cache=cache), "--jobs",
                         code=2)
    # outside git each PATH is its own source root: several need --source-root
    assert_clean_failure(kiln(tmp_path, "a", "b", cache=cache), "--source-root", code=2)
    ok = kiln(tmp_path, "a", "b", "--source-root", ".", "-o", "json", cache=cache)
    assert ok.returncode == 0, ok.stderr
    names = [[o["metadata"]["name"] for o in a["objects"]] for a in json.loads(ok.stdout)["apps"]]
    assert names == [["a"], ["b"]]
    # a missing PATH fails before anything renders, its name masked like any error
    proc = kiln(tmp_path, "a", "https://deployer:hunter2-pw@x.example.com/", "--source-root",
                ".", cache=cache)
    assert_clean_failure(proc, "no such directory")
    assert "hunter2-pw" not in proc.stderr


def test_one_path_keeps_the_single_app_output(repo: tuple[Path, list[RepoApp]],
                                              tmp_path: Path) -> None:
    root, apps = repo
    single = kiln(root, apps[0].path, cache=tmp_path / "c")
    assert single.returncode == 0
    assert "# Source:" not in single.stdout
    assert [d for d in yaml.safe_load_all(single.stdout) if d] == oracle(root, apps[0], tmp_path)
    as_json = kiln(root, apps[0].path, "-o", "json", "-q", "-j", "2", cache=tmp_path / "c")
    assert json.loads(as_json.stdout) == oracle(root, apps[0], tmp_path)  # an array, as ever


SLOW_KUSTOMIZE = """\
#!/bin/bash
# A kustomize that takes its time: answers 'version', else records who it is and waits.
if [ "$1" = version ]; then echo v5.4.3; exit 0; fi
sleep 120 &
echo $! > {marks}/sleep.$$
wait
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupt_stops_every_app_in_flight(tmp_path: Path, sig: signal.Signals) -> None:
    root = tmp_path / "repo"
    apps = make_repo(root, {"kustomize": 3})
    marks = tmp_path / "marks"
    marks.mkdir()
    wrapper = tmp_path / "kustomize"
    wrapper.write_text(SLOW_KUSTOMIZE.format(marks=marks))
    wrapper.chmod(0o755)
    env = {**os.environ, "KILN_KUSTOMIZE": str(wrapper),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "kiln", "render", "--jobs", "3",
                             *paths_of(apps), "--cache-dir", str(tmp_path / "c")],
                            cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len([p for p in marks.iterdir() if p.read_text().strip()]) < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the three tools never all started"
            time.sleep(0.05)
        sleepers = [int(p.read_text()) for p in marks.iterdir()]
        started = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - started < 10
    assert proc.returncode == 128 + sig, err
    assert out == ""
    assert err.strip().splitlines() == [f"kiln: error: interrupted by {sig.name}"], err
    time.sleep(0.2)
    assert not [pid for pid in sleepers if _alive(pid)]


def test_no_heavy_import_of_the_display_without_a_terminal(
        repo: tuple[Path, list[RepoApp]], tmp_path: Path) -> None:
    root, apps = repo
    probe = ("import sys\nfrom kiln.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "sys.stderr.write('RICH=' + str('rich' in sys.modules) + '\\n')\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", probe, "render", *paths_of(apps[:2]),
                           "--cache-dir", str(tmp_path / "c")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "RICH=False" in proc.stderr, proc.stderr


def test_references_no_backend_handles_are_one_warning_per_app(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_repo(root, {"directory": 1})
    write_tree(root, {"apps/vaulted/secret.yaml": """
        apiVersion: v1
        kind: Secret
        metadata:
          name: db
        stringData:
          password: <path:secret/data/db#password>
        """})
    proc = kiln(root, "apps/directory-0", "apps/vaulted", cache=tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "kiln: WARNING: apps/vaulted: 1 secret reference(s) left unresolved: no backend "
        "configured (first: Secret/db: stringData.password: <path:secret/data/db#password>)"]
    assert "<path:secret/data/db#password>" in proc.stdout
    quiet = kiln(root, "apps/directory-0", "apps/vaulted", "--no-secrets", cache=tmp_path / "c")
    assert quiet.stderr == "" and quiet.stdout == proc.stdout


def test_an_output_dir_that_cannot_be_written_is_one_line(repo: tuple[Path, list[RepoApp]],
                                                          tmp_path: Path) -> None:
    root, apps = repo
    (tmp_path / "a-file").write_text("not a directory\n")
    proc = kiln(root, "--output-dir", str(tmp_path / "a-file"), *paths_of(apps[:2]),
                cache=tmp_path / "c")
    assert_clean_failure(proc, str(tmp_path / "a-file"), "cannot write")
