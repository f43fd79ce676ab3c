"""One detection: ``kiln cmp discover``, ``kiln cmp parameters`` and ``kiln render`` /
``kiln generate`` give the same answer for every app shape, in Argo CD's order (a kustomization
wins over Chart.yaml, then jsonnet, else a plain directory); and an empty render is an error
unless the app opts in (Argo CD's ``allowEmpty``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kiln.core.app import App
from kiln.core.engine import Engine
from kiln.core.errors import ConfigError, RenderError
from tests.helpers import REPO, assert_clean_failure, run_kiln, write_tree
from tests.integration.test_cmp_e2e import argocd_env

pytestmark = pytest.mark.integration

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n"
CHART = "apiVersion: v2\nname: web\nversion: 0.1.0\n"
JSONNET_CM = "{apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: '%s'}}\n"

SHAPES: dict[str, tuple[dict[str, str], str, str]] = {
    # name: (files, renderer, the one ConfigMap name the render prints)
    "kustomization-beats-chart": ({
        "kustomization.yaml": "namespace: shop\nresources: [cm.yaml]\n",
        "Chart.yaml": CHART, "cm.yaml": CM.format("from-kustomize"),
        "templates/cm.yaml": CM.format("from-helm")}, "kustomize", "from-kustomize"),
    "chart": ({"Chart.yaml": CHART, "templates/cm.yaml": CM.format("from-helm")},
              "helm", "from-helm"),
    "chart-beats-jsonnet": ({"Chart.yaml": CHART, "templates/cm.yaml": CM.format("from-helm"),
                             "main.jsonnet": JSONNET_CM % "from-jsonnet"}, "helm", "from-helm"),
    "jsonnet-beats-yaml": ({"main.jsonnet": JSONNET_CM % "from-jsonnet",
                            "cm.yaml": CM.format("from-yaml")}, "jsonnet", "from-jsonnet"),
    "yaml": ({"cm.yaml": CM.format("from-yaml")}, "directory", "from-yaml"),
    "kiln-yaml-type-wins": ({"kiln.yaml": "type: directory\n",
                             "main.jsonnet": JSONNET_CM % "from-jsonnet",
                             "cm.yaml": CM.format("from-yaml")}, "directory", "from-yaml"),
}


def run_cmp(*args: str, cwd: Path, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "kiln.cmp", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=120)


def announced(app: Path, env: dict[str, str] | None = None) -> set[str]:
    proc = run_cmp("parameters", cwd=app, env=env)
    assert proc.returncode == 0, proc.stderr
    return {item["name"] for item in json.loads(proc.stdout)}


def announced_kind(names: set[str]) -> str:
    """The renderer the dynamic announcements were made for."""
    prefixes = {name.split("-")[0] for name in names}
    assert len(prefixes) <= 1, names
    return {"helm": "helm", "kustomize": "kustomize", "jsonnet": "jsonnet"}.get(
        prefixes.pop() if prefixes else "", "directory")


def rendered_with(app: Path, cache: Path, *flags: str) -> tuple[str, list[dict[str, Any]]]:
    """The renderer ``kiln render`` used (from its debug log) and the objects it printed."""
    proc = run_kiln("render", str(app), "--cache-dir", str(cache), "--debug", *flags)
    assert proc.returncode == 0, proc.stderr
    found = re.findall(r"(?:rendered|cache hit) via (\w+)", proc.stderr)
    assert found, proc.stderr
    return found[-1], [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_discover_parameters_and_render_agree(shape: str, tmp_path: Path) -> None:
    files, renderer, name = SHAPES[shape]
    app = write_tree(tmp_path / "app", files)
    discovered = run_cmp("discover", cwd=app)
    assert (discovered.returncode, discovered.stdout) == (0, f"{renderer}\n"), discovered.stderr
    assert announced_kind(announced(app)) == renderer
    used, objects = rendered_with(app, tmp_path / "cache")
    assert used == renderer
    assert [o["metadata"]["name"] for o in objects] == [name]


def test_several_jsonnet_files(tmp_path: Path) -> None:
    """Argo CD's Directory type evaluates every *.jsonnet file; kiln's jsonnet renderer takes
    one entry file. With several and no main.jsonnet, every command says jsonnet and the
    render fails asking for jsonnet.main, rather than the plain-directory renderer printing an
    empty stream (which would make Argo CD prune the whole app)."""
    app = write_tree(tmp_path / "repo" / "apps" / "j", {
        "a.jsonnet": JSONNET_CM % "a", "b.jsonnet": JSONNET_CM % "b"})
    discovered = run_cmp("discover", cwd=app)
    assert (discovered.returncode, discovered.stdout) == (0, "jsonnet\n")
    assert announced(app) == {"jsonnet-main"}
    cache = tmp_path / "cache"
    assert_clean_failure(run_kiln("render", str(app), "--cache-dir", str(cache)),
                         "several *.jsonnet files (a.jsonnet, b.jsonnet)", "jsonnet.main")
    used, objects = rendered_with(app, cache, "-O", "jsonnet.main=b.jsonnet")
    assert used == "jsonnet" and [o["metadata"]["name"] for o in objects] == ["b"]
    # Inside Argo CD: the entry file chosen with the jsonnet-main parameter.
    env = argocd_env(app_name="j", namespace="prod", source_path="apps/j",
                     params=[{"name": "jsonnet-main", "string": "a.jsonnet"}])
    proc = run_kiln("generate", ".", cwd=app, env={**env, "KILN_CACHE_DIR": str(cache)})
    assert proc.returncode == 0, proc.stderr
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(proc.stdout) if d] == ["a"]
    assert announced(app, env) == {"jsonnet-main"}


def test_discover_refuses_what_kiln_cannot_render(tmp_path: Path) -> None:
    readme = write_tree(tmp_path / "readme", {"README.md": "# hi\n", "values.yaml": "a: 1\n"})
    proc = run_cmp("discover", cwd=readme)
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "")
    # Positive control: the same directory with a manifest is a directory app.
    (readme / "cm.yaml").write_text(CM.format("x"))
    assert run_cmp("discover", cwd=readme).stdout == "directory\n"


def test_discover_follows_the_app_parameters(tmp_path: Path) -> None:
    """The parameters Argo CD sends reach discovery too: ``directory-recurse`` makes manifests
    in sub-directories count, as they would for the render."""
    app = write_tree(tmp_path / "repo" / "apps" / "web", {"sub/cm.yaml": CM.format("deep")})
    env = argocd_env(app_name="web", namespace="prod", source_path="apps/web")
    assert run_cmp("discover", cwd=app, env=env).returncode == 1
    recurse = argocd_env(app_name="web", namespace="prod", source_path="apps/web",
                         params=[{"name": "directory-recurse", "string": "true"}])
    proc = run_cmp("discover", cwd=app, env=recurse)
    assert (proc.returncode, proc.stdout) == (0, "directory\n"), proc.stderr


# -- allowEmpty ----------------------------------------------------------------------------

def test_empty_render_is_an_error_for_library_users(tmp_path: Path) -> None:
    app_dir = write_tree(tmp_path / "app", {"notes.yaml": "# nothing here\n"})
    engine = Engine(cache_dir=tmp_path / "cache", entry_points=False)
    allowed = engine.render(App(path=app_dir, allow_empty=True))
    assert allowed.objects == [] and not allowed.cache_hit
    with pytest.raises(RenderError, match="rendered no objects") as caught:
        engine.render(App(path=app_dir, name="web"))  # a cache hit now: refused all the same
    assert "'web'" in caught.value.one_line() and "allowEmpty" in caught.value.one_line()
    assert caught.value.source == str(app_dir)


def test_empty_render_in_argo_cd(tmp_path: Path) -> None:
    """An empty kustomization inside the sidecar: an error naming the app unless opted in by
    the allow-empty parameter or kiln.yaml's allowEmpty."""
    app = write_tree(tmp_path / "repo" / "apps" / "web", {"kustomization.yaml": "resources: []\n"})
    cache = {"KILN_CACHE_DIR": str(tmp_path / "cache")}
    env = {**argocd_env(app_name="web", namespace="prod", source_path="apps/web"), **cache}
    refused = run_kiln("generate", ".", cwd=app, env=env)
    assert_clean_failure(refused, "app 'web' rendered no objects", "allowEmpty: true",
                         "allow-empty")
    assert refused.stderr.count("\n") == 1
    opted = {**argocd_env(app_name="web", namespace="prod", source_path="apps/web",
                          params=[{"name": "allow-empty", "string": "true"}]), **cache}
    proc = run_kiln("generate", ".", cwd=app, env=opted)
    assert (proc.returncode, proc.stdout) == (0, ""), proc.stderr
    (app / "kiln.yaml").write_text("allowEmpty: true\n")
    proc = run_kiln("generate", ".", cwd=app, env=env)
    assert (proc.returncode, proc.stdout) == (0, ""), proc.stderr
    (app / "kiln.yaml").write_text("allowEmpty: 'yes'\n")
    assert_clean_failure(run_kiln("generate", ".", cwd=app, env=env), "kiln.yaml",
                         "'allowEmpty' must be true or false")


def test_allow_empty_must_be_a_boolean(tmp_path: Path) -> None:
    engine = Engine(cache_dir=tmp_path / "cache", entry_points=False)
    (tmp_path / "kiln.yaml").write_text("allowEmpty: 1\n")
    with pytest.raises(ConfigError, match="allowEmpty"):
        engine.load_app(tmp_path)
