"""A small git monorepo of mixed apps for the many-apps tests, and each app's oracle: the
objects the real tool (helm template, kubectl kustomize, go-jsonnet) or the plain files give,
parsed by PyYAML / json, never by kiln."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import tool, write_tree


@dataclass(frozen=True)
class RepoApp:
    """One app of the repo: its path relative to the root and its renderer."""

    path: str
    kind: str  # directory | kustomize | helm | jsonnet


def git(root: Path, *args: str) -> str:
    """Run the real git in ``root``; fail the test on error."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    proc = subprocess.run([tool("git"), "-C", str(root), *args], capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _directory(name: str, index: int) -> dict[str, str]:
    return {
        "cm.yaml": f"""
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: {name}-config
            data:
              index: "{index}"
              colour: blue
            """,
        "svc.yaml": f"""
            apiVersion: v1
            kind: Service
            metadata:
              name: {name}
            spec:
              selector: {{app: {name}}}
              ports:
              - port: {8000 + index}
            """,
    }


def _kustomize(name: str, index: int) -> dict[str, str]:
    return {
        "kustomization.yaml": f"""
            namePrefix: k{index}-
            commonLabels:
              team: t{index}
            resources:
            - deploy.yaml
            configMapGenerator:
            - name: settings
              literals:
              - LEVEL={index}
            """,
        "deploy.yaml": f"""
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: {name}
            spec:
              replicas: {1 + index % 3}
              selector:
                matchLabels: {{app: {name}}}
              template:
                metadata:
                  labels: {{app: {name}}}
                spec:
                  containers:
                  - name: web
                    image: nginx:1.{index}
            """,
    }


def _helm(name: str, index: int) -> dict[str, str]:
    return {
        "Chart.yaml": f"""
            apiVersion: v2
            name: {name}
            version: 0.1.{index}
            """,
        "values.yaml": f"""
            replicas: {index}
            greeting: hello-{index}
            """,
        "templates/cm.yaml": """
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: {{ .Release.Name }}-greeting
              namespace: {{ .Release.Namespace }}
            data:
              greeting: {{ .Values.greeting | quote }}
              replicas: {{ .Values.replicas | quote }}
            """,
        "templates/sa.yaml": """
            apiVersion: v1
            kind: ServiceAccount
            metadata:
              name: {{ .Chart.Name }}-sa
            """,
    }


def _jsonnet(name: str, index: int) -> dict[str, str]:
    return {
        "main.jsonnet": f"""
            local cm(n) = {{ apiVersion: 'v1', kind: 'ConfigMap',
                             metadata: {{ name: '{name}-' + n }}, data: {{ n: n }} }};
            [cm(std.toString(i)) for i in std.range(1, {1 + index % 3})]
            """,
    }


KINDS = {"directory": _directory, "kustomize": _kustomize, "helm": _helm, "jsonnet": _jsonnet}


def make_repo(root: Path, counts: dict[str, int]) -> list[RepoApp]:
    """A git repository at ``root`` with ``counts[kind]`` apps of each kind under
    ``apps/<kind>-<i>``, committed; returns the apps sorted by path."""
    apps = []
    for kind, count in counts.items():
        for index in range(count):
            path = f"apps/{kind}-{index}"
            write_tree(root / path, KINDS[kind](f"{kind}{index}", index))
            apps.append(RepoApp(path, kind))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "apps")
    return sorted(apps, key=lambda a: a.path)


_RAW_JSONNET = textwrap.dedent("""
    import sys, _gojsonnet
    sys.stdout.write(_gojsonnet.evaluate_file(sys.argv[1], jpathdir=[sys.argv[2]]))
""")


def oracle(root: Path, app: RepoApp, work: Path) -> list[dict[str, Any]]:
    """The objects the real tool renders for ``app`` alone (kiln's defaults spelled out)."""
    directory = root / app.path
    if app.kind == "directory":
        return [d for f in sorted(directory.glob("*.yaml"))
                for d in yaml.safe_load_all(f.read_text()) if d]
    if app.kind == "kustomize":
        out = _run([tool("kubectl"), "kustomize", str(directory)], directory)
        return [d for d in yaml.safe_load_all(out) if d]
    if app.kind == "helm":
        home = work / "helm-home"
        env = dict(os.environ)
        for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            (home / var.lower()).mkdir(parents=True, exist_ok=True)
            env[var] = str(home / var.lower())
        out = _run([tool("helm"), "template", directory.name, str(directory),
                    "--namespace", "default", "--include-crds"], directory, env)
        return [d for d in yaml.safe_load_all(out) if d]
    out = _run([sys.executable, "-c", _RAW_JSONNET, str(directory / "main.jsonnet"),
                str(directory)], directory)
    data = json.loads(out)
    return data if isinstance(data, list) else [data]


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
