"""``kiln diff PATH --against REV|DIR`` end to end, with no cluster: real git repositories with
two commits, real helm and kustomize apps, SOPS encrypted by the real ``sops`` with throwaway
age keys, AVP placeholders resolved from a real OpenBao holding values the test chose.

Every run's stdout and stderr are scanned for every secret value, its base64 forms and its
length written as a byte count; the per-key states are the ones the test's own changes imply.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import assert_clean_failure, run_kiln, tool, write_tree
from tests.integration.openbao import OpenBao, openbao  # noqa: F401
from tests.integration.sops_helpers import AgeKey, new_age_key, sops_encrypt, sops_env

pytestmark = pytest.mark.integration

GIT_ENV = {"GIT_AUTHOR_NAME": "kiln-test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "kiln-test", "GIT_COMMITTER_EMAIL": "test@example.com"}


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run([tool("git"), *args], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def new_repo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    return root


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def leaks(text: str, values: list[str]) -> list[str]:
    """Every form of every value found in ``text``, and byte counts of their lengths."""
    found = []
    for value in values:
        raw = value.encode()
        forms = {value}
        for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            forms |= {enc.decode(), enc.decode().rstrip("=")}
        found += [f"{value!r} as {f!r}" for f in forms if len(f) >= 4 and f in text]
        if re.search(rf"(?<![0-9]){len(raw)}(?![0-9])\s*(?:bytes?|chars?|B\b)", text):
            found.append(f"the length of {value!r}")
    if "***" in text:
        found.append("a *** run")
    return found


def assert_no_leak(proc: subprocess.CompletedProcess[str], values: list[str]) -> None:
    hits = leaks(proc.stdout + proc.stderr, values)
    assert not hits, hits


def diff(*args: str, cwd: Path, env: dict[str, str] | None = None,
         tmp: Path | None = None) -> subprocess.CompletedProcess[str]:
    full = dict(env or {})
    if tmp is not None:
        tmp.mkdir(exist_ok=True)
        full["TMPDIR"] = str(tmp)
    return run_kiln("diff", *args, cwd=cwd, env=full)


def objects_of(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {o["ref"]: o for o in json.loads(proc.stdout)["objects"]}


SECRET_APP = {
    "app/secret.yaml": """
        apiVersion: v1
        kind: Secret
        metadata:
          name: db
          namespace: apps
          labels:
            tier: {tier}
        type: Opaque
        stringData:
          password: {password}
          token: {token}
          {extra}
        data:
          apiKey: {api_key}
        """,
    "app/config.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: cfg
          namespace: apps
        data:
          replicas: "{replicas}"
        """,
}


def write_secret_app(repo: Path, *, password: str, token: str, api_key: str, replicas: int,
                     tier: str = "db", extra: str = "") -> None:
    write_tree(repo, {path: text.format(password=password, token=token,
                                        api_key=b64(api_key), replicas=replicas, tier=tier,
                                        extra=extra)
                      for path, text in SECRET_APP.items()})


@pytest.fixture
def two_commits(tmp_path: Path) -> tuple[Path, list[str]]:
    """A repository whose second commit changes one password (to one of the same length),
    keeps the token, drops apiKey, adds a key, and changes a label and a ConfigMap."""
    repo = new_repo(tmp_path / "repo")
    values = ["Pw-First-0001", "Pw-Secnd-0002", "Tok-Kept-AAAA", "Api-Gone-BBBB",
              "Fresh-Added-CC"]
    write_secret_app(repo, password=values[0], token=values[2], api_key=values[3], replicas=1)
    commit(repo, "one")
    write_secret_app(repo, password=values[1], token=values[2], api_key=values[3], replicas=2,
                     tier="cache", extra=f"fresh: {values[4]}")
    # apiKey leaves data: rewrite the file without it.
    path = repo / "app/secret.yaml"
    path.write_text("\n".join(line for line in path.read_text().splitlines()
                              if "apiKey" not in line and line.strip() != "data:") + "\n")
    commit(repo, "two")
    return repo, values


