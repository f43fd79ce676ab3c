"""Shared pieces of the kustomize integration tests: file trees and the raw tool."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from kiln.core.engine import Engine
from tests.helpers import tool

BASE = {
    "base/kustomization.yaml": """
        resources: [deploy.yaml, service.yaml]
        configMapGenerator:
        - name: settings
          literals: [MODE=base]
        - name: files
          files: [app.properties, renamed.conf=extra.conf]
        secretGenerator:
        - name: creds
          envs: [creds.env]
    """,
    "base/app.properties": "colour=blue\n",
    "base/extra.conf": "level=3\n",
    "base/creds.env": "USER=admin\n",
    "base/deploy.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          labels: {app: web}
        spec:
          replicas: 1
          selector:
            matchLabels: {app: web}
          template:
            metadata:
              labels: {app: web}
            spec:
              containers:
              - name: web
                image: nginx:1.25
                envFrom:
                - configMapRef: {name: settings}
              - name: sidecar
                image: busybox:1.36
    """,
    "base/service.yaml": """
        apiVersion: v1
        kind: Service
        metadata:
          name: web
        spec:
          selector: {app: web}
          ports:
          - port: 80
    """,
}


def raw_kustomize(directory: Path, *flags: str) -> list[dict[str, Any]]:
    """Run ``kubectl kustomize`` directly on ``directory`` and parse its stream."""
    proc = subprocess.run([tool("kubectl"), "kustomize", str(directory), *flags],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def kiln_render(app: Path, root: Path, cache_dir: Path, settings: Mapping[str, Any] | None = None,
                build_env: Mapping[str, str] | None = None, use_cache: bool = False
                ) -> list[dict[str, Any]]:
    """Render ``app`` through the library, as the CLI would."""
    engine = Engine(cache_dir, use_cache=use_cache, entry_points=False)
    loaded = engine.load_app(app, settings or {}, source_root=root, build_env=build_env)
    return engine.render(loaded, secrets=False).objects


def tree_digest(root: Path) -> dict[str, str]:
    """Map every path under ``root`` to a digest of its content (links by their text)."""
    result: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                result[rel] = "link:" + os.readlink(path)
            elif path.is_file():
                result[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                result[rel] = "dir"
    return result


def names(objects: Sequence[dict[str, Any]]) -> list[str]:
    """``Kind/name`` of each object, in order."""
    return [f"{o['kind']}/{o['metadata']['name']}" for o in objects]
