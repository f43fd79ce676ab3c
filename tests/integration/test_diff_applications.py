"""``kiln diff --applications DIR --against REV`` end to end: real git repositories (a bare
remote, a clone, a pull-request branch, ``main`` moving on meanwhile), Argo CD Application
manifests, real helm (behind a wrapper counting its runs), SOPS encrypted by the real ``sops``
with a throwaway age key.

The oracle is what the test wrote: which apps it added, removed, moved and changed, the
values it chose, ``git merge-base`` for the base commit, and the helm wrapper's log for the
renders. Every run's stdout and stderr are scanned for every secret value (raw, base64, and
a length written as a byte count), and the cache directory for plaintext.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import assert_clean_failure, run_kiln, tool, write_tree
from tests.integration.openbao import OpenBao, openbao  # noqa: F401
from tests.integration.sops_helpers import AgeKey, new_age_key, sops_encrypt, sops_env
from tests.integration.test_diff_against import assert_no_leak, git
from tests.secrets_scan import assert_no_plaintext

pytestmark = pytest.mark.integration

REPO_URL = "https://git.example.com/platform/apps.git"
OLD_PW, NEW_PW, KEPT_TOKEN = "Pr-Pass-Before-1", "Pr-Pass-After-22", "Pr-Token-Kept-3"
SOPS_OLD, SOPS_NEW = "Sops-Pr-Before-4", "Sops-Pr-After-55"
SECRETS = [OLD_PW, NEW_PW, KEPT_TOKEN, SOPS_OLD, SOPS_NEW]


def application(name: str, path: str, namespace: str = "apps") -> str:
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}
  namespace: argocd
spec:
  project: default
  source:
    repoURL: {REPO_URL}
    targetRevision: HEAD
    path: {path}
  destination:
    server: https://kubernetes.default.svc
    namespace: {namespace}
"""


def configmap(name: str, value: str) -> str:
    return f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  namespace: apps
data:
  value: "{value}"
"""


def secret(password: str) -> str:
    return f"""\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: apps
type: Opaque
stringData:
  password: {password}
  token: {KEPT_TOKEN}
"""


CHART = {
    "charts/api/Chart.yaml": "apiVersion: v2\nname: api\nversion: 0.1.0\n",
    "charts/api/values.yaml": "replicas: 1\n",
    "charts/api/templates/deploy.yaml": """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: api
          namespace: apps
        spec:
          replicas: {{ .Values.replicas }}
          selector: {matchLabels: {app: api}}
          template:
            metadata: {labels: {app: api}}
            spec:
              containers:
                - name: api
                  image: nginx:1.27
        """,
}


def counting_helm(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """KILN_HELM pointing at a wrapper logging each run's first argument."""
    log = tmp_path / "helm-calls.log"
    wrapper = tmp_path / "helm-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {tool("helm")} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return {"KILN_HELM": str(wrapper)}, log


def templates(log: Path) -> int:
    return log.read_text().split().count("template") if log.exists() else 0


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def encrypt(work: Path, key: AgeKey, password: str) -> bytes:
    plain = (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: sealed\n  namespace: apps\n"
             f"stringData:\n  password: {password}\n").encode()
    work.mkdir(exist_ok=True)
    return sops_encrypt(plain, "yaml", work, "--age", key.recipient, "--encrypted-regex",
                        "^(data|stringData)$")


@pytest.fixture(scope="module")
def age_key() -> AgeKey:
    return new_age_key()


