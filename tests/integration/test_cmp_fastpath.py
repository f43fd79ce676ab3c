"""The start-up-free hit for ``kiln generate .`` (kiln.cmp.fastpath): it serves exactly
what the normal path printed, and nothing once anything the render depends on changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.cmp import fastpath
from kiln.cmp.environment import load_app_from_environment
from kiln.core.engine import Engine
from tests.helpers import REPO
from tests.integration.test_cmp_e2e import (
    CONFIGMAP,
    DIRECTORY_APP,
    DIRECTORY_PARAMS,
    _installed,
    _repo_with,
    _sops_repo,
    argocd_env,
)
from tests.secrets_scan import assert_no_plaintext

pytestmark = pytest.mark.integration


def _generate(app_dir: Path, env: dict[str, str], cache: Path) -> tuple[str, bool]:
    """The normal path in-process (what `kiln generate .` does), then record the memo."""
    engine = Engine(cache_dir=cache, entry_points=False, env=env)
    app = load_app_from_environment(engine, app_dir, env)
    result = engine.render(app)
    text = result.to_yaml()
    request = fastpath.request_for(["generate", "."], env, cwd=app_dir)
    assert request is not None
    return text, fastpath.record(engine, app, result, text, env, request)


def serve(app_dir: Path, env: dict[str, str]) -> str | None:
    """What a repeated ``kiln generate .`` in ``app_dir`` would be answered from the memo."""
    return fastpath.serve_args(["generate", "."], env, cwd=app_dir)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    repo = tmp_path / "repo"
    _repo_with(DIRECTORY_APP)(repo)
    cache = tmp_path / "cache"
    env = argocd_env(app_name="web", namespace="prod", source_path="apps/web",
                     params=DIRECTORY_PARAMS)
    env["KILN_CACHE_DIR"] = str(cache)
    env["PATH"] = os.environ["PATH"]  # PATH picks the tools: part of the request
    return repo, cache, env


def test_serves_what_the_normal_path_printed(setup: tuple[Path, Path, dict[str, str]]
                                             ) -> None:
    repo, cache, env = setup
    app_dir = repo / "apps" / "web"
    assert serve(app_dir, env) is None  # nothing recorded yet
    text, written = _generate(app_dir, env, cache)
    assert written
    assert serve(app_dir, env) == text
    # Another revision of the same files: still served (nothing references the revision).
    other = {**env, "ARGOCD_APP_REVISION": "f" * 40, "ARGOCD_APP_REVISION_SHORT": "fffffff"}
    assert serve(app_dir, other) == text
    # Outside the CMP (no ARGOCD_APP_NAME): never.
    assert serve(app_dir, {k: v for k, v in env.items() if k != "ARGOCD_APP_NAME"}) is None


def test_any_dependency_change_is_a_miss(setup: tuple[Path, Path, dict[str, str]]) -> None:
    repo, cache, env = setup
    app_dir = repo / "apps" / "web"
    text, _ = _generate(app_dir, env, cache)
    # An input file's content.
    deploy = app_dir / "deploy.yaml"
    original = deploy.read_text()
    deploy.write_text(original.replace("replicas: 2", "replicas: 3"))
    assert serve(app_dir, env) is None
    deploy.write_text(original)
    assert serve(app_dir, env) == text
    # A new file anywhere in the source tree (it might be a new input).
    (app_dir / "extra" / "new.yaml").write_text(CONFIGMAP.replace("other", "new"))
    assert serve(app_dir, env) is None
    (app_dir / "extra" / "new.yaml").unlink()
    (repo / "apps" / "other" / "more.yaml").write_text(CONFIGMAP)
    assert serve(app_dir, env) is None
    (repo / "apps" / "other" / "more.yaml").unlink()
    assert serve(app_dir, env) == text
    # Parameters, the PARAM_* forms, the namespace, kiln.yaml.
    params = json.loads(env["ARGOCD_APP_PARAMETERS"])[:1]
    assert serve(app_dir, {**env, "ARGOCD_APP_PARAMETERS": json.dumps(params)}) is None
    assert serve(app_dir, {**env, "PARAM_DIRECTORY_RECURSE": "false"}) is None
    assert serve(app_dir, {**env, "ARGOCD_APP_NAMESPACE": "staging"}) is None
    assert serve(app_dir, {**env, "KUBE_VERSION": "1.32.0"}) is None
    assert serve(app_dir, {**env, "KILN_HELM": "/opt/other/helm"}) is None
    (app_dir / "kiln.yaml").write_text("namespace: x\n")
    assert serve(app_dir, env) is None


def test_referenced_variable_change_is_a_miss(setup: tuple[Path, Path, dict[str, str]]
                                              ) -> None:
    repo, cache, env = setup
    app_dir = repo / "apps" / "web"
    env = {**env, "ARGOCD_ENV_SKIP": "*skip*", "ARGOCD_APP_PARAMETERS": json.dumps([
        {"name": "directory-recurse", "string": "true"},
        {"name": "directory-exclude", "string": "$ARGOCD_ENV_SKIP"}])}
    text, written = _generate(app_dir, env, cache)
    assert written
    assert serve(app_dir, env) == text
    assert serve(app_dir, {**env, "ARGOCD_ENV_SKIP": "none"}) is None


def test_memo_survives_a_fresh_unpack(setup: tuple[Path, Path, dict[str, str]],
                                      tmp_path: Path) -> None:
    """The sidecar unpacks every request into a new directory: the memo is path-free."""
    import shutil

    repo, cache, env = setup
    text, _ = _generate(repo / "apps" / "web", env, cache)
    copy = tmp_path / "unpacked" / "abc123"
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns(".git"))
    assert serve(copy / "apps" / "web", env) == text


def test_process_serves_without_importing_the_engine(setup: tuple[Path, Path, dict[str, str]]
                                                     ) -> None:
    repo, cache, env = setup
    app_dir = repo / "apps" / "web"
    text, _ = _generate(app_dir, env, cache)
    code = ("import os, sys\nfrom kiln.cmp.fastpath import serve_args\n"
            "text = serve_args(['generate', '.'], os.environ)\n"
            "assert 'yaml' not in sys.modules and 'click' not in sys.modules\n"
            "assert 'kiln.core.engine' not in sys.modules\n"
            "sys.stdout.write(text)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=app_dir, capture_output=True,
                          text=True, timeout=60,
                          env={**os.environ, **env, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == text


@pytest.mark.xfail("sops" not in _installed(), strict=True,
                   reason="needs the sops plugin (merged from its branch)")
def test_renders_with_secrets_are_never_memoised(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sidecar = _sops_repo(repo)
    cache = tmp_path / "cache"
    env = {**argocd_env(app_name="web", namespace="prod", source_path="apps/web"), **sidecar,
           "KILN_CACHE_DIR": str(cache)}
    text, written = _generate(repo / "apps" / "web", env, cache)
    assert "s3cr3t-from-sops" in text
    assert not written
    assert serve(repo / "apps" / "web", env) is None
    assert assert_no_plaintext([cache], ["s3cr3t-from-sops"]) > 0


def test_kiln_generate_dot_answers_a_repeat_without_the_framework(
    setup: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    """The real console path: the second identical ``kiln generate .`` never imports click.

    A stand-in ``click`` package that fails on import is put first on PYTHONPATH for the later
    runs: the memo answers without it, and with ``KILN_CMP_FASTPATH=0`` the run breaks on it.
    """
    repo, _, env = setup
    app_dir = repo / "apps" / "web"
    base = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    first = subprocess.run([sys.executable, "-m", "kiln", "generate", "."], cwd=app_dir,
                           env=base, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "kind: ConfigMap" in first.stdout
    poison = tmp_path / "poison"
    (poison / "click").mkdir(parents=True)
    (poison / "click" / "__init__.py").write_text("raise ImportError('click was imported')\n")
    poisoned = {**base, "PYTHONPATH": f"{poison}{os.pathsep}{REPO}"}
    second = subprocess.run([sys.executable, "-m", "kiln", "generate", "."], cwd=app_dir,
                            env=poisoned, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    off = subprocess.run([sys.executable, "-m", "kiln", "generate", "."], cwd=app_dir,
                         env={**poisoned, "KILN_CMP_FASTPATH": "0"}, capture_output=True,
                         text=True, timeout=120)
    assert off.returncode != 0 and off.stdout == ""
