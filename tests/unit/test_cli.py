"""The CLI's output contract: the whole stream on success; on failure one error line,
exit 1 and empty stdout.

These run the real ``kiln`` command in a subprocess.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.helpers import EXAMPLES, assert_clean_failure, run_kiln

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    (path / "a.yaml").write_text(CM.format("a"))
    return path


def test_render_prints_a_yaml_stream(app: Path, cache_dir: Path) -> None:
    (app / "b.yaml").write_text(CM.format("b"))
    proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir))
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    assert [d["metadata"]["name"] for d in docs] == ["a", "b"]
    assert proc.stdout.count("\n---\n") == 1
    assert proc.stderr == ""


def test_render_json_is_one_array(app: Path, cache_dir: Path) -> None:
    proc = run_kiln("render", str(app), "-o", "json", "--cache-dir", str(cache_dir))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [yaml.safe_load(CM.format("a"))]


def test_bundled_example_renders(cache_dir: Path) -> None:
    proc = run_kiln("render", str(EXAMPLES / "guestbook"), "--cache-dir", str(cache_dir))
    assert proc.returncode == 0, proc.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(proc.stdout)]
    assert kinds == ["Deployment", "Service"]


def test_flags_reach_the_renderer(tmp_path: Path, cache_dir: Path) -> None:
    tmp_path = tmp_path / "app"
    tmp_path.mkdir()
    (tmp_path / "keep.yaml").write_text(CM.format("keep"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.yaml").write_text(CM.format("deep"))
    (tmp_path / "drop.yaml").write_text(CM.format("drop"))
    proc = run_kiln("render", str(tmp_path), "--recurse", "--exclude", "drop*",
                    "--cache-dir", str(cache_dir))
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(proc.stdout)] == ["keep", "deep"]
    proc = run_kiln("render", str(tmp_path), "-O", "directory.include=keep.yaml",
                    "--cache-dir", str(cache_dir))
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(proc.stdout)] == ["keep"]


def test_version() -> None:
    proc = run_kiln("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("kiln ")


def write(app: Path, name: str, text: str) -> None:
    (app / name).write_text(text)


BAD_FILES = {
    "malformed": ("bad.yaml", "apiVersion: v1\nkind: a: b\n", ["bad.yaml", "line 2"]),
    "list document": ("bad.yaml", "- a\n- b\n", ["bad.yaml", "expected a Kubernetes object"]),
    "scalar document": ("bad.yaml", "hello\n", ["bad.yaml", "got str"]),
    "duplicate keys": ("bad.yaml", CM.format("a") + "kind: Secret\n",
                       ["bad.yaml", "duplicate key 'kind'"]),
    "no kind": ("bad.yaml", "apiVersion: v1\nmetadata: {}\n", ["bad.yaml", "no kind"]),
    "json malformed": ("bad.json", '{"apiVersion": ', ["bad.json", "malformed JSON"]),
    "not utf-8": ("bad.yaml", None, ["bad.yaml", "not UTF-8"]),
    "kiln.yaml unknown key": ("kiln.yaml", "directroy: {}\n", ["kiln.yaml",
                                                                "unknown key 'directroy'"]),
    "kiln.yaml malformed": ("kiln.yaml", "type: [\n", ["kiln.yaml", "malformed YAML"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_input_gives_one_line_and_no_stdout(app: Path, cache_dir: Path, case: str) -> None:
    name, text, needles = BAD_FILES[case]
    if text is None:
        (app / name).write_bytes(b"apiVersion: v1\nkind: \xff\xfe\n")
    else:
        write(app, name, text)
    proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, *needles)


def test_alias_bomb(app: Path, cache_dir: Path) -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    write(app, "bomb.yaml", CM.format("bomb") + "data:\n" +
          "\n".join("  " + ln for ln in lines) + "\n")
    proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "bomb.yaml", "alias bomb")


def test_nonexistent_path(tmp_path: Path) -> None:
    assert_clean_failure(run_kiln("render", str(tmp_path / "missing")), "no such directory")


def test_file_instead_of_directory(app: Path) -> None:
    assert_clean_failure(run_kiln("render", str(app / "a.yaml")), "a.yaml", "not a directory")


def test_unreadable_file_dangling_symlink(app: Path, cache_dir: Path) -> None:
    os.symlink(app / "gone.txt", app / "broken.yaml")
    proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "broken.yaml")


def test_oversize_directory(app: Path, cache_dir: Path) -> None:
    big = CM.format("big") + "data:\n  blob: '" + "x" * (11 * 1024 * 1024) + "'\n"
    write(app, "big.yaml", big)
    proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "combined size limit")


def test_symlink_out_of_root(tmp_path: Path, app: Path, cache_dir: Path) -> None:
    (tmp_path / "elsewhere.yaml").write_text(CM.format("elsewhere"))
    os.symlink(tmp_path / "elsewhere.yaml", app / "link.yaml")
    proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "link.yaml", "outside the source root")


USAGE_ERRORS = {
    # case: (argv, what the one line must say)
    "render unknown option": (["render", "{app}", "--bogus"], "No such option '--bogus'"),
    "render missing argument": (["render"], "Missing argument 'PATH...'"),
    "render bad choice": (["render", "{app}", "-o", "xml"], "'xml' is not one of"),
    "render option without value": (["render", "{app}", "--namespace"],
                                    "Option '--namespace' requires an argument"),
    "render bad choice of a secrets flag": (["render", "{app}", "--external-secrets", "x"],
                                            "'x' is not one of"),
    "generate unknown option": (["generate", "{app}", "--bogus"], "No such option '--bogus'"),
    "generate missing argument": (["generate"], "Missing argument 'PATH'"),
    "generate bad choice": (["generate", "{app}", "-o", "xml"], "'xml' is not one of"),
    "generate extra argument": (["generate", "{app}", "surplus"], "unexpected extra argument"),
    "cmp unknown command": (["cmp", "nope"], "No such command 'nope'"),
    "cmp unknown option": (["cmp", "plugin-yaml", "--bogus"], "No such option '--bogus'"),
    "cmp extra argument": (["cmp", "discover", "{app}", "surplus"],
                           "unexpected extra argument"),
    "cmp bad path type": (["cmp", "discover", "{app}/a.yaml"], "is a file"),
    "cmp option without value": (["cmp", "plugin-yaml", "--name"],
                                 "Option '--name' requires an argument"),
    "cache unknown command": (["cache", "nope"], "No such command 'nope'"),
    "cache unknown option": (["cache", "stats", "--bogus"], "No such option '--bogus'"),
    "cache extra argument": (["cache", "gc", "surplus"], "unexpected extra argument"),
    "top-level unknown command": (["nope"], "No such command 'nope'"),
    "top-level unknown option": (["--bogus"], "No such option '--bogus'"),
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_usage_error_is_one_line_exit_2(app: Path, case: str) -> None:
    argv, needle = USAGE_ERRORS[case]
    args = [a.format(app=app) for a in argv]
    proc = run_kiln(*args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    # The command whose --help to read: the words of argv before the first argument or option
    # (for an unknown subcommand, the group that did not know it).
    words = []
    for arg in args:
        if arg.startswith("-") or arg == str(app) or arg.startswith(str(app)) \
                or arg in ("nope", "surplus"):
            break
        words.append(arg)
    assert lines[0].startswith("kiln: error: "), lines[0]
    assert needle in lines[0], lines[0]
    assert lines[0].endswith(f" (see '{' '.join(['kiln', *words])} --help')"), lines[0]


@pytest.mark.parametrize("argv", [[], ["cmp"], ["cache"]], ids=["kiln", "cmp", "cache"])
def test_a_bare_group_prints_its_help_on_stderr(argv: list[str]) -> None:
    """No subcommand at all is a request for the list of them, not a mistake to point at."""
    proc = run_kiln(*argv)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.startswith(f"Usage: {' '.join(['kiln', *argv])} [OPTIONS] COMMAND")


def test_usage_error_standalone_cmp_face_is_one_line() -> None:
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-c", "from kiln.cmp.commands import main; main()",
                           "plugin-yaml", "--bogus"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == ("kiln: error: No such option '--bogus' "
                           "(see 'kiln cmp plugin-yaml --help')\n")


def test_kiln_usage_error_from_a_flag_value_is_one_line(app: Path) -> None:
    proc = run_kiln("render", str(app), "--set", "novalue")
    assert_clean_failure(proc, "--set expects KEY=VALUE", code=2)
    assert len(proc.stderr.splitlines()) == 1


def test_redis_cache_without_the_redis_extra_is_one_line(app: Path, cache_dir: Path) -> None:
    """``import redis`` fails (a meta-path finder refuses it), as when kiln[redis] is not
    installed: a setting that needs it is one line naming the setting and the fix."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "class NoRedis:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'redis' or name.startswith('redis.'):\n"
        "            raise ImportError(f'No module named {name!r}')\n"
        "        return None\n"
        "sys.meta_path.insert(0, NoRedis())\n"
        "from kiln.entry import main\n"
        "main(sys.argv[1:])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "KILN_CACHE_URL": "redis://127.0.0.1:1/0"}
    for args in (["render", str(app)], ["cache", "stats"]):
        proc = subprocess.run([sys.executable, "-c", probe, *args], env=env,
                              capture_output=True, text=True, timeout=60)
        assert_clean_failure(proc, "KILN_CACHE_URL", "pip install 'kiln[redis]'")
        assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_unknown_type_is_one_line(app: Path, cache_dir: Path) -> None:
    proc = run_kiln("render", str(app), "--type", "nope", "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "unknown app type 'nope'")


def test_debug_adds_a_traceback(app: Path, cache_dir: Path) -> None:
    write(app, "bad.yaml", "- 1\n")
    proc = run_kiln("render", str(app), "--debug", "--cache-dir", str(cache_dir))
    assert proc.returncode == 1 and proc.stdout == ""
    assert "Traceback" in proc.stderr
    assert "kiln: error: " in proc.stderr


def test_cache_commands(app: Path, cache_dir: Path) -> None:
    run_kiln("render", str(app), "--cache-dir", str(cache_dir))
    stats = run_kiln("cache", "stats", "--cache-dir", str(cache_dir))
    assert "entries: 1" in stats.stdout
    cleared = run_kiln("cache", "clear", "--cache-dir", str(cache_dir))
    assert "removed 1" in cleared.stdout
    assert "entries: 0" in run_kiln("cache", "stats", "--cache-dir", str(cache_dir)).stdout


HEAVY = ("boto3", "botocore", "google", "hvac", "kubernetes", "_gojsonnet", "gojsonnet",
         "pyrage", "cryptography")


def test_version_and_cache_hit_do_not_import_heavy_modules(app: Path, cache_dir: Path) -> None:
    probe = (
        "import sys\nfrom kiln.cli import main\n"
        "main(sys.argv[1:])\n"
        f"heavy = [m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r}]\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\n"
    )
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for args in (["--version"], ["render", str(app), "--cache-dir", str(cache_dir)],
                 ["render", str(app), "--cache-dir", str(cache_dir)]):
        proc = subprocess.run([sys.executable, "-c", probe, *args], env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "HEAVY=\n" in proc.stderr, proc.stderr


def test_empty_render_is_an_error_unless_allowed(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "README.md").write_text("no manifests here")
    proc = run_kiln("render", str(tmp_path), "--cache-dir", str(cache_dir))
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "rendered no objects" in proc.stderr
    allowed = run_kiln("render", str(tmp_path), "--cache-dir", str(cache_dir), "--allow-empty")
    assert allowed.returncode == 0 and allowed.stdout == "", allowed.stderr


def test_usage_error_masks_credentials_it_echoes(app: Path) -> None:
    """Click echoes what was typed; a URL with a password in it is masked like any error."""
    proc = run_kiln("render", str(app), "-o", "https://deployer:hunter2-pw@charts.example.com/")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert "hunter2-pw" not in proc.stderr and "deployer" not in proc.stderr
    assert proc.stderr.startswith("kiln: error: ") and "https://***@charts.example.com" in \
        proc.stderr, proc.stderr


@pytest.mark.parametrize(("text", "value"), [
    ("a.b=12:30", "12:30"),                     # YAML 1.1 would read 750
    ("a.b=2001-12-14T21:59:43Z", "2001-12-14T21:59:43Z"),  # not a datetime
    ("a.b==", "="),
    ("a.b=y", True),                            # go-yaml v2, as kiln.yaml reads it
    ("a.b=[1, 2]", [1, 2]),
    ("a.b=", ""),
    ("a.b=: not [ yaml", ": not [ yaml"),        # not YAML: the text itself
])
def test_option_values_are_read_like_kiln_yaml(text: str, value: object) -> None:
    from kiln.cli import _parse_option

    assert _parse_option(text) == (["a", "b"], value)
