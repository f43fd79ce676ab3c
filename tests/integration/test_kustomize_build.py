"""Kustomize builds: helmCharts, concurrency on one checkout, caching, bad input, confinement."""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from kiln.core.engine import Engine
from tests.helpers import REPO, assert_clean_failure, run_kiln, tool, write_tree
from tests.integration.kustomize_support import (
    BASE,
    kiln_render,
    raw_kustomize,
    tree_digest,
)

pytestmark = pytest.mark.integration

FIXTURES = REPO / "tests" / "fixtures" / "kustomize"
OVERLAY = "resources: [../../base]\nnamePrefix: app-\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A checkout with a base and an overlay app."""
    return write_tree(tmp_path / "repo", {**BASE, "apps/web/kustomization.yaml": OVERLAY})


def render_cli(app: Path, root: Path, cache: Path, *args: str,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_kiln("render", str(app), "--source-root", str(root), "--cache-dir", str(cache),
                    *args, env=env)


# -- helmCharts ------------------------------------------------------------------------------


def test_helm_charts_with_enable_helm_match_kubectl(tmp_path: Path, cache_dir: Path) -> None:
    app = tmp_path / "helm-app"
    shutil.copytree(FIXTURES / "helm-app", app)
    write_tree(app, {"kiln.yaml": "kubeVersion: '1.29.0'\napiVersions: [batch/v9]\n"
                                  "kustomize:\n  buildOptions: --enable-helm\n"})
    before = tree_digest(app)
    got = kiln_render(app, app, cache_dir)
    assert tree_digest(app) == before, "kiln wrote into the checkout"
    expected = raw_kustomize(app, "--enable-helm", "--helm-command", tool("helm"),
                             "--helm-kube-version", "1.29.0", "--helm-api-versions", "batch/v9")
    assert got == expected
    data = next(o for o in got if o["metadata"]["name"] == "k-demo-tiny")["data"]
    assert data["greeting"] == "hello from kustomize"
    assert data["kubeVersion"] == "v1.29.0" and data["hasBatchV9"] == "true"


def test_helm_chart_values_are_inputs(tmp_path: Path, cache_dir: Path) -> None:
    app = tmp_path / "helm-app"
    shutil.copytree(FIXTURES / "helm-app", app)
    settings = {"kustomize": {"buildOptions": "--enable-helm"}}
    first = kiln_render(app, app, cache_dir, settings, use_cache=True)
    values = app / "charts" / "tiny" / "values.yaml"
    values.write_text(values.read_text().replace("replicas: 1", "replicas: 7"))
    second = kiln_render(app, app, cache_dir, settings, use_cache=True)
    assert first != second
    assert next(o for o in second if o["metadata"]["name"] == "k-demo-tiny")["data"][
        "replicas"] == "7"


def test_helm_charts_without_enable_helm_is_a_clean_error(tmp_path: Path) -> None:
    app = tmp_path / "helm-app"
    shutil.copytree(FIXTURES / "helm-app", app)
    proc = render_cli(app, app, tmp_path / "c")
    assert_clean_failure(proc, "--enable-helm")


# -- concurrency and the checkout ------------------------------------------------------------


def test_two_renders_of_one_checkout_run_at_once(repo: Path, tmp_path: Path) -> None:
    """Argo CD serialises these (kustomize edit in the checkout); kiln runs them side by side."""
    before = tree_digest(repo)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "kiln", "render", str(repo / "apps" / "web"), "--source-root",
             str(repo), "--no-cache", "-O", f"kustomize.namePrefix={prefix}",
             "-O", f"kustomize.namespace={prefix.rstrip('-')}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for prefix in ("one-", "two-")
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    assert tree_digest(repo) == before, "kiln changed the checkout"
    for prefix, (out, _) in zip(("one-", "two-"), outputs, strict=True):
        hand = repo / f"hand-{prefix}" / "web"
        write_tree(hand, {"kustomization.yaml": OVERLAY.replace("app-", prefix) +
                          f"namespace: {prefix.rstrip('-')}\n"})
        expected = raw_kustomize(hand)
        assert [d for d in yaml.safe_load_all(out) if d] == expected


# -- cache -----------------------------------------------------------------------------------


def test_cache_hit_never_runs_kubectl(repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    app = repo / "apps" / "web"
    first = render_cli(app, repo, cache)
    assert first.returncode == 0, first.stderr
    # A kubectl that would fail on any call: a hit must not need it, not even for its version.
    shim = tmp_path / "bin" / "kubectl"
    shim.parent.mkdir()
    real = tool("kubectl")
    # Same size and mtime as the real binary is not needed: the memo is keyed by the binary
    # kiln finds, so point KILN_KUBECTL at the real one and break PATH instead.
    shim.write_text("#!/bin/sh\necho called >> \"$0.log\"\nexit 1\n")
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    env = {"KILN_KUBECTL": real, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}
    second = render_cli(app, repo, cache, "--debug", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert "cache hit" in second.stderr
    assert "running" not in second.stderr, second.stderr
    assert not (shim.parent / "kubectl.log").exists()


def test_change_in_nested_base_file_is_a_miss(repo: Path, cache_dir: Path) -> None:
    engine = Engine(cache_dir, entry_points=False)
    app = engine.load_app(repo / "apps" / "web", source_root=repo)
    assert not engine.render(app).cache_hit
    assert engine.render(app).cache_hit
    deploy = repo / "base" / "deploy.yaml"
    deploy.write_text(deploy.read_text().replace("nginx:1.25", "nginx:1.26"))
    result = engine.render(app)
    assert not result.cache_hit
    assert "nginx:1.26" in result.to_yaml()
    assert set(result.inputs) == {"kustomization.yaml", "../../base/kustomization.yaml",
                                  "../../base/deploy.yaml", "../../base/service.yaml",
                                  "../../base/app.properties", "../../base/extra.conf",
                                  "../../base/creds.env"}
    env_file = repo / "base" / "creds.env"
    env_file.write_text("USER=root\n")
    changed = engine.render(app)
    assert not changed.cache_hit
    secret = next(o for o in changed.objects if o["kind"] == "Secret")
    assert secret["data"] == {"USER": "cm9vdA=="}


def test_capitalised_kustomization_file(tmp_path: Path, cache_dir: Path) -> None:
    root = write_tree(tmp_path / "repo", {**BASE, "apps/web/Kustomization": OVERLAY})
    got = kiln_render(root / "apps" / "web", root, cache_dir, {"kustomize": {"nameSuffix": "-x"}})
    write_tree(root, {"hand/web/Kustomization": OVERLAY + "nameSuffix: -x\n"})
    assert got == raw_kustomize(root / "hand" / "web")


def test_kiln_kustomize_binary_is_used(repo: Path, tmp_path: Path) -> None:
    """KILN_KUSTOMIZE names a standalone kustomize. None ships on PyPI, so this one is a shell
    script that logs its call and hands ``build`` to the real ``kubectl kustomize``."""
    script = tmp_path / "kustomize"
    log = tmp_path / "calls.log"
    script.write_text(
        "#!/bin/sh\n"
        f"echo \"$@\" >> {log}\n"
        "if [ \"$1\" = version ]; then echo v5.8.1-test; exit 0; fi\n"
        "[ \"$1\" = build ] || exit 2\nshift\n"
        f"exec {tool('kubectl')} kustomize \"$@\"\n")
    script.chmod(0o755)
    proc = render_cli(repo / "apps" / "web", repo, tmp_path / "c",
                      env={"KILN_KUSTOMIZE": str(script)})
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "version" and calls[1].startswith("build ")
    assert [d for d in yaml.safe_load_all(proc.stdout) if d] == raw_kustomize(
        repo / "apps" / "web")


def test_tool_version_is_in_the_cache_key(repo: Path, tmp_path: Path) -> None:
    engine = Engine(tmp_path / "c", entry_points=False)
    app = engine.load_app(repo / "apps" / "web", source_root=repo)
    version = engine.plugins.renderers.get("kustomize").tool_version(engine.render_context())
    assert "Kustomize Version: v5" in version
    key = engine.render(app).key
    other = Engine(tmp_path / "c", entry_points=False)
    memo = other.tool_versions._load()
    for ident in memo:
        memo[ident] = "Kustomize Version: v0.0.0"
    assert other.render(other.load_app(repo / "apps" / "web", source_root=repo)).key != key


# -- bad input -------------------------------------------------------------------------------


def test_missing_resource(repo: Path, tmp_path: Path) -> None:
    write_tree(repo, {"apps/web/kustomization.yaml": "resources: [../../base, gone.yaml]\n"})
    proc = render_cli(repo / "apps" / "web", repo, tmp_path / "c")
    assert_clean_failure(proc, "kustomization.yaml", "gone.yaml", "no such file")


def test_bad_patch_target(repo: Path, tmp_path: Path) -> None:
    write_tree(repo, {"apps/web/kustomization.yaml": OVERLAY + "patches:\n- path: p.yaml\n",
                      "apps/web/p.yaml": "apiVersion: apps/v1\nkind: Deployment\n"
                                         "metadata: {name: nothing-here}\nspec: {replicas: 2}\n"})
    proc = render_cli(repo / "apps" / "web", repo, tmp_path / "c")
    assert_clean_failure(proc, "nothing-here")
    assert str(tmp_path / "c") not in proc.stderr, "private build paths leak into the error"


def test_cycle(repo: Path, tmp_path: Path) -> None:
    write_tree(repo, {"apps/a/kustomization.yaml": "resources: [../b]\n",
                      "apps/b/kustomization.yaml": "resources: [../a]\n"})
    proc = render_cli(repo / "apps" / "a", repo, tmp_path / "c")
    assert_clean_failure(proc, "cycle")


def test_malformed_kustomization(repo: Path, tmp_path: Path) -> None:
    write_tree(repo, {"apps/web/kustomization.yaml": "resources: [../../base\n"})
    proc = render_cli(repo / "apps" / "web", repo, tmp_path / "c")
    assert_clean_failure(proc, "kustomization.yaml", "malformed YAML")


def test_unknown_option_key(repo: Path, tmp_path: Path) -> None:
    proc = render_cli(repo / "apps" / "web", repo, tmp_path / "c", "-O", "kustomize.prefix=x")
    assert_clean_failure(proc, "kustomize.prefix")


# -- confinement -----------------------------------------------------------------------------


def test_resource_outside_source_root_is_refused(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "repo", {"app/kustomization.yaml": "resources: [../../x.yaml]\n"})
    write_tree(tmp_path, {"x.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"})
    proc = render_cli(root / "app", root, tmp_path / "c")
    assert_clean_failure(proc, "outside the source root")


def test_symlink_out_of_root_is_refused(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "repo", {"app/kustomization.yaml": "resources: [cm.yaml]\n"})
    write_tree(tmp_path, {"secret.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\n"})
    (root / "app" / "cm.yaml").symlink_to(tmp_path / "secret.yaml")
    proc = render_cli(root / "app", root, tmp_path / "c")
    assert_clean_failure(proc, "resolves outside the source root")


def test_symlink_inside_root_behaves_as_in_the_checkout(tmp_path: Path, cache_dir: Path) -> None:
    root = write_tree(tmp_path / "repo", {**BASE, "app/kustomization.yaml": "resources: [b]\n"})
    (root / "app" / "b").symlink_to("../base")
    assert kiln_render(root / "app", root, cache_dir) == raw_kustomize(root / "app")


def test_default_load_restrictor_stays_on(tmp_path: Path) -> None:
    files = {"shared/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\n",
             "app/kustomization.yaml": "resources: [../shared/cm.yaml]\n"}
    root = write_tree(tmp_path / "repo", files)
    proc = render_cli(root / "app", root, tmp_path / "c")
    assert_clean_failure(proc, "security")
    option = ("-O", "kustomize.buildOptions=--load-restrictor LoadRestrictionsNone")
    refused = render_cli(root / "app", root, tmp_path / "c", *option)
    assert_clean_failure(refused, "LoadRestrictionsNone", "KILN_KUSTOMIZE_ALLOW_BUILD_OPTIONS")
    ok = render_cli(root / "app", root, tmp_path / "c", *option, env={
        "KILN_KUSTOMIZE_ALLOW_BUILD_OPTIONS": "--load-restrictor=LoadRestrictionsNone"})
    assert ok.returncode == 0, ok.stderr
    assert [d for d in yaml.safe_load_all(ok.stdout) if d] == raw_kustomize(
        root / "app", "--load-restrictor", "LoadRestrictionsNone")


@pytest.fixture
def chart_repo(tmp_path: Path) -> Iterator[str]:
    """A Helm chart repository on 127.0.0.1 serving the tiny fixture chart (helm package +
    helm repo index, served by http.server); stopped at teardown."""
    served = tmp_path / "chart-repo"
    served.mkdir()
    helm = tool("helm")
    subprocess.run([helm, "package", str(FIXTURES / "helm-app" / "charts" / "tiny"), "-d",
                    str(served)], check=True, capture_output=True)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    subprocess.run([helm, "repo", "index", str(served), "--url", url], check=True,
                   capture_output=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_pulled_chart_goes_to_a_private_dir(tmp_path: Path, chart_repo: str) -> None:
    app = write_tree(tmp_path / "app", {"kustomization.yaml": f"""
        helmCharts:
        - name: tiny
          repo: {chart_repo}
          version: 0.1.0
          releaseName: pulled
    """})
    before = tree_digest(app)
    settings = {"kustomize": {"buildOptions": "--enable-helm"}}
    engine = Engine(tmp_path / "c", entry_points=False)
    loaded = engine.load_app(app, settings, source_root=app)
    first = engine.render(loaded, secrets=False)
    assert tree_digest(app) == before, "the chart was pulled into the checkout"
    copy = tmp_path / "copy"
    shutil.copytree(app, copy)
    assert first.objects == raw_kustomize(copy, "--enable-helm", "--helm-command", tool("helm"))
    assert first.key is not None, "an exact chart version is cacheable"
    assert engine.render(loaded, secrets=False).cache_hit


def test_threads_render_one_checkout_with_different_options(repo: Path, tmp_path: Path) -> None:
    """Several renders of one checkout overlap in time, each with its own options."""
    from concurrent.futures import ThreadPoolExecutor

    before = tree_digest(repo)
    engine = Engine(tmp_path / "c", use_cache=False, entry_points=False)
    prefixes = ["a-", "b-", "c-", "d-", "e-", "f-"]

    def render(prefix: str) -> list[dict[str, object]]:
        app = engine.load_app(repo / "apps" / "web", {"kustomize": {"nameSuffix": f"-{prefix}"}},
                              source_root=repo)
        return engine.render(app, secrets=False).objects

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(render, prefixes))
    assert tree_digest(repo) == before
    for prefix, objects in zip(prefixes, results, strict=True):
        hand = repo / f"hand-{prefix}" / "web"
        write_tree(hand, {"kustomization.yaml": OVERLAY + f"nameSuffix: -{prefix}\n"})
        assert objects == raw_kustomize(hand)


def test_malformed_inline_patch_in_the_app(repo: Path, tmp_path: Path) -> None:
    write_tree(repo, {"apps/web/kustomization.yaml": OVERLAY + "patches:\n"
                      "- target: {kind: Deployment}\n  patch: 'foo: ['\n"})
    proc = render_cli(repo / "apps" / "web", repo, tmp_path / "c")
    assert_clean_failure(proc, "kustomization.yaml", "patches[0].patch", "malformed YAML")


def test_duplicate_key_in_a_resource_names_the_file(repo: Path, tmp_path: Path) -> None:
    svc = repo / "base" / "service.yaml"
    svc.write_text(svc.read_text() + "metadata:\n  name: again\n")
    proc = render_cli(repo / "apps" / "web", repo, tmp_path / "c")
    assert_clean_failure(proc, "service.yaml", "duplicate key 'metadata'")


def test_generator_files_are_data_not_yaml(repo: Path, tmp_path: Path) -> None:
    """A generator file that is not YAML is fine, and never blamed for another failure."""
    write_tree(repo, {"base/app.properties": "{{ not: yaml [\n"})
    ok = render_cli(repo / "apps" / "web", repo, tmp_path / "c")
    assert ok.returncode == 0, ok.stderr
    write_tree(repo, {"apps/web/kustomization.yaml": OVERLAY + "patches:\n- path: p.yaml\n",
                      "apps/web/p.yaml": "apiVersion: v1\nkind: Service\n"
                                         "metadata: {name: absent}\n"})
    proc = render_cli(repo / "apps" / "web", repo, tmp_path / "c")
    assert_clean_failure(proc, "absent")