@pytest.fixture
def pr(tmp_path: Path, age_key: AgeKey) -> dict[str, Any]:
    """A bare remote whose ``main`` holds six apps; a clone on branch ``feature`` that
    changes web (a ConfigMap value and a Secret password) and the SOPS app's password, adds
    ``new``, removes ``gone`` and moves ``moved``; meanwhile ``main`` moves on (api's
    replicas 1 -> 5), so the merge base is not origin/main."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(remote), str(work))
    git(work, "checkout", "-q", "-b", "main")
    write_tree(work, {
        "argocd/web.yaml": application("web", "apps/web"),
        "argocd/api.yaml": application("api", "charts/api"),
        "argocd/gone.yaml": application("gone", "apps/gone"),
        "argocd/moved.yaml": application("moved", "old/moved"),
        "argocd/same.yaml": application("same", "apps/same"),
        "argocd/sealed.yaml": application("sealed", "apps/sealed"),
        "apps/web/config.yaml": configmap("web", "web-before"),
        "apps/web/secret.yaml": secret(OLD_PW),
        "apps/gone/config.yaml": configmap("gone", "bye"),
        "old/moved/config.yaml": configmap("moved", "moving"),
        "apps/same/config.yaml": configmap("same", "same"),
        **CHART,
    })
    (work / "apps/sealed").mkdir(parents=True)
    (work / "apps/sealed/secret.yaml").write_bytes(encrypt(tmp_path / "sops", age_key, SOPS_OLD))
    fork = commit(work, "six apps")
    git(work, "push", "-q", "origin", "main")
    # main moves on in another clone.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(remote), str(other))
    (other / "charts/api/values.yaml").write_text("replicas: 5\n")
    commit(other, "api: five replicas")
    git(other, "push", "-q", "origin", "main")
    # The pull request.
    git(work, "checkout", "-q", "-b", "feature")
    write_tree(work, {
        "apps/web/config.yaml": configmap("web", "web-after"),
        "apps/web/secret.yaml": secret(NEW_PW),
        "argocd/new.yaml": application("new", "apps/new"),
        "apps/new/a.yaml": configmap("new-a", "a"),
        "apps/new/b.yaml": configmap("new-b", "b"),
        "argocd/moved.yaml": application("moved", "new/moved"),
    })
    (work / "apps/sealed/secret.yaml").write_bytes(encrypt(tmp_path / "sops", age_key, SOPS_NEW))
    git(work, "rm", "-q", "-r", "argocd/gone.yaml", "apps/gone")
    (work / "new").mkdir()
    git(work, "mv", "old/moved", "new/moved")
    commit(work, "the pull request")
    git(work, "fetch", "-q", "origin")
    base = git(work, "merge-base", "HEAD", "origin/main").strip()
    assert base == fork
    assert base != git(work, "rev-parse", "origin/main").strip()
    env = {**sops_env(age_key), "KILN_CACHE_DIR": str(tmp_path / "kiln-cache"),
           "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    return {"work": work, "base": base, "env": env, "tmp": tmp_path}


def kiln_diff(pr: dict[str, Any], *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    proc = run_kiln("diff", "--applications", "argocd", "--repo-url", REPO_URL, *args,
                    cwd=pr["work"],
                    env={**pr["env"], **(env or {})})
    assert_no_leak(proc, SECRETS)
    return proc


def by_name(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in json.loads(proc.stdout)["apps"]}


def refs(app: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["ref"]: o for o in app["objects"]}


def test_pull_request_diff_json(pr: dict[str, Any]) -> None:
    proc = kiln_diff(pr, "--against", "origin/main", "-o", "json")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["base"] == pr["base"] and data["against"] == "origin/main"
    apps = by_name(proc)
    assert {n: a["state"] for n, a in apps.items()} == {
        "api": "unchanged", "gone": "removed", "moved": "unchanged", "new": "added",
        "same": "unchanged", "sealed": "changed", "web": "changed"}
    assert {n for n, a in apps.items() if a["changed"]} == {"gone", "new", "sealed", "web"}
    assert apps["moved"]["path"] == "new/moved" and apps["moved"]["pathBefore"] == "old/moved"
    assert apps["api"]["path"] == "charts/api"
    web = refs(apps["web"])
    config = web["ConfigMap/apps/web"]["diff"].splitlines()
    assert "-  value: web-before" in config and "+  value: web-after" in config
    assert web["Secret/apps/db"]["keys"] == {"password": "changed", "token": "unchanged"}
    assert refs(apps["sealed"])["Secret/apps/sealed"]["keys"] == {"password": "changed"}
    assert {o["state"] for o in apps["new"]["objects"]} == {"added"}
    assert set(refs(apps["new"])) == {"ConfigMap/apps/new-a", "ConfigMap/apps/new-b"}
    assert refs(apps["gone"])["ConfigMap/apps/gone"]["state"] == "removed"
    # The private worktree is gone: no registration left, nothing left in TMPDIR.
    assert git(pr["work"], "worktree", "list").count("\n") == 1
    assert list((pr["tmp"] / "tmp").iterdir()) == []
    # The SOPS values were resolved in memory only (web's Secret is plaintext in git: cached).
    assert assert_no_plaintext([pr["tmp"] / "kiln-cache"], [SOPS_OLD, SOPS_NEW]) > 0


def test_no_merge_base_diffs_against_the_revision_itself(pr: dict[str, Any]) -> None:
    proc = kiln_diff(pr, "--against", "origin/main", "--no-merge-base", "-o", "json")
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["base"] == git(pr["work"], "rev-parse", "origin/main").strip()
    api = by_name(proc)["api"]
    assert api["state"] == "changed"  # main's own commit, seen backwards
    deploy = refs(api)["Deployment/apps/api"]["diff"].splitlines()
    assert "-  replicas: 5" in deploy and "+  replicas: 1" in deploy


def test_an_unchanged_app_is_a_cache_hit_on_the_second_side(pr: dict[str, Any]) -> None:
    env, log = counting_helm(pr["tmp"])
    proc = kiln_diff(pr, "--against", "origin/main", "-o", "json", env=env)
    assert proc.returncode == 1, proc.stderr
    assert by_name(proc)["api"]["state"] == "unchanged"
    assert templates(log) == 1  # the base side rendered it, the working tree hit the cache
    again = kiln_diff(pr, "--against", "origin/main", "-o", "json", env=env)
    assert templates(log) == 1 and again.stdout == proc.stdout
    # Against origin/main itself the chart's values differ: one more render, one side only.
    kiln_diff(pr, "--against", "origin/main", "--no-merge-base", "-q", env=env)
    assert templates(log) == 2


def test_text_and_markdown_reports(pr: dict[str, Any]) -> None:
    text = kiln_diff(pr, "--against", "origin/main")
    assert text.returncode == 1, text.stderr
    lines = text.stdout.splitlines()
    assert "=== web (apps/web): changed" in lines
    assert "=== moved (old/moved -> new/moved): unchanged, path changed" in lines
    assert "-  password: <masked, changed (before)>" in lines
    assert "   token: <masked, unchanged>" in lines
    assert "--- origin/main/ConfigMap/apps/web" in lines
    assert "+++ desired/ConfigMap/apps/web" in lines
    assert lines[-1] == "7 apps: 1 added, 2 changed, 1 removed, 3 unchanged, 0 failed"
    rows = {line.split()[0]: line.split() for line in lines
            if line.split() and line.split()[0] in {"web", "new", "gone", "sealed", "moved"}
            and not line.startswith("===")}
    assert rows["web"][-4:] == ["0", "2", "0", "0"]
    assert rows["new"][-4:] == ["2", "0", "0", "0"]
    assert rows["gone"][-4:] == ["0", "0", "1", "0"]
    md = kiln_diff(pr, "--against", "origin/main", "-o", "markdown")
    assert md.returncode == 1, md.stderr
    assert md.stdout.startswith("### kiln diff --applications argocd --against origin/main\n")
    cells = {}
    for line in md.stdout.splitlines():
        if line.startswith("| ") and not line.startswith(("| app |", "| ---")):
            parts = [c.strip() for c in line.strip("|").split("|")]
            cells[parts[0]] = parts[1:]
    assert cells == {
        "gone": ["apps/gone", "removed", "0", "0", "1", "0"],
        "moved": ["old/moved → new/moved", "unchanged (moved)", "0", "0", "0", "1"],
        "new": ["apps/new", "added", "2", "0", "0", "0"],
        "sealed": ["apps/sealed", "changed", "0", "1", "0", "0"],
        "web": ["apps/web", "changed", "0", "2", "0", "0"]}
    assert md.stdout.count("<details><summary>web (apps/web): changed</summary>") == 1
    assert md.stdout.count("<details>") == md.stdout.count("</details>")


def test_no_change_exits_zero(pr: dict[str, Any]) -> None:
    proc = kiln_diff(pr, "--against", "HEAD", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert not any(a["changed"] for a in json.loads(proc.stdout)["apps"])
    text = kiln_diff(pr, "--against", "feature")
    assert text.returncode == 0, text.stderr
    assert text.stdout == "6 apps: 0 added, 0 changed, 0 removed, 6 unchanged, 0 failed\n"


def test_an_app_failing_on_one_side_is_reported_and_the_rest_still_diffed(
        pr: dict[str, Any]) -> None:
    work = pr["work"]
    # The working tree breaks the chart (uncommitted: the working tree is what is diffed).
    (work / "charts/api/templates/deploy.yaml").write_text("{{ fail \"boom\" }}\n")
    (work / "apps/same/config.yaml").write_text(configmap("same", "edited"))
    proc = kiln_diff(pr, "--against", "origin/main", "-o", "json")
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("kiln: error: ")]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("kiln: error: charts/api (Application api) at working tree: ")
    apps = by_name(proc)
    assert apps["api"]["state"] == "failed" and apps["api"]["errors"]
    assert apps["same"]["state"] == "changed"  # uncommitted edits count
    assert apps["web"]["state"] == "changed"
    # The base side failing is named as that side.
    git(work, "checkout", "-q", "--", ".")
    git(work, "checkout", "-q", "-b", "fixed", "origin/main")
    (work / "charts/api/templates/deploy.yaml").write_text("{{ fail \"boom\" }}\n")
    commit(work, "break api")
    write_tree(work, {"charts/api/templates/deploy.yaml": CHART[
        "charts/api/templates/deploy.yaml"]})
    base = kiln_diff(pr, "--against", "HEAD", "--no-merge-base")
    assert base.returncode == 2, base.stderr
    line = base.stderr.splitlines()[0]
    assert line.startswith("kiln: error: charts/api (Application api) at HEAD: "), line
    assert "HEAD:charts/api" in line and "boom" in line and str(pr["tmp"]) not in line
    assert "=== api (charts/api): failed" in base.stdout


def test_bad_input_is_one_line_exit_two_and_empty_stdout(pr: dict[str, Any]) -> None:
    work = pr["work"]
    cases = [
        (["--applications", "argocd", "--against", "no-such-rev"],
         ["--against no-such-rev", "no commit"]),
        (["--applications", "argocd"], ["--applications needs --against"]),
        (["apps/web", "--applications", "argocd", "--against", "HEAD"],
         ["mutually exclusive"]),
        (["--applications", "missing", "--against", "HEAD"], ["missing", "no such"]),
        (["--against", "HEAD"], ["PATH"]),
        (["apps/web", "--against", "HEAD", "--jobs", "2"], ["--applications"]),
    ]
    for args, needles in cases:
        proc = run_kiln("diff", *args, cwd=work, env=pr["env"])
        assert_clean_failure(proc, *needles, code=2)


def test_unrelated_history_has_no_merge_base(pr: dict[str, Any]) -> None:
    work = pr["work"]
    git(work, "checkout", "-q", "--orphan", "lonely")
    commit(work, "unrelated root")
    git(work, "checkout", "-q", "feature")
    proc = run_kiln("diff", "--applications", "argocd", "--against", "lonely", cwd=work,
                    env=pr["env"])
    assert_clean_failure(proc, "--against lonely", "no common ancestor", code=2)
    assert os.listdir(pr["tmp"] / "tmp") == []


def test_progress_on_a_terminal_only_on_stderr(pr: dict[str, Any]) -> None:
    import fcntl
    import pty
    import struct
    import sys
    import termios

    from tests.helpers import REPO
    from tests.integration.test_many_progress import _read_all

    args = ["diff", "--applications", "argocd", "--repo-url", REPO_URL, "--against",
            "origin/main", "-o", "json"]
    piped = run_kiln(*args, cwd=pr["work"], env=pr["env"])
    assert piped.returncode == 1 and piped.stderr == ""  # no terminal: no display at all
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {**os.environ, **pr["env"], "PYTHONPATH": str(REPO), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "kiln", *args], cwd=pr["work"], env=env,
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
    assert proc.returncode == 1, terminal
    # One line per side, six Applications each; the piped run filled the cache.
    assert b"working tree 6/6 apps, 6 cache hits, 0 failed" in terminal, terminal
    assert b"origin/main 6/6 apps, 6 cache hits, 0 failed" in terminal, terminal
    assert out.decode() == piped.stdout
    assert not [v for v in SECRETS if v.encode() in terminal]


def test_vault_values_resolved_on_both_sides_and_masked(tmp_path: Path,
                                                        openbao: OpenBao  # noqa: F811
                                                        ) -> None:
    first, second = "Bao-Pr-Value-One-1", "Bao-Pr-Value-Two-2"
    openbao.kv2_put("secret", "prapp", {"pw": first})
    openbao.kv2_put("secret", "prapp", {"pw": second})
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")

    def app(version: int) -> None:
        write_tree(repo, {
            "argocd/vaulted.yaml": application("vaulted", "apps/vaulted"),
            "argocd/plain.yaml": application("plain", "apps/plain"),
            "apps/plain/config.yaml": configmap("plain", "same"),
            "apps/vaulted/secret.yaml": f"""
                apiVersion: v1
                kind: Secret
                metadata: {{name: vaulted, namespace: apps}}
                stringData:
                  pw: <path:secret/data/prapp#pw#{version}>
                """,
            "apps/vaulted/config.yaml": f"""
                apiVersion: v1
                kind: ConfigMap
                metadata: {{name: inline, namespace: apps}}
                data:
                  dsn: "host=db user=app password=<path:secret/data/prapp#pw#{version}>"
                  plain: shown
                """,
        })

    app(1)
    commit(repo, "one")
    app(2)
    commit(repo, "two")
    env = {"AVP_TYPE": "vault", "AVP_AUTH_TYPE": "token", "VAULT_ADDR": openbao.addr,
           "VAULT_TOKEN": openbao.token, "KILN_CACHE_DIR": str(tmp_path / "kiln-cache")}
    outputs = {}
    for fmt in ("text", "json", "markdown"):
        proc = run_kiln("diff", "--applications", "argocd", "--against", "HEAD~1", "-o", fmt,
                        "--debug", cwd=repo, env=env)
        assert proc.returncode == 1, proc.stderr
        assert_no_leak(proc, [first, second])
        outputs[fmt] = proc.stdout
    apps = {a["name"]: a for a in json.loads(outputs["json"])["apps"]}
    assert apps["plain"]["state"] == "unchanged" and apps["vaulted"]["state"] == "changed"
    objects = refs(apps["vaulted"])
    assert objects["Secret/apps/vaulted"]["keys"] == {"pw": "changed"}
    config = objects["ConfigMap/apps/inline"]["diff"].splitlines()
    assert "-  dsn: <masked, changed (before)>" in config and "   plain: shown" in config
    assert assert_no_plaintext([tmp_path / "kiln-cache"], [first, second]) > 0


def test_applications_new_in_the_pull_request_are_all_added(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write_tree(repo, {"README.md": "x\n", "argocd/README.md": "the Applications go here\n"})
    commit(repo, "empty")
    write_tree(repo, {"argocd/one.yaml": application("one", "apps/one"),
                      "apps/one/a.yaml": configmap("one-a", "a")})
    env = {"KILN_CACHE_DIR": str(tmp_path / "c")}
    for against in ("HEAD", "main"):  # argocd/ holds no Application at the base
        proc = run_kiln("diff", "--applications", "argocd", "--against", against, "-o",
                        "json", cwd=repo, env=env)
        assert proc.returncode == 1, proc.stderr
        apps = json.loads(proc.stdout)["apps"]
        assert [(a["name"], a["state"]) for a in apps] == [("one", "added")]
        assert "declared no Application at" in proc.stderr
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    write_tree(other, {"README.md": "x\n"})
    commit(other, "no argocd directory")
    write_tree(other, {"argocd/one.yaml": application("one", "apps/one"),
                       "apps/one/a.yaml": configmap("one-a", "a")})  # untracked
    proc = run_kiln("diff", "--applications", "argocd", "--against", "HEAD", "-o", "json",
                    cwd=other, env=env)
    assert proc.returncode == 1, proc.stderr
    assert [a["state"] for a in json.loads(proc.stdout)["apps"]] == ["added"]
