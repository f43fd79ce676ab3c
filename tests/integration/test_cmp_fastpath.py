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


def why(app_dir: Path, env: dict[str, str]) -> str:
    """Why a repeated ``kiln generate .`` in ``app_dir`` is not served ("" when it is)."""
    request = fastpath.request_for(["generate", "."], env, cwd=app_dir)
    assert request is not None
    outcome = fastpath.check(request, env)
    return "" if outcome.ok else outcome.reason


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
    assert serve(app_dir, env) == text and why(app_dir, env) == ""  # positive control
    # An input file's content.
    deploy = app_dir / "deploy.yaml"
    original = deploy.read_text()
    deploy.write_text(original.replace("replicas: 2", "replicas: 3"))
    assert serve(app_dir, env) is None
    assert why(app_dir, env) == "input deploy.yaml changed"
    deploy.write_text(original)
    assert serve(app_dir, env) == text
    # A new file anywhere in the source tree (it might be a new input).
    (app_dir / "extra" / "new.yaml").write_text(CONFIGMAP.replace("other", "new"))
    assert serve(app_dir, env) is None
    assert why(app_dir, env).startswith("the source tree changed")
    (app_dir / "extra" / "new.yaml").unlink()
    (repo / "apps" / "other" / "more.yaml").write_text(CONFIGMAP)
    assert why(app_dir, env).startswith("the source tree changed")
    (repo / "apps" / "other" / "more.yaml").unlink()
    assert serve(app_dir, env) == text
    # Parameters, the PARAM_* forms, the namespace, kiln.yaml: another request, no memo.
    params = json.loads(env["ARGOCD_APP_PARAMETERS"])[:1]
    for changed in ({"ARGOCD_APP_PARAMETERS": json.dumps(params)},
                    {"PARAM_DIRECTORY_RECURSE": "false"}, {"ARGOCD_APP_NAMESPACE": "staging"},
                    {"KUBE_VERSION": "1.32.0"}, {"KILN_HELM": "/opt/other/helm"},
                    {"PATH": "/opt/other/bin"}):
        assert serve(app_dir, {**env, **changed}) is None
        assert why(app_dir, {**env, **changed}) == "no memo for this request", changed
    assert serve(app_dir, env) == text
    (app_dir / "kiln.yaml").write_text("namespace: x\n")
    assert why(app_dir, env) == "no memo for this request"


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
    assert why(app_dir, {**env, "ARGOCD_ENV_SKIP": "none"}) == \
        "build-env variable ARGOCD_ENV_SKIP changed"


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


