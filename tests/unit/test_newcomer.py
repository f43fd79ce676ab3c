"""What a newcomer tripped over (issue 13 §5): warnings, messages, documented examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import EXAMPLES, assert_clean_failure, run_kiln
from tests.unit.test_plugins import install_dist


@pytest.mark.parametrize("command", ["render", "plugins"])
def test_broken_plugin_is_one_prefixed_warning(tmp_path: Path, cache_dir: Path,
                                               command: str) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_dist(site, "kiln-broken", "0.1", "kiln_broken", "raise RuntimeError('boom')\n",
                 "broken = kiln_broken")
    args = ["render", str(EXAMPLES / "guestbook"), "--cache-dir", str(cache_dir)]
    proc = run_kiln(*(args if command == "render" else ["plugins"]),
                    env={"PYTHONPATH": str(site)})
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
