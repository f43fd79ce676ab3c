"""``kiln hydrate`` end to end: real git (a bare remote, a clone, one-app commits), real helm
and kubectl kustomize, real sops with throwaway age keys, the real CLI.

Oracles: the objects the real tools print (``helm template``, ``kubectl kustomize``) or the
files the test wrote, parsed by PyYAML; metadata read with ``json``; commits, trailers, notes
and trees read back with ``git`` itself; file hashes compared before and after a commit; every
secret value the test chose searched raw and base64 in every file of the output and every blob
of the hydrated branch.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.helm.servers import helm_env
from tests.helpers import assert_clean_failure, run_kiln, tool, write_tree
from tests.integration.kustomize_support import raw_kustomize
from tests.integration.sops_helpers import new_age_key, sops_encrypt, sops_env
from tests.secrets_scan import find_plaintext

pytestmark = pytest.mark.integration

REPO_URL = "https://git.example.com/org/gitops.git"
DATE = "1700000000 +0000"
DATE_RFC3339 = "2023-11-14T22:13:20Z"
IDENTITY = {"GIT_AUTHOR_NAME": "Dry Author", "GIT_AUTHOR_EMAIL": "dry@example.com",
            "GIT_COMMITTER_NAME": "Dry Author", "GIT_COMMITTER_EMAIL": "dry@example.com",
            "GIT_AUTHOR_DATE": DATE, "GIT_COMMITTER_DATE": DATE}
HYDRATED_PATHS = ("manifests/web", "charts/demo", "kustomize/base")


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([tool("git"), *args], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", **IDENTITY,
                               **(env or {})}, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def application(name: str, path: str, namespace: str, **source: Any) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": "argocd"},
            "spec": {"project": "default",
                     "source": {"repoURL": REPO_URL, "targetRevision": "HEAD", "path": path,
                                **source},
                     "destination": {"server": "https://kubernetes.default.svc",
                                     "namespace": namespace}}}


APPS = {
    "web": application("web", "manifests/web", "web"),
    "demo": application("demo", "charts/demo", "demo",
                        helm={"releaseName": "demo-rel",
                              "parameters": [{"name": "replicas", "value": "3"}]}),
    "kust": application("kust", "kustomize/base", "kust", kustomize={"namePrefix": "k-"}),
}

FILES = {
    "manifests/web/cm.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: web
        data:
          colour: blue
          enabled: "yes"
          script: |
            echo one
            echo two
        """,
    "manifests/web/svc.yaml": """
        apiVersion: v1
        kind: Service
        metadata:
          name: web
        spec:
          selector: {app: web}
          ports:
          - port: 8080
        """,
    "charts/demo/Chart.yaml": """
        apiVersion: v2
        name: demo
        version: 0.1.0
        """,
    "charts/demo/values.yaml": """
        replicas: 1
        """,
    "charts/demo/templates/deploy.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{ .Release.Name }}
          namespace: {{ .Release.Namespace }}
        spec:
          replicas: {{ .Values.replicas }}
          selector:
            matchLabels: {app: demo}
          template:
            metadata:
              labels: {app: demo}
            spec:
              containers:
              - name: demo
                image: nginx:1.27
        """,
    "kustomize/base/kustomization.yaml": """
        resources: [cm.yaml]
        """,
    "kustomize/base/cm.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: settings
        data:
          mode: fast
        """,
}


def declare(repo: Path, apps: dict[str, dict[str, Any]]) -> None:
    folder = repo / "apps"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    for name, doc in apps.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(doc))


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A dry repository (a clone of a bare remote) with three Applications, one commit."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    root = tmp_path / "dry"
    git(tmp_path, "clone", "-q", str(bare), str(root))
    git(root, "checkout", "-q", "-b", "main")
    write_tree(root, FILES)
    declare(root, APPS)
    commit(root, "Add three apps\n\nThe body of the dry commit.")
    git(root, "push", "-q", "origin", "main")
    return root