def test_renders_with_secrets_are_never_memoised(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sidecar = _sops_repo(repo)
    cache = tmp_path / "cache"
    env = {**argocd_env(app_name="web", namespace="prod", source_path="apps/web"), **sidecar,
           "KILN_CACHE_DIR": str(cache)}
    text, written = _generate(repo / "apps" / "web", env, cache)
    assert "s3cr3t-from-sops" in text
    assert not written and written.reason == "secrets were resolved"
    assert serve(repo / "apps" / "web", env) is None
    assert why(repo / "apps" / "web", env) == "no memo for this request"
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


def _memo_file(cache: Path) -> Path:
    (memo,) = (cache / "cmp-fast").glob("*.memo")
    return memo


def test_an_edited_memo_is_refused(setup: tuple[Path, Path, dict[str, str]]) -> None:
    """The memo is integrity-checked like a cache entry: edited, it is a miss (the engine then
    renders correctly), never printed as the app's manifests."""
    repo, cache, env = setup
    app_dir = repo / "apps" / "web"
    text, written = _generate(app_dir, env, cache)
    assert written and serve(app_dir, env) == text  # positive control
    memo = _memo_file(cache)
    original = memo.read_bytes()
    assert b"replicas: 2" in original
    memo.write_bytes(original.replace(b"replicas: 2", b"replicas: 9"))
    assert serve(app_dir, env) is None
    assert why(app_dir, env) == "memo failed its integrity check (sha256)"
    memo.write_bytes(original)
    assert serve(app_dir, env) == text


def test_a_forged_memo_is_refused_with_an_hmac_key(setup: tuple[Path, Path, dict[str, str]]
                                                   ) -> None:
    """With KILN_CACHE_HMAC_KEY set, a memo whose sha256 was recomputed after an edit (or
    written without the key) is refused; the untouched memo is served."""
    import hashlib

    repo, cache, env = setup
    env = {**env, "KILN_CACHE_HMAC_KEY": "k" * 32}
    app_dir = repo / "apps" / "web"
    text, written = _generate(app_dir, env, cache)
    assert written and serve(app_dir, env) == text  # positive control
    memo = _memo_file(cache)
    assert b"k" * 32 not in memo.read_bytes() and "k" * 32 not in memo.name
    header, _, body = memo.read_bytes().partition(b"\n")
    magic, _, mac = header.split(b" ")
    forged = body.replace(b"replicas: 2", b"replicas: 9")
    memo.write_bytes(b" ".join([magic, hashlib.sha256(forged).hexdigest().encode(), mac])
                     + b"\n" + forged)
    assert serve(app_dir, env) is None
    assert why(app_dir, env) == "memo failed its integrity check (HMAC with KILN_CACHE_HMAC_KEY)"
    # The same body sealed without a key is refused too while the operator sets one.
    memo.write_bytes(b" ".join([magic, hashlib.sha256(body).hexdigest().encode(), b"-"])
                     + b"\n" + body)
    assert why(app_dir, env) == "memo failed its integrity check (HMAC with KILN_CACHE_HMAC_KEY)"
    assert why(app_dir, {k: v for k, v in env.items() if k != "KILN_CACHE_HMAC_KEY"}) == ""


def test_an_edited_memo_falls_through_to_a_correct_render(
    setup: tuple[Path, Path, dict[str, str]]
) -> None:
    """The real console path: an edited memo is never printed; the engine renders."""
    repo, cache, env = setup
    app_dir = repo / "apps" / "web"
    base = {**os.environ, **env, "PYTHONPATH": str(REPO), "KILN_DEBUG_FASTPATH": "1"}

    def generate() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kiln", "generate", "."], cwd=app_dir,
                              env=base, capture_output=True, text=True, timeout=120)

    first = generate()
    assert first.returncode == 0 and "replicas: 2" in first.stdout, first.stderr
    served = generate()
    assert "kiln: fastpath: hit" in served.stderr and served.stdout == first.stdout
    memo = _memo_file(cache)
    memo.write_bytes(memo.read_bytes().replace(b"replicas: 2", b"replicas: 9"))
    again = generate()
    assert "kiln: fastpath: miss: memo failed its integrity check (sha256)" in again.stderr
    assert again.returncode == 0 and again.stdout == first.stdout


def test_the_hmac_key_may_come_from_a_file(setup: tuple[Path, Path, dict[str, str]],
                                           tmp_path: Path) -> None:
    """KILN_CACHE_HMAC_KEY_FILE (a mounted Secret) seals memos as the key itself would."""
    repo, cache, env = setup
    key_file = tmp_path / "hmac.key"
    key_file.write_text("f" * 32 + "\n")
    env = {**env, "KILN_CACHE_HMAC_KEY_FILE": str(key_file)}
    app_dir = repo / "apps" / "web"
    text, written = _generate(app_dir, env, cache)
    assert written and serve(app_dir, env) == text  # positive control
    same = {k: v for k, v in env.items() if k != "KILN_CACHE_HMAC_KEY_FILE"}
    assert why(app_dir, {**same, "KILN_CACHE_HMAC_KEY": "f" * 32}) == ""
    key_file.write_text("g" * 32 + "\n")  # the key rotated: the old memo no longer verifies
    assert why(app_dir, env) == "memo failed its integrity check (HMAC with KILN_CACHE_HMAC_KEY)"
    assert why(app_dir, {**env, "KILN_CACHE_HMAC_KEY": "g" * 32}) == \
        "both HMAC key variables are set"


def test_a_deleted_or_escaping_input_says_so(setup: tuple[Path, Path, dict[str, str]],
                                             tmp_path: Path) -> None:
    """The re-check through DiskTree keeps its reasons: a deleted input is a changed input;
    one now resolving outside the source root says that."""
    repo, cache, env = setup
    app_dir = repo / "apps" / "web"
    text, _ = _generate(app_dir, env, cache)
    assert why(app_dir, env) == ""  # positive control
    svc = app_dir / "svc.yaml"
    original = svc.read_text()
    svc.unlink()
    assert why(app_dir, env) == "input svc.yaml changed"
    outside = tmp_path / "outside.yaml"
    outside.write_text(original)
    svc.symlink_to(outside)
    assert why(app_dir, env) == "input svc.yaml resolves outside the source root"
    svc.unlink()
    svc.write_text(original)
    assert serve(app_dir, env) == text
