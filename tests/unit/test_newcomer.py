"""What a newcomer tripped over (issue 13 §5): warnings, messages, documented examples."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import kiln
from kiln.core.cache.size import parse_size
from kiln.core.errors import ConfigError
from tests.helpers import EXAMPLES, REPO, assert_clean_failure, run_kiln, tool
from tests.unit.test_plugins import install_dist

_FACTORS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "kb": 1 << 10, "m": 1 << 20,
            "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40}


@pytest.mark.parametrize("command", ["render", "plugins", "--version"])
def test_broken_plugin_is_one_prefixed_warning(tmp_path: Path, cache_dir: Path,
                                               command: str) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_dist(site, "kiln-broken", "0.1", "kiln_broken", "raise RuntimeError('boom')\n",
                 "broken = kiln_broken")
    args = {"render": ["render", str(EXAMPLES / "guestbook"), "--cache-dir", str(cache_dir)]}
    proc = run_kiln(*args.get(command, [command]),
                    env={"PYTHONPATH": str(site), "KILN_CACHE_DIR": str(cache_dir)})
    assert proc.returncode == 0, proc.stderr
    mentions = [ln for ln in proc.stderr.splitlines() if "kiln-broken" in ln]
    assert len(mentions) == 1, proc.stderr
    assert mentions[0].startswith("kiln: WARNING: plugin 'broken' from distribution "
                                  "'kiln-broken' failed to load: RuntimeError: boom")
    assert "kiln-broken" not in proc.stdout


def _app(tmp_path: Path, kiln_yaml: str | None) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    if kiln_yaml is not None:
        (app / "kiln.yaml").write_text(kiln_yaml)
    return app


@pytest.mark.parametrize(("text", "needle"), [
    ("namspace: x\n", "unknown key 'namspace' (did you mean 'namespace'?)"),
    ("helm: {relaseName: x}\n", "unknown key 'helm.relaseName' (did you mean 'releaseName'?)"),
    ("direktory: {}\n", "unknown key 'direktory' (did you mean 'directory'?)"),
    ("secrets: {vualt: {}}\n", "unknown key 'secrets.vualt' (did you mean 'vault'?)"),
])
def test_unknown_kiln_yaml_key_suggests_the_closest(tmp_path: Path, cache_dir: Path,
                                                    text: str, needle: str) -> None:
    app = _app(tmp_path, text)
    proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, f"{app / 'kiln.yaml'}: {needle}")


def test_unknown_key_far_from_any_gets_no_suggestion(tmp_path: Path, cache_dir: Path) -> None:
    app = _app(tmp_path, "zzzzqqq: 1\n")
    proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "unknown key 'zzzzqqq'")
    assert "did you mean" not in proc.stderr


@pytest.mark.parametrize("kiln_yaml", [None, "namespace: ns\n"])
def test_option_errors_name_the_flag_not_kiln_yaml(tmp_path: Path, cache_dir: Path,
                                                   kiln_yaml: str | None) -> None:
    app = _app(tmp_path, kiln_yaml)
    unknown = run_kiln("render", str(app), "--cache-dir", str(cache_dir), "-O", "helm.nope=1")
    assert_clean_failure(unknown, "kiln: error: -O helm.nope: unknown key 'helm.nope'")
    typo = run_kiln("render", str(app), "--cache-dir", str(cache_dir), "-O", "namspace=x")
    assert_clean_failure(typo, "-O namspace: unknown key 'namspace' (did you mean 'namespace'?)")
    bad = run_kiln("render", str(app), "--cache-dir", str(cache_dir),
                   "-O", "directory.recurse=[1]")
    assert_clean_failure(bad, "kiln: error: -O directory.recurse: directory.recurse:")
    for proc in (unknown, typo, bad):
        assert "kiln.yaml" not in proc.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("1GiB", 1 << 30), ("500MiB", 500 << 20), ("4096", 4096), ("64k", 64 * 1024),
    ("2 gib", 2 << 30), ("10B", 10), ("3T", 3 << 40), ("7KB", 7 * 1024),
])
def test_cache_size_forms(text: str, expected: int) -> None:
    assert parse_size(text, source="--cache-max-bytes") == expected


@pytest.mark.parametrize("text", ["", "1.5GiB", "-1", "0", "GiB", "1 PiB", "1GiBB", "1e9"])
def test_cache_size_refuses_anything_else(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_size(text, source="KILN_CACHE_MAX_BYTES")
    assert err.value.source == "KILN_CACHE_MAX_BYTES"


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=1 << 20), st.sampled_from(list(_FACTORS)),
       st.booleans())
def test_cache_size_units_multiply(number: int, unit: str, upper: bool) -> None:
    written = f"{number}{unit.upper() if upper else unit}"
    assert parse_size(written, source="x") == number * _FACTORS[unit]


def _render_apps(tmp_path: Path, cache_dir: Path, count: int) -> None:
    for i in range(count):
        app = tmp_path / f"app{i}"
        app.mkdir()
        (app / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n"
                                     f"metadata: {{name: c{i}}}\ndata: {{k: '{'x' * 4000}{i}'}}\n")
        proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir))
        assert proc.returncode == 0, proc.stderr


def _cache_bytes(cache_dir: Path) -> int:
    return sum(p.stat().st_size for p in (cache_dir / "objects").rglob("*") if p.is_file())


def test_cache_bound_from_flag_and_env(tmp_path: Path, cache_dir: Path) -> None:
    _render_apps(tmp_path, cache_dir, 4)
    total = _cache_bytes(cache_dir)
    stats = run_kiln("cache", "stats", "--cache-dir", str(cache_dir), "--cache-max-bytes", "2MiB")
    assert f"max-bytes: {2 << 20}" in stats.stdout, stats.stderr
    env_stats = run_kiln("cache", "stats", "--cache-dir", str(cache_dir),
                         env={"KILN_CACHE_MAX_BYTES": "3k"})
    assert "max-bytes: 3072" in env_stats.stdout, env_stats.stderr
    bound = total // 2
    gc = run_kiln("cache", "gc", "--cache-dir", str(cache_dir), "--cache-max-bytes", str(bound),
                  env={"KILN_CACHE_MAX_BYTES": "1GiB"})  # the flag wins
    assert gc.returncode == 0, gc.stderr
    assert gc.stdout.startswith("evicted ") and not gc.stdout.startswith("evicted 0 ")
    assert 0 < _cache_bytes(cache_dir) <= bound
    bad = run_kiln("render", str(tmp_path / "app0"), "--cache-dir", str(cache_dir),
                   "--cache-max-bytes", "lots")
    assert_clean_failure(bad, "--cache-max-bytes: not a size: 'lots'")
    bad_env = run_kiln("cache", "gc", "--cache-dir", str(cache_dir),
                       env={"KILN_CACHE_MAX_BYTES": "1.5G"})
    assert_clean_failure(bad_env, "KILN_CACHE_MAX_BYTES: not a size: '1.5G'")


def _real(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def test_version_lists_the_real_tools(cache_dir: Path) -> None:
    helm, kubectl, sops = tool("helm"), tool("kubectl"), tool("sops")
    proc = run_kiln("--version", env={"KILN_CACHE_DIR": str(cache_dir)})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"kiln {kiln.__version__}"
    by_name = {line.split(" ", 1)[0].rstrip(":"): line for line in lines[1:]}
    assert by_name["helm"] == (f"helm {_real([helm, 'version', '--short'])} "
                               f"({os.path.realpath(helm)})")
    sops_version = _real([sops, "--version", "--disable-version-check"]).splitlines()[0]
    assert by_name["sops"] == (f"sops {sops_version.removeprefix('sops ')} "
                               f"({os.path.realpath(sops)})")
    kustomize = [ln for ln in _real([kubectl, "version", "--client"]).splitlines()
                 if ln.startswith("Kustomize Version:")]
    assert kustomize and kustomize[0] in by_name["kustomize"]
    assert by_name["kustomize"].endswith(f"({os.path.realpath(kubectl)})")
    assert by_name["jsonnet"] == f"jsonnet gojsonnet {importlib.metadata.version('gojsonnet')}"
    assert proc.stderr == ""


def test_version_memo_runs_no_tool_until_the_binary_changes(tmp_path: Path,
                                                           cache_dir: Path) -> None:
    helm = tool("helm")
    calls = tmp_path / "calls"
    wrapper = tmp_path / "helm-wrapper"
    wrapper.write_text(f"#!/bin/sh\necho run >> {calls}\nexec {helm} \"$@\"\n")
    wrapper.chmod(0o755)
    env = {"KILN_CACHE_DIR": str(cache_dir), "KILN_HELM": str(wrapper)}
    first = run_kiln("--version", env=env)
    second = run_kiln("--version", env=env)
    assert first.returncode == 0 and first.stdout == second.stdout, (first, second)
    assert f"({wrapper})" in first.stdout
    assert calls.read_text().count("run") == 1  # the second answer came from the memo
    wrapper.write_text(wrapper.read_text() + "# changed\n")
    third = run_kiln("--version", env=env)
    assert third.stdout == first.stdout
    assert calls.read_text().count("run") == 2


def test_version_says_a_tool_is_missing(tmp_path: Path, cache_dir: Path) -> None:
    missing = tmp_path / "no-such-helm"
    proc = run_kiln("--version", env={"KILN_CACHE_DIR": str(cache_dir),
                                      "KILN_HELM": str(missing)})
    assert proc.returncode == 0, proc.stderr
    assert f"helm: {missing} not found" in proc.stdout.splitlines()
    assert proc.stdout.startswith("kiln ")


def test_render_warns_once_about_references_no_backend_handles(tmp_path: Path,
                                                               cache_dir: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    docs = [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
             "stringData": {"password": "<path:secret/data/db#password>"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
             "data": {"url": "ref+vault://secret/app#/url"}}]
    (app / "objects.yaml").write_text(yaml.safe_dump_all(docs))
    for _ in range(2):  # a fresh render, then a cache hit
        proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir))
        assert proc.returncode == 0, proc.stderr
        assert list(yaml.safe_load_all(proc.stdout)) == docs
        assert proc.stderr.splitlines() == [
            "kiln: WARNING: 2 secret reference(s) left unresolved: no backend configured "
            "(first: Secret/db: stringData.password: <path:secret/data/db#password>)"]
    quiet = run_kiln("render", str(app), "--cache-dir", str(cache_dir), "--no-secrets")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    plain = run_kiln("render", str(EXAMPLES / "guestbook"), "--cache-dir", str(cache_dir))
    assert plain.returncode == 0 and plain.stderr == "", plain.stderr


def _kiln_names_in_code() -> set[str]:
    """Every ``KILN_*`` name in a string literal (code or docstring) under kiln/."""
    names: set[str] = set()
    for path in (REPO / "kiln").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.update(re.findall(r"\bKILN_[A-Z0-9_]*", node.value))
    names.discard("KILN_")  # the namespace itself (e.g. "every KILN_ variable")
    return names


def test_every_kiln_variable_is_documented() -> None:
    text = (REPO / "docs" / "configuration.md").read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| `")]
    listed = set(re.findall(r"`([A-Z][A-Z0-9_]*\*?)`", "\n".join(ln.split(" | ")[0]
                                                               for ln in rows)))
    code = _kiln_names_in_code()
    assert {"KILN_SOPS", "KILN_CACHE_URL", "KILN_CACHE_MAX_BYTES"} <= code  # the scan works
    # a concrete name must have its own row; a prefix ("KILN_HELM_") is listed as KILN_HELM_*
    missing = sorted(n for n in code if n not in listed and n + "*" not in listed)
    assert missing == [], f"read by kiln but not in docs/configuration.md: {missing}"
    assert "docs/configuration.md" in (REPO / "README.md").read_text()


def _readme_library_code() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## The library"):]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_library_example(tmp_path: Path) -> None:
    """The README's library example, verbatim: it type-checks under ``mypy --strict`` and runs
    against examples/guestbook (its own asserts, plus the guestbook's objects)."""
    code = _readme_library_code()
    assert "engine.load_app(" in code and "App(path=" in code
    script = tmp_path / "readme_example.py"
    script.write_text(code)
    mypy = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           "--config-file", str(REPO / "pyproject.toml"), str(script)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr
    env = {**os.environ, "KILN_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    expected = [doc for path in sorted((EXAMPLES / "guestbook").glob("guestbook-*.yaml"))
                for doc in yaml.safe_load_all(path.read_text())]
    first, second = run.stdout.split("\n", 2)[:2]
    assert first == f"{len(expected)} {expected[0]['kind']}"
    assert second.startswith("False ")  # a fresh cache: the first render is a miss
    assert list(yaml.safe_load_all(run.stdout.split("\n", 2)[2])) == expected


def test_render_keeps_the_cache_under_the_flag_bound(tmp_path: Path, cache_dir: Path) -> None:
    _render_apps(tmp_path, cache_dir, 1)
    one = _cache_bytes(cache_dir)
    bound = one * 3 // 2  # room for one entry, not two
    for i in range(1, 4):
        app = tmp_path / f"app{i}"
        app.mkdir()
        (app / "cm.yaml").write_text((tmp_path / "app0" / "cm.yaml").read_text()
                                     .replace("name: c0", f"name: c{i}"))
        proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir),
                        "--cache-max-bytes", str(bound))
        assert proc.returncode == 0, proc.stderr
        assert 0 < _cache_bytes(cache_dir) <= bound
    entries = [p for p in (cache_dir / "objects").rglob("*") if p.is_file()]
    assert len(entries) == 1
