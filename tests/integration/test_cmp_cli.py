"""``kiln cmp`` as Argo CD's sidecar runs it: subprocesses in the app directory, checked
against the real helm binary."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

from tests.helpers import REPO, assert_clean_failure, tool

pytestmark = __import__("pytest").mark.integration


def run_cmp(*args: str, cwd: Path, env: Mapping[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    """Run ``python -m kiln.cmp ARGS`` (the lead wires the group in as ``kiln cmp``)."""
    full = dict(os.environ)
    full["PYTHONPATH"] = str(REPO) + os.pathsep + full.get("PYTHONPATH", "")
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "kiln.cmp", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=60)


CHART = "apiVersion: v2\nname: web\nversion: 0.1.0\n"
VALUES = """\
replicaCount: 2
enabled: false
image:
  repository: nginx
  tag: "1.27"
  pullPolicy: IfNotPresent
ingress:
  hosts:
    - a.example.com
    - b.example.com
labels:
  app.kubernetes.io/part-of: shop
  tier: front
empty: ""
"""
TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-values
data:
  values: |
{{ toYaml .Values | indent 4 }}
"""


def _chart(root: Path) -> Path:
    (root / "templates").mkdir(parents=True)
    (root / "Chart.yaml").write_text(CHART)
    (root / "values.yaml").write_text(VALUES)
    (root / "values-prod.yaml").write_text("replicaCount: 5\n")
    (root / "templates" / "values.yaml").write_text(TEMPLATE)
    return root


def test_announced_helm_parameters_reproduce_the_chart_defaults(tmp_path: Path) -> None:
    """The announced helm-parameters, set with --set on a copy of the chart whose values.yaml
    is emptied, must give exactly helm's output for the original chart: the announced map is
    the chart's values, complete and correctly typed."""
    chart = _chart(tmp_path / "web")
    proc = run_cmp("parameters", cwd=chart)
    assert proc.returncode == 0, proc.stderr
    found = {item["name"]: item for item in json.loads(proc.stdout)}
    assert found["helm-values-files"]["array"] == ["values-prod.yaml", "values.yaml"]
    params = found["helm-parameters"]["map"]
    assert params["image.tag"] == "1.27"
    helm = tool("helm")
    plain = subprocess.run([helm, "template", "web", str(chart)], capture_output=True,
                           text=True, check=True).stdout
    sets: list[str] = []
    for name, value in params.items():
        # Helm --set types ints and bools; string leaves such as "1.27" need --set-string.
        flag = "--set" if _typed_leaf(chart, name) else "--set-string"
        sets += [flag, f"{name}={value}"]
    bare = tmp_path / "bare" / "web"
    shutil.copytree(chart, bare)
    (bare / "values.yaml").write_text("{}\n")
    again = subprocess.run([helm, "template", "web", str(bare), *sets], capture_output=True,
                           text=True, check=True).stdout
    assert yaml.safe_load(again) == yaml.safe_load(plain)


def _typed_leaf(chart: Path, dotted: str) -> bool:
    """True when the values.yaml leaf at the --set path ``dotted`` is an int or a bool."""
    node = yaml.safe_load((chart / "values.yaml").read_text())
    for part in dotted.replace("\\.", "\0").split("."):
        key, *indexes = re.split(r"\[(\d+)\]", part)
        node = node[key.replace("\0", ".")]
        for index in indexes:
            if index:
                node = node[int(index)]
    return isinstance(node, (bool, int))


def test_discover_in_the_app_directory(tmp_path: Path) -> None:
    chart = _chart(tmp_path / "web")
    proc = run_cmp("discover", cwd=chart)
    assert (proc.returncode, proc.stdout) == (0, "helm\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("hi\n")
    proc = run_cmp("discover", cwd=empty)
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "")


def test_parameters_with_a_broken_values_file_fail_cleanly(tmp_path: Path) -> None:
    chart = _chart(tmp_path / "web")
    (chart / "values.yaml").write_text("image: [unclosed\n")
    assert_clean_failure(run_cmp("parameters", cwd=chart), "values.yaml")


def test_plugin_yaml_subprocess_matches_committed_configmap(tmp_path: Path) -> None:
    proc = run_cmp("plugin-yaml", "--configmap", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (REPO / "deploy" / "argocd" / "plugin-configmap.yaml").read_text()
