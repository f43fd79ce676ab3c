"""Argo CD's kustomize options: kiln's output equals ``kubectl kustomize`` run directly on the
overlay Argo CD's ``kustomize edit`` would have produced, written out by hand in each case."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import assert_clean_failure, run_kiln, write_tree
from tests.integration.kustomize_support import (
    BASE,
    kiln_render,
    names,
    raw_kustomize,
    tree_digest,
)

pytestmark = pytest.mark.integration

APP = """
resources: [../../base]
namePrefix: app-
commonLabels: {team: a}
images:
- name: busybox
  newTag: "1.37"
configMapGenerator:
- name: settings
  behavior: merge
  literals: [MODE=web]
"""

COMPONENT = {
    "components/extra/kustomization.yaml": """
        apiVersion: kustomize.config.k8s.io/v1alpha1
        kind: Component
        resources: [extra-cm.yaml]
        patches:
        - target: {kind: Deployment}
          patch: |-
            - op: add
              path: /metadata/annotations
              value: {component: extra}
    """,
    "components/extra/extra-cm.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: extra}
        data: {from: component}
    """,
}

PATCH_FILE = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
      - name: web
        resources:
          limits: {memory: 128Mi}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A checkout: a base, an overlay app, a component and a patch file."""
    return write_tree(tmp_path / "repo", {
        **BASE, **COMPONENT,
        "apps/web/kustomization.yaml": APP,
        "apps/web/patch-memory.yaml": PATCH_FILE,
    })


def handwritten(repo: Path, kustomization: str) -> list[dict[str, Any]]:
    """Build, with kubectl directly, a copy of the app whose kustomization is ``kustomization``."""
    target = repo / "handwritten" / "web"
    shutil.copytree(repo / "apps" / "web", target)
    write_tree(target, {"kustomization.yaml": kustomization})
    return raw_kustomize(target)


CASES: list[tuple[str, dict[str, Any], str]] = [
    ("name-prefix-suffix", {"namePrefix": "x-", "nameSuffix": "-v1"},
     APP.replace("namePrefix: app-", "namePrefix: x-\nnameSuffix: -v1")),
    ("images", {"images": ["nginx=registry.local/nginx:$ARGOCD_APP_REVISION",
                           "busybox=mirror.local/busybox:*"]},
     APP.replace('- name: busybox\n  newTag: "1.37"',
                 '- name: busybox\n  newName: mirror.local/busybox\n  newTag: "1.37"\n'
                 "- name: nginx\n  newName: registry.local/nginx\n  newTag: abc123")),
    ("replicas", {"replicas": [{"name": "web", "count": "3"}]},
     APP + "replicas:\n- name: web\n  count: 3\n"),
    ("common-labels", {"commonLabels": {"env": "${ARGOCD_APP_NAME}"}},
     APP.replace("commonLabels: {team: a}", "commonLabels: {team: a, env: shop}")),
    ("force-common-labels", {"commonLabels": {"team": "b"}, "forceCommonLabels": True},
     APP.replace("commonLabels: {team: a}", "commonLabels: {team: b}")),
    ("label-without-selector", {"commonLabels": {"tier": "front"},
                                "labelWithoutSelector": True},
     APP + "labels:\n- pairs: {tier: front}\n"),
    ("label-include-templates", {"commonLabels": {"tier": "front"},
                                 "labelWithoutSelector": True, "labelIncludeTemplates": True},
     APP + "labels:\n- pairs: {tier: front}\n  includeTemplates: true\n"),
    ("common-annotations", {"commonAnnotations": {"owner": "ops", "rev": "$ARGOCD_APP_REVISION"}},
     APP + "commonAnnotations: {owner: ops, rev: $ARGOCD_APP_REVISION}\n"),
    ("common-annotations-envsubst", {"commonAnnotations": {"rev": "$ARGOCD_APP_REVISION"},
                                     "commonAnnotationsEnvsubst": True},
     APP + "commonAnnotations: {rev: abc123}\n"),
    ("namespace", {"namespace": "prod"}, APP + "namespace: prod\n"),
    ("patch-file", {"patches": [{"path": "patch-memory.yaml", "target": {"kind": "Deployment"}}]},
     APP + "patches:\n- path: patch-memory.yaml\n  target: {kind: Deployment}\n"),
    ("patch-inline", {"patches": [{"patch": "- op: replace\n  path: /spec/ports/0/port\n"
                                            "  value: 8080\n",
                                   "target": {"kind": "Service", "name": "web"}}]},
     APP + "patches:\n- target: {kind: Service, name: web}\n  patch: |\n"
           "    - op: replace\n      path: /spec/ports/0/port\n      value: 8080\n"),
    ("components", {"components": ["../../components/extra", "../../components/missing"],
                    "ignoreMissingComponents": True},
     APP + "components: [../../components/extra]\n"),
    ("everything", {"namePrefix": "all-", "images": ["nginx:2.0"], "replicas": [
        {"name": "web", "count": 2}], "commonLabels": {"env": "prod"},
        "commonAnnotations": {"owner": "ops"}, "namespace": "prod",
        "patches": [{"path": "patch-memory.yaml"}], "components": ["../../components/extra"]},
     APP.replace("namePrefix: app-", "namePrefix: all-")
        .replace("commonLabels: {team: a}", "commonLabels: {team: a, env: prod}")
        .replace('newTag: "1.37"', 'newTag: "1.37"\n- name: nginx\n  newTag: "2.0"')
     + "replicas: [{name: web, count: 2}]\ncommonAnnotations: {owner: ops}\nnamespace: prod\n"
       "patches: [{path: patch-memory.yaml}]\ncomponents: [../../components/extra]\n"),
]


@pytest.mark.parametrize(("settings", "expected_kustomization"),
                         [pytest.param(s, k, id=i) for i, s, k in CASES])
def test_option_matches_handwritten_overlay(repo: Path, cache_dir: Path, settings: dict[str, Any],
                                            expected_kustomization: str) -> None:
    before = tree_digest(repo)
    got = kiln_render(repo / "apps" / "web", repo, cache_dir, {"name": "shop",
                                                                "kustomize": settings},
                      build_env={"ARGOCD_APP_REVISION": "abc123", "ARGOCD_APP_NAME": "shop"})
    assert tree_digest(repo) == before, "kiln changed the checkout"
    assert got == handwritten(repo, expected_kustomization)


def test_plain_app_matches_kubectl(repo: Path, cache_dir: Path) -> None:
    got = kiln_render(repo / "apps" / "web", repo, cache_dir)
    assert got == raw_kustomize(repo / "apps" / "web")


def test_generator_hash_suffix_propagates_through_base_and_overlay(repo: Path,
                                                                   cache_dir: Path) -> None:
    settings = {"kustomize": {"namePrefix": "p-"}}
    got = kiln_render(repo / "apps" / "web", repo, cache_dir, settings, use_cache=True)
    config = next(o for o in got if o["metadata"]["name"].startswith("p-settings-"))
    deploy = next(o for o in got if o["kind"] == "Deployment")
    name = config["metadata"]["name"]
    assert name.startswith("p-settings-") and len(name) > len("p-settings-")
    assert deploy["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"][
        "name"] == name
    assert config["data"] == {"MODE": "web"}
    # Changing a file of the base changes the generated name (and is a cache miss).
    write_tree(repo, {"base/kustomization.yaml": BASE["base/kustomization.yaml"].replace(
        "[MODE=base]", "[MODE=base, EXTRA=1]")})
    again = kiln_render(repo / "apps" / "web", repo, cache_dir, settings, use_cache=True)
    config = next(o for o in again if o["metadata"]["name"].startswith("p-settings-"))
    assert config["metadata"]["name"] != name
    assert config["data"] == {"MODE": "web", "EXTRA": "1"}


def test_cli_flags_through_generic_options(repo: Path, tmp_path: Path) -> None:
    proc = run_kiln("render", str(repo / "apps" / "web"), "--source-root", str(repo),
                    "--cache-dir", str(tmp_path / "c"), "-O", "kustomize.namePrefix=cli-",
                    "-O", "kustomize.images=[nginx:9.9]")
    assert proc.returncode == 0, proc.stderr
    import yaml

    objects = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert names(objects) == names(handwritten(repo, APP.replace("app-", "cli-")))
    assert "nginx:9.9" in proc.stdout


def test_kiln_yaml_section(repo: Path, cache_dir: Path) -> None:
    write_tree(repo, {"apps/web/kiln.yaml": "kustomize:\n  namespace: from-file\n"})
    got = kiln_render(repo / "apps" / "web", repo, cache_dir)
    assert {o["metadata"].get("namespace") for o in got} == {"from-file"}


def test_label_conflict_without_force_fails_like_kustomize_edit(repo: Path,
                                                                tmp_path: Path) -> None:
    proc = run_kiln("render", str(repo / "apps" / "web"), "--source-root", str(repo),
                    "--cache-dir", str(tmp_path / "c"), "-O", "kustomize.commonLabels={team: b}")
    assert_clean_failure(proc, "team", "forceCommonLabels")


def test_annotation_conflict_without_force_fails(repo: Path, tmp_path: Path) -> None:
    write_tree(repo, {"apps/web/kustomization.yaml": APP + "commonAnnotations: {owner: a}\n"})
    proc = run_kiln("render", str(repo / "apps" / "web"), "--source-root", str(repo),
                    "--cache-dir", str(tmp_path / "c"),
                    "-O", "kustomize.commonAnnotations={owner: b}")
    assert_clean_failure(proc, "owner")


def test_missing_component_without_ignore_fails(repo: Path, tmp_path: Path) -> None:
    proc = run_kiln("render", str(repo / "apps" / "web"), "--source-root", str(repo),
                    "--cache-dir", str(tmp_path / "c"),
                    "-O", "kustomize.components=[../../components/missing]")
    assert_clean_failure(proc, "components/missing")


@pytest.mark.parametrize("flag", ["--enable-alpha-plugins", "--enable-exec", "-o out.yaml",
                                  "--helm-command /bin/sh", "--frobnicate"])
def test_refused_build_options(repo: Path, tmp_path: Path, flag: str) -> None:
    proc = run_kiln("render", str(repo / "apps" / "web"), "--source-root", str(repo),
                    "--cache-dir", str(tmp_path / "c"), "-O", f"kustomize.buildOptions={flag}")
    assert_clean_failure(proc, "buildOptions", flag.split()[0])


def test_malformed_inline_patch_option(repo: Path, tmp_path: Path) -> None:
    proc = run_kiln("render", str(repo / "apps" / "web"), "--source-root", str(repo),
                    "--cache-dir", str(tmp_path / "c"),
                    "-O", 'kustomize.patches=[{patch: "foo: [", target: {kind: Deployment}}]')
    assert_clean_failure(proc, "kustomize.patches[0].patch", "malformed YAML")


def test_patch_file_outside_source_root_is_refused(repo: Path, tmp_path: Path) -> None:
    write_tree(tmp_path, {"outside.yaml": PATCH_FILE})
    proc = run_kiln("render", str(repo / "apps" / "web"), "--source-root", str(repo),
                    "--cache-dir", str(tmp_path / "c"),
                    "-O", "kustomize.patches=[{path: ../../../outside.yaml}]")
    assert_clean_failure(proc, "outside the source root")


def test_bundled_example(tmp_path: Path, cache_dir: Path) -> None:
    from tests.helpers import EXAMPLES

    example = EXAMPLES / "kustomize-guestbook"
    got = kiln_render(example / "overlays" / "prod", example, cache_dir)
    copy = tmp_path / "copy"
    shutil.copytree(example, copy)
    kfile = copy / "overlays" / "prod" / "kustomization.yaml"
    kfile.write_text(kfile.read_text() + "images:\n- name: gcr.io/heptio-images/ks-guestbook-demo"
                     "\n  newTag: '0.3'\ncommonLabels: {env: prod}\n"
                     "commonAnnotations: {team: guestbook}\n")
    assert got == raw_kustomize(copy / "overlays" / "prod")