def test_against_a_revision_shows_key_states_and_no_value(tmp_path: Path,
                                                          two_commits: tuple[Path, list[str]]
                                                          ) -> None:
    repo, values = two_commits
    proc = diff("app", "--against", "HEAD~1", "--cache-dir", str(tmp_path / "c"), cwd=repo,
                tmp=tmp_path / "tmp")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""
    assert_no_leak(proc, values)
    lines = proc.stdout.splitlines()
    assert "--- HEAD~1/Secret/apps/db" in lines and "+++ desired/Secret/apps/db" in lines
    assert "-  password: <masked, changed (before)>" in lines
    assert "+  password: <masked, changed (after)>" in lines
    assert "   token: <masked, unchanged>" in lines
    assert "-  apiKey: <masked, removed>" in lines and "+  fresh: <masked, added>" in lines
    assert "-    tier: db" in lines and "+    tier: cache" in lines  # labels are shown
    assert "-  replicas: '1'" in lines and "+  replicas: '2'" in lines
    for fmt in ("json", "markdown"):
        out = diff("app", "--against", "HEAD~1", "-o", fmt, "--cache-dir",
                   str(tmp_path / "c"), cwd=repo)
        assert out.returncode == 1, out.stderr
        assert_no_leak(out, values)
    out = diff("app", "--against", "HEAD~1", "-o", "json", cwd=repo)
    objects = objects_of(out)
    assert objects["Secret/apps/db"]["state"] == "changed"
    assert objects["Secret/apps/db"]["keys"] == {
        "apiKey": "removed", "fresh": "added", "password": "changed", "token": "unchanged"}
    assert objects["ConfigMap/apps/cfg"]["state"] == "changed"
    # The private worktree is gone: no registration left, nothing left in TMPDIR.
    assert git(repo, "worktree", "list").count("\n") == 1
    assert list((tmp_path / "tmp").iterdir()) == []


