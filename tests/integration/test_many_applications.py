"""``kiln render --applications FILE|DIR`` in a real git repository with a remote: each
Application rendered as Argo CD would for the checkout (compared with helm template / kubectl
kustomize run directly), the remotes' URLs naming the checkout, and a failing Application
named in its error line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import assert_clean_failure, run_kiln, tool, write_tree
from tests.integration.many_repo import git, make_repo

pytestmark = pytest.mark.integration

REMOTE = "https://git.example.com/platform/apps.git"

WEB = f"""
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: web
  namespace: argocd
spec:
  project: default
  source:
    repoURL: {REMOTE}
    targetRevision: HEAD
    path: apps/helm-0
    helm:
      releaseName: storefront
      parameters:
      - name: greeting
        value: chosen-by-the-application
  destination:
    server: https://kubernetes.default.svc
    namespace: shop
"""

KUST = f"""
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: kust
spec:
  source:
    repoURL: {REMOTE}
    path: apps/kustomize-1
  destination:
    namespace: other
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    make_repo(root, {"helm": 1, "kustomize": 2})
    write_tree(root, {"argocd/web.yaml": WEB, "argocd/kust.yaml": KUST})
    git(root, "remote", "add", "origin", REMOTE)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "applications")
    return root


def raw_helm(root: Path, home: Path, *argv: str) -> list[dict[str, object]]:
    env = dict(os.environ)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        (home / var.lower()).mkdir(parents=True, exist_ok=True)
        env[var] = str(home / var.lower())
    out = subprocess.run([tool("helm"), "template", *argv], cwd=root, env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def raw_kustomize(directory: Path) -> list[dict[str, object]]:
    out = subprocess.run([tool("kubectl"), "kustomize", str(directory)], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_two_application_files_render_as_argo_cd_would(repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    proc = run_kiln("render", "--applications", "../argocd", "-o", "json", "--cache-dir",
                    str(cache), cwd=repo / "apps")  # the repository root comes from git
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [(a["name"], a["path"]) for a in doc["apps"]] == [
        ("web", "apps/helm-0"), ("kust", "apps/kustomize-1")]  # sorted by path
    by_name = {a["name"]: a for a in doc["apps"]}
    assert by_name["web"]["objects"] == raw_helm(
        repo, tmp_path / "h", "storefront", "apps/helm-0", "--namespace", "shop",
        "--include-crds", "--set", "greeting=chosen-by-the-application")
    assert by_name["kust"]["objects"] == raw_kustomize(repo / "apps/kustomize-1")
    one = run_kiln("render", "--applications", str(repo / "argocd/web.yaml"), "-o", "json",
                   "--cache-dir", str(cache))
    assert one.returncode == 0, one.stderr
    again = json.loads(one.stdout)["apps"]
    assert [a["name"] for a in again] == ["web"] and again[0]["cacheHit"] is True
    assert again[0]["objects"] == by_name["web"]["objects"]
    tree = run_kiln("render", "--applications", "argocd", "--output-dir",
                    str(tmp_path / "out"), "--cache-dir", str(cache), cwd=repo)
    assert tree.returncode == 0, tree.stderr
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")
                  if p.is_file()) == ["apps/helm-0/manifest.yaml",
                                      "apps/kustomize-1/manifest.yaml"]


def test_an_application_of_another_repository_is_refused_naming_the_field(
        repo: Path, tmp_path: Path) -> None:
    (repo / "argocd/kust.yaml").write_text(KUST.replace(REMOTE, "https://elsewhere.example/x.git"))
    proc = run_kiln("render", "--applications", "argocd", "--cache-dir", str(tmp_path / "c"),
                    cwd=repo)
    assert_clean_failure(proc, "argocd/kust.yaml", "repoURL")


def test_a_failing_application_is_named_and_the_other_renders(repo: Path, tmp_path: Path
                                                              ) -> None:
    write_tree(repo, {"apps/kustomize-1/kustomization.yaml": "resources: [missing.yaml]\n"})
    out = tmp_path / "out"
    proc = run_kiln("render", "--applications", "argocd", "--output-dir", str(out),
                    "--cache-dir", str(tmp_path / "c"), cwd=repo)
    assert proc.returncode == 1 and proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("kiln: error: ")]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("kiln: error: apps/kustomize-1 (Application kust): "), errors
    assert (out / "apps/helm-0/manifest.yaml").is_file()
    assert not (out / "apps/kustomize-1").exists()


def test_applications_outside_git_need_a_source_root(tmp_path: Path) -> None:
    write_tree(tmp_path / "plain", {"argocd/kust.yaml": KUST,
                                    "apps/kustomize-1/cm.yaml":
                                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"})
    proc = run_kiln("render", "--applications", "argocd", "--cache-dir", str(tmp_path / "c"),
                    cwd=tmp_path / "plain")
    assert_clean_failure(proc, "--source-root", code=2)
    ok = run_kiln("render", "--applications", "argocd", "--source-root", ".", "-o", "json",
                  "--cache-dir", str(tmp_path / "c"), cwd=tmp_path / "plain")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["apps"][0]["objects"][0]["metadata"]["name"] == "x"