def hydrate(repo: Path, *args: str, env: dict[str, str] | None = None,
            cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    cache = cache or repo.parent / "cache"
    return run_kiln("hydrate", "--applications", str(repo / "apps"), *args,
                    env={**IDENTITY, "GIT_CONFIG_NOSYSTEM": "1", "KILN_CACHE_DIR": str(cache),
                         **(env or {})}, timeout=300)


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc


def hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.parts}


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def by_name(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(objects, key=lambda o: (o["kind"], o["metadata"]["name"]))


def test_layout_files_and_contents(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = ok(hydrate(repo, "--output-dir", str(out)))
    assert proc.stdout == ""
    dry_sha = git(repo, "rev-parse", "HEAD").strip()
    expected = {".gitattributes", "hydrator.metadata", ".kiln-hydrate.json"} | {
        f"{p}/{f}" for p in HYDRATED_PATHS
        for f in ("manifest.yaml", "hydrator.metadata", "README.md")}
    assert set(hashes(out)) == expected
    # manifests: what the tools themselves give
    web = [yaml.safe_load((repo / "manifests/web" / f).read_text()) for f in ("cm.yaml",
                                                                               "svc.yaml")]
    assert by_name(docs(out / "manifests/web/manifest.yaml")) == by_name(web)
    helm = subprocess.run([tool("helm"), "template", "demo-rel", str(repo / "charts/demo"),
                           "--namespace", "demo", "--set", "replicas=3"], check=True,
                          capture_output=True, text=True, env=helm_env(tmp_path / "helm"))
    assert docs(out / "charts/demo/manifest.yaml") == [d for d in yaml.safe_load_all(
        helm.stdout) if d]
    kustomized = raw_kustomize(repo / "kustomize/base")
    assert [o["metadata"]["name"] for o in kustomized] == ["settings"]
    kustomized[0]["metadata"]["name"] = "k-settings"  # the Application's namePrefix
    assert docs(out / "kustomize/base/manifest.yaml") == kustomized
    # metadata
    root_meta = json.loads((out / "hydrator.metadata").read_text())
    assert root_meta == {"repoURL": str(repo.parent / "remote.git"), "drySha": dry_sha,
                         "author": "Dry Author <dry@example.com>", "date": DATE_RFC3339,
                         "subject": "Add three apps", "body": "The body of the dry commit.\n"}
    for path in HYDRATED_PATHS:
        meta = json.loads((out / path / "hydrator.metadata").read_text())
        assert meta["drySha"] == dry_sha and meta["repoURL"] == REPO_URL
        assert meta["commands"] == ["kiln hydrate --applications apps --output-dir OUT"]
        readme = (out / path / "README.md").read_text()
        assert f"git clone {REPO_URL}\n" in readme and f"git checkout {dry_sha}\n" in readme
    # manifest text: sorted keys, two-space indent, the literal block kept
    text = (out / "manifests/web/manifest.yaml").read_text()
    assert text.startswith("apiVersion: v1\ndata:\n  colour: blue\n  enabled: \"yes\"\n"
                           "  script: |\n    echo one\n    echo two\nkind: ConfigMap\n")
    assert "\n---\napiVersion: v1\nkind: Service\n" in text
    assert "  ports:\n    - port: 8080\n" in text


def test_two_runs_give_identical_bytes_and_a_rerun_writes_nothing(repo: Path,
                                                                  tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    ok(hydrate(repo, "--output-dir", str(one)))
    ok(hydrate(repo, "--output-dir", str(two), "--no-cache", "--jobs", "1"))
    assert hashes(one) == hashes(two)
    for rel in hashes(one):
        assert (one / rel).read_bytes() == (two / rel).read_bytes()
    stamps = {rel: (one / rel).stat().st_mtime_ns for rel in hashes(one)}
    proc = ok(hydrate(repo, "--output-dir", str(one)))
    assert {rel: (one / rel).stat().st_mtime_ns for rel in hashes(one)} == stamps
    assert "0 changed, 0 removed, 0 file(s) written" in proc.stderr


def test_one_app_commit_changes_only_that_app_and_the_root_metadata(repo: Path,
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "out"
    ok(hydrate(repo, "--output-dir", str(out)))
    before = hashes(out)
    cm = repo / "manifests/web/cm.yaml"
    cm.write_text(cm.read_text().replace("colour: blue", "colour: green"))
    new_sha = commit(repo, "web: green")
    ok(hydrate(repo, "--output-dir", str(out)))
    after = hashes(out)
    assert {p for p in after if after[p] != before.get(p)} == {
        "manifests/web/manifest.yaml", "manifests/web/hydrator.metadata",
        "manifests/web/README.md", "hydrator.metadata"}
    assert json.loads((out / "hydrator.metadata").read_text())["drySha"] == new_sha
    assert json.loads((out / "manifests/web/hydrator.metadata").read_text())["drySha"] == new_sha
    assert docs(out / "manifests/web/manifest.yaml")[0]["data"]["colour"] == "green"


def test_apps_that_disappeared_are_removed_foreign_files_kept(repo: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "out"
    ok(hydrate(repo, "--output-dir", str(out)))
    (out / "charts/demo/NOTES.txt").write_text("written by someone else")
    (out / "ci.yaml").write_text("mine")
    declare(repo, {"web": APPS["web"]})
    commit(repo, "drop two apps")
    proc = ok(hydrate(repo, "--output-dir", str(out)))
    assert "2 removed" in proc.stderr
    assert not (out / "kustomize").exists()
    assert sorted(p.name for p in (out / "charts/demo").iterdir()) == ["NOTES.txt"]
    assert (out / "ci.yaml").read_text() == "mine"
    assert (out / "manifests/web/manifest.yaml").is_file()


def blobs(repo: Path, ref: str) -> dict[str, bytes]:
    names = git(repo, "ls-tree", "-r", "--name-only", ref).split()
    return {n: subprocess.run([tool("git"), "show", f"{ref}:{n}"], cwd=repo, check=True,
                              capture_output=True).stdout for n in names}


def trailers(repo: Path, ref: str) -> list[tuple[str, str]]:
    message = git(repo, "log", "-1", "--format=%B", ref)
    parsed = subprocess.run([tool("git"), "interpret-trailers", "--parse"], input=message,
                            capture_output=True, text=True, check=True).stdout
    return [tuple(line.split(": ", 1)) for line in parsed.splitlines()]  # type: ignore[misc]


def test_branch_commit_with_trailers_notes_no_empty_commit_and_push(repo: Path,
                                                                    tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    dry_sha = git(repo, "rev-parse", "HEAD").strip()
    user_head = git(repo, "rev-parse", "HEAD")
    proc = ok(hydrate(repo, "--branch", "environments/dev"))
    hydrated = proc.stdout.strip()
    assert hydrated == git(repo, "rev-parse", "environments/dev").strip()
    # the user's checkout is untouched: same branch, same HEAD, clean, no worktree left
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git(repo, "rev-parse", "HEAD") == user_head
    assert git(repo, "status", "--porcelain") == ""
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    # an orphan branch holding exactly the layout
    assert git(repo, "rev-list", "--count", "environments/dev").strip() == "1"
    files = blobs(repo, "environments/dev")
    assert set(files) == {".gitattributes", "hydrator.metadata", ".kiln-hydrate.json"} | {
        f"{p}/{f}" for p in HYDRATED_PATHS
        for f in ("manifest.yaml", "hydrator.metadata", "README.md")}
    assert json.loads(files["hydrator.metadata"])["drySha"] == dry_sha
    message = git(repo, "log", "-1", "--format=%B", "environments/dev")
    assert message.splitlines()[0] == f"{dry_sha[:7]}: Add three apps"
    found = trailers(repo, "environments/dev")
    assert ("Argocd-reference-commit-sha", dry_sha) in found
    assert ("Argocd-reference-commit-subject", "Add three apps") in found
    assert ("Argocd-reference-commit-author", "Dry Author <dry@example.com>") in found
    assert ("Argocd-reference-commit-date", DATE_RFC3339) in found
    assert ("Argocd-reference-commit-repourl", str(bare)) in found
    assert json.loads(dict(found)["Argocd-reference-commit-body"]) == \
        "The body of the dry commit."
    # the user's own identity made the commit (the test's GIT_COMMITTER_*)
    assert git(repo, "log", "-1", "--format=%cn <%ce>", "environments/dev").strip() == \
        "Dry Author <dry@example.com>"
    note = git(repo, "notes", "--ref=hydrator.metadata", "show", "environments/dev")
    assert json.loads(note) == {"drySha": dry_sha}
    # git reads the .gitattributes kiln wrote as Argo CD's
    checkout = tmp_path / "hydrated"
    git(tmp_path, "clone", "-q", "--branch", "environments/dev", str(repo), str(checkout))
    attr = git(checkout, "check-attr", "linguist-generated", "--", "charts/demo/README.md",
               "hydrator.metadata", "charts/demo/manifest.yaml")
    assert attr.splitlines() == ["charts/demo/README.md: linguist-generated: true",
                                 "hydrator.metadata: linguist-generated: true",
                                 "charts/demo/manifest.yaml: linguist-generated: unspecified"]
    # nothing pushed unless asked
    assert git(bare, "branch", "--list", "environments/dev") == ""

    # a dry commit that changes no manifest: no new commit, only a note, exit 0
    empty_sha = commit(repo, "docs only")
    proc = ok(hydrate(repo, "--branch", "environments/dev"))
    assert proc.stdout == ""
    assert "no manifest changed: nothing committed to environments/dev" in proc.stderr
    assert git(repo, "rev-parse", "environments/dev").strip() == hydrated
    note = git(repo, "notes", "--ref=hydrator.metadata", "show", "environments/dev")
    assert json.loads(note) == {"drySha": empty_sha}

    # a one-app commit: one new commit touching that app's files and the root metadata only
    cm = repo / "manifests/web/cm.yaml"
    cm.write_text(cm.read_text().replace("colour: blue", "colour: red"))
    web_sha = commit(repo, "web: red")
    proc = ok(hydrate(repo, "--branch", "environments/dev", "--push"))
    second = proc.stdout.strip()
    assert git(repo, "rev-parse", "environments/dev^").strip() == hydrated
    changed = git(repo, "diff", "--name-only", hydrated, second).split()
    assert sorted(changed) == ["hydrator.metadata", "manifests/web/README.md",
                               "manifests/web/hydrator.metadata", "manifests/web/manifest.yaml"]
    assert ("Argocd-reference-commit-sha", web_sha) in trailers(repo, "environments/dev")
    # pushed: the bare remote has the branch and the note
    assert git(bare, "rev-parse", "environments/dev").strip() == second
    assert json.loads(git(bare, "notes", "--ref=hydrator.metadata", "show", second)) == {
        "drySha": web_sha}


def test_uncommitted_changes_refused_with_branch(repo: Path) -> None:
    (repo / "manifests/web/extra.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n"
                                                   "metadata: {name: extra}\n")
    proc = hydrate(repo, "--branch", "hydrated")
    assert_clean_failure(proc, "uncommitted changes (manifests/web/extra.yaml)", code=2)
    assert "hydrated" not in git(repo, "branch", "--list")


def test_credentials_never_reach_the_metadata(repo: Path, tmp_path: Path) -> None:
    git(repo, "remote", "set-url", "origin", "https://kiln:tok-Cred-9876@git.example.com/o/r.git")
    out = tmp_path / "out"
    proc = ok(hydrate(repo, "--output-dir", str(out)))
    assert json.loads((out / "hydrator.metadata").read_text())["repoURL"] == \
        "https://git.example.com/o/r.git"
    assert find_plaintext([out], ["tok-Cred-9876"]) == []
    assert "tok-Cred-9876" not in proc.stderr + proc.stdout
    ok(hydrate(repo, "--output-dir", str(out), "--repo-url",
               "https://x:tok-Flag-5432@git.example.com/o/r.git"))
    assert json.loads((out / "hydrator.metadata").read_text())["repoURL"] == \
        "https://git.example.com/o/r.git"
    assert find_plaintext([out], ["tok-Cred-9876", "tok-Flag-5432"]) == []


def test_a_failing_app_writes_nothing_and_commits_nothing(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ok(hydrate(repo, "--output-dir", str(out), "--branch", "hydrated"))
    before, branch_before = hashes(out), git(repo, "rev-parse", "hydrated")
    (repo / "charts/demo/templates/deploy.yaml").write_text("{{ fail \"broken chart\" }}\n")
    cm = repo / "manifests/web/cm.yaml"
    cm.write_text(cm.read_text().replace("colour: blue", "colour: green"))
    commit(repo, "break the chart")
    proc = hydrate(repo, "--output-dir", str(out), "--branch", "hydrated")
    assert_clean_failure(proc, "charts/demo (Application demo)", "nothing written", code=1)
    assert hashes(out) == before
    assert git(repo, "rev-parse", "hydrated") == branch_before


def test_destination_at_the_root_is_refused(repo: Path, tmp_path: Path) -> None:
    declare(repo, {**APPS, "root": application("root", ".", "x")})
    commit(repo, "an app at the root")
    proc = hydrate(repo, "--output-dir", str(tmp_path / "out"))
    assert_clean_failure(proc, "Application root", "root", code=1)
    assert not (tmp_path / "out").exists()


# -- secrets -------------------------------------------------------------------------------

SOPS_SECRET = b"""\
apiVersion: v1
kind: Secret
metadata:
  name: db
type: Opaque
stringData:
  password: pw-Hydrate-S3cr3t-31
"""
ENV_PLAIN = b"API_TOKEN=tok-Hydrate-Env-S3cr3t-62\n"
AVP_SECRET = """
    apiVersion: v1
    kind: Secret
    metadata:
      name: vaulted
      annotations:
        avp.kubernetes.io/path: secret/data/app
    type: Opaque
    stringData:
      token: <token>
      inline: <path:secret/data/app#inline>
    """
VALUES = ["pw-Hydrate-S3cr3t-31", "tok-Hydrate-Env-S3cr3t-62"]


@pytest.fixture
def secret_repo(repo: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The repo plus a directory app with a SOPS Secret and an AVP Secret, and a kustomize app
    whose secretGenerator reads a SOPS-encrypted env file; the age key is in the environment,
    so a render that resolved secrets would hold the plaintext."""
    key = new_age_key()
    args = ["--age", key.recipient]
    write_tree(repo, {"secrets/plain/vaulted.yaml": AVP_SECRET,
                      "secrets/kust/kustomization.yaml": """
                          secretGenerator:
                          - name: api
                            envs: [api.env]
                          """})
    (repo / "secrets/plain/db.yaml").write_bytes(
        sops_encrypt(SOPS_SECRET, "yaml", tmp_path, *args, "--encrypted-regex",
                     "^(data|stringData)$"))
    (repo / "secrets/kust/api.env").write_bytes(sops_encrypt(ENV_PLAIN, "dotenv", tmp_path,
                                                             *args))
    declare(repo, {**APPS, "plain": application("plain", "secrets/plain", "sec"),
                   "kgen": application("kgen", "secrets/kust", "sec")})
    commit(repo, "apps with secrets")
    env = sops_env(key)
    env = {k: v for k, v in env.items() if k.startswith("SOPS_")}
    return repo, env


def test_no_secret_value_in_the_tree_or_the_commit(secret_repo: tuple[Path, dict[str, str]],
                                                   tmp_path: Path) -> None:
    repo, env = secret_repo
    out = tmp_path / "out"
    proc = ok(hydrate(repo, "--output-dir", str(out), "--branch", "hydrated", env=env))
    assert find_plaintext([out], VALUES) == []
    committed = blobs(repo, "hydrated")
    for name, data in committed.items():
        for value in VALUES:
            raw = value.encode()
            for form in (raw, base64.b64encode(raw), base64.b64encode(raw).rstrip(b"=")):
                assert form not in data, (name, value)
    message = git(repo, "log", "-1", "--format=%B", "hydrated")
    assert not [v for v in VALUES if v in message + proc.stdout + proc.stderr]
    # references stay placeholders, SOPS stays ciphertext
    plain = {o["metadata"]["name"]: o for o in docs(out / "secrets/plain/manifest.yaml")}
    assert plain["vaulted"]["stringData"] == {"token": "<token>",
                                              "inline": "<path:secret/data/app#inline>"}
    assert plain["db"]["stringData"]["password"].startswith("ENC[AES256_GCM,")
    assert "sops" in plain["db"]
    generated = docs(out / "secrets/kust/manifest.yaml")[0]
    assert generated["kind"] == "Secret"
    assert base64.b64decode(generated["data"]["API_TOKEN"]).startswith(b"ENC[AES256_GCM,")


def test_convert_mode_writes_external_secrets(secret_repo: tuple[Path, dict[str, str]],
                                              tmp_path: Path) -> None:
    repo, env = secret_repo
    out = tmp_path / "out"
    ok(hydrate(repo, "--output-dir", str(out), "--external-secrets", "convert",
               "--secret-store", "vault-backend:ClusterSecretStore", env=env))
    plain = {(o["kind"], o["metadata"]["name"]): o
             for o in docs(out / "secrets/plain/manifest.yaml")}
    assert ("Secret", "vaulted") not in plain
    converted = plain[("ExternalSecret", "vaulted")]
    assert converted["spec"]["secretStoreRef"] == {"name": "vault-backend",
                                                   "kind": "ClusterSecretStore"}
    assert "<token>" not in json.dumps(converted)
    assert find_plaintext([out], VALUES) == []


def test_a_resolved_value_is_refused_naming_app_and_object(
        secret_repo: tuple[Path, dict[str, str]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself: outcomes rendered WITH secrets (the real SOPS decryption, as a bug
    or a plugin could produce) are refused before anything is written."""
    from kiln.apps import load_applications
    from kiln.core.engine import Engine
    from kiln.hydrate.guard import SecretInOutput
    from kiln.hydrate.run import HydrateFailed, hydrated_apps
    from kiln.many.runner import render_many

    repo, env = secret_repo
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    engine = Engine(tmp_path / "cache", use_cache=False)
    specs = [s for s in load_applications(repo / "apps", repo_root=repo)
             if s.name in ("plain", "kgen")]
    outcomes = render_many(engine, repo, specs, secrets=True)
    assert all(o.ok for o in outcomes)
    assert VALUES[0] in json.dumps(outcomes[1].result.objects)  # type: ignore[union-attr]
    for outcome in outcomes:  # as if a renderer had filled values in, unannounced
        outcome.result.secrets_resolved = False  # type: ignore[union-attr]
    with pytest.raises(HydrateFailed) as caught:
        hydrated_apps(engine, repo, outcomes)
    errors = caught.value.errors
    assert all(isinstance(e, SecretInOutput) for e in errors)
    lines = [e.one_line() for e in errors]
    assert any("secrets/plain (Application plain)" in line and "Secret/db" in line
               for line in lines), lines
    assert any("secrets/kust (Application kgen)" in line for line in lines), lines
    text = caught.value.one_line() + "".join(caught.value.details())
    assert not [v for v in VALUES if v in text]
    assert find_plaintext([tmp_path], VALUES) == []


# -- the command line ----------------------------------------------------------------------


@pytest.mark.parametrize(("args", "needle"), [
    ((), "give --output-dir OUT, --branch B, or both"),
    (("--output-dir", "x", "--push"), "--push needs --branch"),
    (("--branch", "-x"), "not a branch name"),
    (("--branch", "a..b"), "not a branch name"),
])
def test_usage_errors(repo: Path, args: tuple[str, ...], needle: str) -> None:
    assert_clean_failure(hydrate(repo, *args), needle, code=2)


def test_layout_name_quiet_and_no_progress_off_a_terminal(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = ok(hydrate(repo, "--output-dir", str(out), "--layout", "name", "-q", "-j", "2"))
    assert proc.stdout == "" and proc.stderr == ""
    assert {p.parent.as_posix() for p in map(Path, hashes(out)) if p.name == "manifest.yaml"} \
        == {"web", "demo", "kust"}
    proc = ok(hydrate(repo, "--output-dir", str(out), "--layout", "name"))
    assert proc.stderr.splitlines() == [
        f"kiln: hydrate: 3 app(s) into {out}: 0 changed, 0 removed, 0 file(s) written"]
    # switching layouts: the old paths are stale, the new ones written
    proc = ok(hydrate(repo, "--output-dir", str(out)))
    assert "3 changed, 3 removed" in proc.stderr
    assert not (out / "web").exists() and (out / "manifests/web/manifest.yaml").is_file()


def test_commit_hooks_never_run_push_hooks_do(repo: Path, tmp_path: Path) -> None:
    hooks = repo / ".git" / "hooks"
    marker = tmp_path / "ran"
    for name in ("pre-commit", "commit-msg", "post-commit", "post-checkout", "pre-push"):
        hook = hooks / name
        hook.write_text(f"#!/bin/sh\necho {name} >> {marker}\n")
        hook.chmod(0o755)
    ok(hydrate(repo, "--branch", "hydrated"))
    assert not marker.exists()
    ok(hydrate(repo, "--branch", "hydrated", "--push"))
    assert marker.read_text().split() == ["pre-push", "pre-push"]  # the branch, the notes