def test_no_change_exits_zero(tmp_path: Path, two_commits: tuple[Path, list[str]]) -> None:
    repo, values = two_commits
    proc = diff("app", "--against", "HEAD", "-o", "json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["changed"] is False
    assert {o["state"] for o in out["objects"]} == {"unchanged"}
    text = diff("app", "--against", "main", cwd=repo)
    assert text.returncode == 0 and "--- " not in text.stdout
    assert_no_leak(text, values)


def test_same_states_with_other_values_give_the_same_output(tmp_path: Path) -> None:
    """Equal-length and equal-value tricks: two histories whose values differ (in content,
    length and in which keys share a value) but whose key states are the same print the same
    bytes."""
    outputs = []
    scanned: list[str] = []
    for name, (old_pw, new_pw, token, api) in {
        "a": ("AAAA1111", "BBBB2222", "SameTok1", "SameTok1"),        # token == apiKey
        "b": ("x-very-long-password-1", "y", "tok-other-2", "api-different-3"),
    }.items():
        repo = new_repo(tmp_path / name)
        write_secret_app(repo, password=old_pw, token=token, api_key=api, replicas=1)
        commit(repo, "one")
        write_secret_app(repo, password=new_pw, token=token, api_key=api, replicas=1)
        commit(repo, "two")
        proc = diff("app", "--against", "HEAD~1", cwd=repo)
        assert proc.returncode == 1, proc.stderr
        outputs.append(proc.stdout)
        scanned += [old_pw, new_pw, token, api]
        assert_no_leak(proc, [v for v in (old_pw, new_pw, token, api) if len(v) >= 4])
    assert outputs[0] == outputs[1]


def test_against_a_directory(tmp_path: Path) -> None:
    write_secret_app(tmp_path / "one", password="Dir-Pass-1", token="Dir-Tok-1",
                     api_key="Dir-Api-1", replicas=1)
    write_secret_app(tmp_path / "two", password="Dir-Pass-2", token="Dir-Tok-1",
                     api_key="Dir-Api-1", replicas=1)
    proc = diff(str(tmp_path / "two/app"), "--against", str(tmp_path / "one/app"),
                "-o", "json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert_no_leak(proc, ["Dir-Pass-1", "Dir-Pass-2", "Dir-Tok-1", "Dir-Api-1"])
    secret = objects_of(proc)["Secret/apps/db"]
    assert secret["keys"] == {"apiKey": "unchanged", "password": "changed",
                              "token": "unchanged"}
    assert secret["diff"].startswith("--- against/Secret/apps/db\n+++ desired/Secret/apps/db")


def test_an_app_added_in_the_working_tree_is_all_added(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    write_tree(repo, {"README": "x\n"})
    commit(repo, "one")
    write_secret_app(repo, password="New-App-Pw", token="New-App-Tok", api_key="New-App-Api",
                     replicas=1)
    proc = diff("app", "--against", "HEAD", "-o", "json", cwd=repo)
    assert proc.returncode == 1, proc.stderr
    assert {o["state"] for o in json.loads(proc.stdout)["objects"]} == {"added"}
    assert "did not exist at HEAD" in proc.stderr
    assert_no_leak(proc, ["New-App-Pw", "New-App-Tok", "New-App-Api"])


def test_listed_kinds_and_fingerprints(tmp_path: Path, two_commits: tuple[Path, list[str]]
                                       ) -> None:
    repo, values = two_commits
    key = "fingerprint-key-0123456789abcdef"
    keyfile = tmp_path / "fp.key"
    keyfile.write_text(key + "\n")
    proc = diff("app", "--against", "HEAD~1", "-o", "json", "--secret-fingerprint",
                str(keyfile), cwd=repo, env={"KILN_DIFF_MASK_KINDS": "ConfigMap"})
    assert proc.returncode == 1, proc.stderr
    assert_no_leak(proc, values)
    objects = objects_of(proc)
    assert objects["ConfigMap/apps/cfg"]["keys"] == {"replicas": "changed"}
    assert "replicas: '2'" not in proc.stdout

    def oracle(value: str) -> str:
        out = subprocess.run([tool("openssl"), "dgst", "-sha256", "-hmac", key],
                             input=value.encode(), capture_output=True, check=True, timeout=30)
        return "hmac-sha256:" + out.stdout.decode().split("= ")[-1].strip()[:16]

    prints = objects["Secret/apps/db"]["fingerprints"]
    assert prints["password"] == {"before": oracle(values[0]), "after": oracle(values[1])}
    assert prints["token"] == {"before": oracle(values[2]), "after": oracle(values[2])}
    assert prints["fresh"] == {"after": oracle(values[4])}
    assert f"+  password: <masked, changed (after)> {oracle(values[1])}" in \
        objects["Secret/apps/db"]["diff"]


# -- helm and kustomize --------------------------------------------------------------------------

CHART = {
    "app/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "app/templates/secret.yaml": """
        apiVersion: v1
        kind: Secret
        metadata:
          name: {{ .Release.Name }}-creds
        stringData:
          password: {{ .Values.password | quote }}
          other: {{ .Values.other | quote }}
        """,
    "app/templates/deploy.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{ .Release.Name }}
        spec:
          replicas: {{ .Values.replicas }}
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers:
                - name: web
                  image: nginx:1.27
        """,
}


def helm_template(chart: Path, tmp: Path) -> list[dict[str, Any]]:
    env = {**os.environ, "HELM_CACHE_HOME": str(tmp / "h"), "HELM_CONFIG_HOME": str(tmp / "h"),
           "HELM_DATA_HOME": str(tmp / "h")}
    out = subprocess.run([tool("helm"), "template", "web", str(chart)], capture_output=True,
                         text=True, env=env, check=True, timeout=120)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_helm_app_between_two_commits(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    write_tree(repo, CHART)
    (repo / "app/values.yaml").write_text(
        "password: Helm-Pw-One\nother: Helm-Other-Same\nreplicas: 1\n")
    commit(repo, "one")
    old = helm_template(repo / "app", tmp_path)
    (repo / "app/values.yaml").write_text(
        "password: Helm-Pw-Two\nother: Helm-Other-Same\nreplicas: 3\n")
    commit(repo, "two")
    new = helm_template(repo / "app", tmp_path)
    # The oracle: what the real helm renders at each commit.
    old_replicas = next(d for d in old if d["kind"] == "Deployment")["spec"]["replicas"]
    new_replicas = next(d for d in new if d["kind"] == "Deployment")["spec"]["replicas"]
    proc = diff("app", "--against", "HEAD~1", "--release-name", "web", "-o", "json", cwd=repo)
    assert proc.returncode == 1, proc.stderr
    assert_no_leak(proc, ["Helm-Pw-One", "Helm-Pw-Two", "Helm-Other-Same"])
    objects = objects_of(proc)
    assert objects["Secret/web-creds"]["keys"] == {"other": "unchanged", "password": "changed"}
    deploy = objects["Deployment/web"]["diff"].splitlines()
    assert f"-  replicas: {old_replicas}" in deploy and f"+  replicas: {new_replicas}" in deploy


def test_kustomize_secret_generator(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")

    def overlay(password: str) -> None:
        write_tree(repo, {"app/kustomization.yaml": f"""
            namespace: apps
            generatorOptions:
              disableNameSuffixHash: true
            secretGenerator:
              - name: gen
                literals:
                  - password={password}
                  - user=Kust-User-Same
            """})

    overlay("Kust-Pw-Before")
    commit(repo, "one")
    overlay("Kust-Pw-After1")
    commit(repo, "two")
    proc = diff("app", "--against", "HEAD~1", "-o", "markdown", cwd=repo)
    assert proc.returncode == 1, proc.stderr
    assert_no_leak(proc, ["Kust-Pw-Before", "Kust-Pw-After1", "Kust-User-Same"])
    assert "password (changed), user (unchanged)" in proc.stdout
    assert "Secret/apps/gen" in proc.stdout


# -- SOPS ----------------------------------------------------------------------------------------

SOPS_SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: sealed
  namespace: apps
stringData:
  password: {password}
  token: Sops-Token-Same
"""


@pytest.fixture(scope="module")
def age_key() -> AgeKey:
    return new_age_key()


def test_sops_values_are_compared_decrypted(tmp_path: Path, age_key: AgeKey) -> None:
    repo = new_repo(tmp_path / "repo")
    (repo / "app").mkdir()
    work = tmp_path / "work"
    work.mkdir()

    def encrypt(password: str) -> None:
        plain = SOPS_SECRET.format(password=password).encode()
        (repo / "app/secret.yaml").write_bytes(sops_encrypt(
            plain, "yaml", work, "--age", age_key.recipient, "--encrypted-regex",
            "^(data|stringData)$"))

    values = ["Sops-Pw-Before", "Sops-Pw-After1", "Sops-Token-Same"]
    encrypt(values[0])
    commit(repo, "one")
    encrypt(values[0])  # re-encrypted: other ciphertext, same content
    commit(repo, "two")
    assert git(repo, "diff", "HEAD~1", "--stat").strip()  # the files did change
    env = sops_env(age_key)
    same = diff("app", "--against", "HEAD~1", "-o", "json", cwd=repo, env=env)
    assert same.returncode == 0, same.stderr
    assert objects_of(same)["Secret/apps/sealed"]["keys"] == {"password": "unchanged",
                                                              "token": "unchanged"}
    encrypt(values[1])
    changed = diff("app", "--against", "HEAD", "-o", "json", cwd=repo, env=env)
    assert changed.returncode == 1, changed.stderr
    assert objects_of(changed)["Secret/apps/sealed"]["keys"] == {"password": "changed",
                                                                 "token": "unchanged"}
    for proc in (same, changed):
        assert_no_leak(proc, values)
    # Without the key: one line, exit 2; --no-secrets compares the ciphertext as stored.
    no_key = diff("app", "--against", "HEAD", cwd=repo, env=sops_env())
    assert_clean_failure(no_key, code=2)
    assert_no_leak(no_key, values)
    stored = diff("app", "--against", "HEAD~1", "--no-secrets", "-o", "json", cwd=repo,
                  env=sops_env())
    assert stored.returncode == 1, stored.stderr
    assert objects_of(stored)["Secret/apps/sealed"]["keys"]["password"] == "changed"
    assert_no_leak(stored, values)


# -- Vault / OpenBao placeholders ----------------------------------------------------------------

def test_vault_placeholders_resolved_and_masked_everywhere(tmp_path: Path,
                                                           openbao: OpenBao,  # noqa: F811
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    first, second = "Bao-Value-Version-1", "Bao-Value-Version-2"
    openbao.kv2_put("secret", "diffapp", {"pw": first})
    openbao.kv2_put("secret", "diffapp", {"pw": second})
    repo = new_repo(tmp_path / "repo")

    def app(version: int) -> None:
        write_tree(repo, {
            "app/secret.yaml": f"""
                apiVersion: v1
                kind: Secret
                metadata: {{name: vaulted, namespace: apps}}
                stringData:
                  pw: <path:secret/data/diffapp#pw#{version}>
                """,
            "app/config.yaml": f"""
                apiVersion: v1
                kind: ConfigMap
                metadata: {{name: inline, namespace: apps}}
                data:
                  dsn: "host=db user=app password=<path:secret/data/diffapp#pw#{version}>"
                  plain: shown
                """,
        })

    app(1)
    commit(repo, "one")
    app(2)
    commit(repo, "two")
    env = {"AVP_TYPE": "vault", "AVP_AUTH_TYPE": "token", "VAULT_ADDR": openbao.addr,
           "VAULT_TOKEN": openbao.token}
    for fmt in ("text", "json", "markdown"):
        proc = diff("app", "--against", "HEAD~1", "-o", fmt, "--debug", cwd=repo, env=env)
        assert proc.returncode == 1, proc.stderr
        assert_no_leak(proc, [first, second])
    out = objects_of(diff("app", "--against", "HEAD~1", "-o", "json", cwd=repo, env=env))
    assert out["Secret/apps/vaulted"]["keys"] == {"pw": "changed"}
    config = out["ConfigMap/apps/inline"]["diff"].splitlines()
    assert "-  dsn: <masked, changed (before)>" in config
    assert "   plain: shown" in config
    # In process, with every log record captured.
    from kiln.core.engine import Engine
    from kiln.diff.against import render_against, render_app
    from kiln.diff.mask import MaskPolicy
    from kiln.diff.objects import diff_objects
    from kiln.diff.report import render

    caplog.set_level(logging.DEBUG)
    engine = Engine(tmp_path / "cache", env={**os.environ, **env}, entry_points=False)
    desired = render_app(engine, repo / "app", None, source_root=None, secrets=True)
    other = render_against(engine, repo / "app", "HEAD~1")
    result = diff_objects(other.objects, desired, policy=MaskPolicy(redactor=engine.redactor))
    text = "".join(render(result, fmt) for fmt in ("text", "json", "markdown"))  # type: ignore[arg-type]
    assert not leaks(text + caplog.text, [first, second])
    assert result.changed


# -- bad input -----------------------------------------------------------------------------------

def test_bad_input_is_one_line_and_exit_two(tmp_path: Path,
                                            two_commits: tuple[Path, list[str]]) -> None:
    repo, values = two_commits
    outside = tmp_path / "outside"
    write_secret_app(outside, password="Out-Pw-1", token="Out-Tok-1", api_key="Out-Api-1",
                     replicas=1)
    short = tmp_path / "short.key"
    short.write_text("too-short\n")
    cases = [
        (["app", "--against", "no-such-rev"], repo, ["--against no-such-rev", "no commit"]),
        (["app", "--against", str(tmp_path / "missing-dir")], repo, ["not a directory"]),
        (["app", "--against", "HEAD"], outside, ["not inside a git repository"]),
        (["app", "--against", "--help-me"], repo, []),
        (["app", "--against", "HEAD", "--secret-fingerprint", str(tmp_path / "nokey")], repo,
         ["--secret-fingerprint", "cannot read the fingerprint key"]),
        (["app", "--against", "HEAD", "--secret-fingerprint", str(short)], repo,
         ["shorter than 16 bytes"]),
        (["app", "--against", "HEAD", "--mask-kind", "not a kind"], repo, ["--mask-kind"]),
        (["app", "--against", "HEAD", "-o", "yaml"], repo, ["yaml"]),
        (["missing-app", "--against", "HEAD"], repo, ["missing-app", "no such directory"]),
        (["app", "--against", "HEAD", "--kubeconfig", "x"], repo, ["--kubeconfig"]),
        (["app", "--no-secrets"], repo, ["--no-secrets"]),
    ]
    for args, cwd, needles in cases:
        proc = diff(*args, cwd=cwd)
        assert_clean_failure(proc, *needles, code=2)
        assert_no_leak(proc, [*values, "Out-Pw-1", "too-short"])
    assert git(repo, "worktree", "list").count("\n") == 1


def test_a_failing_render_at_the_revision_names_rev_and_file(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    write_tree(repo, {"app/bad.yaml": "kind: ConfigMap\nmetadata: [unclosed\n"})
    commit(repo, "broken")
    write_tree(repo, {"app/bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"})
    commit(repo, "fixed")
    proc = diff("app", "--against", "HEAD~1", cwd=repo, tmp=tmp_path / "tmp")
    assert_clean_failure(proc, "HEAD~1:app/bad.yaml", code=2)
    assert "kiln-diff-" not in proc.stderr
    assert git(repo, "worktree", "list").count("\n") == 1
    assert list((tmp_path / "tmp").iterdir()) == []


SLOW_KUSTOMIZE = """\
#!/bin/bash
# A kustomize that takes its time: answers 'version', else records the build and waits.
if [ "$1" = version ]; then echo v5.4.3; exit 0; fi
echo "$2" > {marks}/build-dir
sleep 120 &
wait
"""


def test_sigterm_during_the_revision_render_removes_the_worktree(tmp_path: Path) -> None:
    import signal
    import sys
    import time

    from tests.helpers import REPO

    repo = new_repo(tmp_path / "repo")
    write_tree(repo, {"app/kustomization.yaml": "resources: [cm.yaml]\n",
                      "app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"})
    commit(repo, "kustomize")
    (repo / "app/kustomization.yaml").unlink()  # HEAD: a plain directory app
    commit(repo, "directory")
    marks = tmp_path / "marks"
    marks.mkdir()
    wrapper = tmp_path / "slow-kustomize"
    wrapper.write_text(SLOW_KUSTOMIZE.format(marks=marks))
    wrapper.chmod(0o755)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "KILN_KUSTOMIZE": str(wrapper),
           "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen([sys.executable, "-m", "kiln", "diff", "app", "--against",
                             "HEAD~1"], cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (marks / "build-dir").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the revision was never rendered"
            time.sleep(0.05)
        # The window is real: the worktree is registered and checked out while kustomize runs.
        assert git(repo, "worktree", "list").count("\n") == 2
        assert any(p.name.startswith("kiln-diff-") for p in tmpdir.iterdir())
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert out == "" and err.strip() == "kiln: error: interrupted by SIGTERM"
    assert git(repo, "worktree", "list").count("\n") == 1
    assert not any(p.name.startswith("kiln-diff-") for p in tmpdir.iterdir())


def test_an_app_path_symlinked_out_of_the_repository_at_rev_is_refused(tmp_path: Path
                                                                      ) -> None:
    outside = write_tree(tmp_path / "outside", {"cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: leaked}\ndata: {k: Outside-Vx}\n")})
    repo = new_repo(tmp_path / "repo")
    (repo / "app").symlink_to(outside)
    commit(repo, "a symlink")
    (repo / "app").unlink()
    write_tree(repo, {"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"})
    commit(repo, "a directory")
    proc = diff("app", "--against", "HEAD~1", cwd=repo)
    assert_clean_failure(proc, "--against HEAD~1", "symlink leaving the repository", code=2)
    assert "Outside-Vx" not in proc.stderr
