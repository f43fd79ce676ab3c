"""Benchmark: the Argo CD sidecar's generate call on a cache hit vs raw ``helm template``.

Argo CD runs the plugin's generate command as a fresh process for every manifest request, so
what matters is process wall time. This script builds a Helm chart, sets the environment Argo
CD sets for a CMP, runs ``kiln generate .`` once to fill the cache, then times N cache-hit
runs against N runs of ``helm template`` on the same chart in the same process environment.
Target: kiln (hit) <= 1.5x helm template. A repeated request is answered by the start-up-free
memo of :mod:`kiln.cmp.fastpath`; the same hits through the whole engine
(``KILN_CMP_FASTPATH=0``) are timed too, for reference.

``kiln generate`` is used when the CLI has it, else ``kiln render .`` (same render path; the
chart takes no parameters here, so the CMP environment changes nothing but the release name
and namespace, which are passed to both sides identically).

Usage: python bench/cmp.py [--runs N] [--templates N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REVISION = "8d2f7c1e9b4a6f3d2c1b0a9e8f7d6c5b4a3f2e1d"

TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{{{ .Release.Name }}}}-svc{n}
  namespace: {{{{ .Release.Namespace }}}}
  labels:
    {{{{- include "bench.labels" . | nindent 4 }}}}
spec:
  replicas: {{{{ .Values.replicas }}}}
  selector:
    matchLabels:
      app: svc{n}
  template:
    metadata:
      labels:
        app: svc{n}
    spec:
      containers:
        - name: app
          image: "{{{{ .Values.image.repository }}}}:{{{{ .Values.image.tag }}}}"
          env:
          {{{{- range $k, $v := .Values.env }}}}
            - name: {{{{ $k }}}}
              value: {{{{ $v | quote }}}}
          {{{{- end }}}}
---
apiVersion: v1
kind: Service
metadata:
  name: {{{{ .Release.Name }}}}-svc{n}
spec:
  selector:
    app: svc{n}
  ports:
    - port: 80
"""

HELPERS = """\
{{- define "bench.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
"""


def make_chart(root: Path, templates: int) -> Path:
    """Write a chart with ``templates`` Deployment+Service pairs under ``root/apps/bench``."""
    chart = root / "apps" / "bench"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: bench\nversion: 0.1.0\n")
    env = "\n".join(f"  VAR_{i}: value-{i}" for i in range(20))
    (chart / "values.yaml").write_text(
        f"replicas: 2\nimage:\n  repository: nginx\n  tag: '1.27'\nenv:\n{env}\n")
    (chart / "templates" / "_helpers.tpl").write_text(HELPERS)
    for n in range(templates):
        (chart / "templates" / f"svc{n}.yaml").write_text(TEMPLATE.format(n=n))
    return chart


def find_helm() -> str:
    """helm beside this Python (the kiln[tools] wheel), else on PATH."""
    beside = Path(sys.executable).parent / "helm"
    found = str(beside) if beside.exists() else shutil.which("helm")
    if not found:
        sys.exit("helm not found")
    return found


def kiln_command() -> list[str]:
    """``kiln generate .`` when the CLI has it, else ``kiln render .``."""
    from kiln.cli import cli

    verb = "generate" if "generate" in cli.commands else "render"
    return [sys.executable, "-m", "kiln", verb, "."]


def time_runs(argv: list[str], cwd: Path, env: dict[str, str], runs: int
              ) -> tuple[list[float], list[float]]:
    """Wall and CPU (user+sys) time of ``runs`` sequential process runs, interleaving nothing;
    any failure aborts the benchmark. CPU time is less sensitive to a loaded machine."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(argv[:4])} failed: {proc.stderr.strip()}")
    return walls, cpus


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--templates", type=int, default=25)
    args = parser.parse_args()

    from kiln.core.engine import Engine

    if "helm" not in Engine(entry_points=False, use_cache=False, env={}).plugins.renderers:
        sys.exit("kiln's helm renderer is not installed in this tree: nothing to compare")
    work = Path(tempfile.mkdtemp(prefix="kiln-bench-cmp-"))
    try:
        chart = make_chart(work / "repo", args.templates)
        name, namespace = "bench", "bench-ns"
        env = dict(os.environ)
        env.update({
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
            "KILN_CACHE_DIR": str(work / "cache"),
            "HELM_CACHE_HOME": str(work / "helm"), "HELM_CONFIG_HOME": str(work / "helm"),
            "HELM_DATA_HOME": str(work / "helm"),
            "ARGOCD_APP_NAME": name, "ARGOCD_APP_NAMESPACE": namespace,
            "ARGOCD_APP_PROJECT_NAME": "default", "ARGOCD_APP_REVISION": REVISION,
            "ARGOCD_APP_REVISION_SHORT": REVISION[:7],
            "ARGOCD_APP_REVISION_SHORT_8": REVISION[:8],
            "ARGOCD_APP_SOURCE_PATH": "apps/bench",
            "ARGOCD_APP_SOURCE_REPO_URL": "https://git.example.com/gitops.git",
            "ARGOCD_APP_SOURCE_TARGET_REVISION": "main", "ARGOCD_APP_PARAMETERS": "[]",
        })
        kiln = kiln_command()
        if kiln[-2] == "render":
            kiln[-1:] = [".", "--app-name", name, "-n", namespace]
        helm = [find_helm(), "template", name, ".", "--namespace", namespace, "--include-crds"]

        miss = time_runs(kiln, chart, env, 1)[0][0]
        kiln_wall, kiln_cpu = [], []
        helm_wall, helm_cpu = [], []
        for _ in range(args.runs):  # alternate, so both sides see the same machine load
            wall, cpu = time_runs(kiln, chart, env, 1)
            kiln_wall += wall
            kiln_cpu += cpu
            wall, cpu = time_runs(helm, chart, env, 1)
            helm_wall += wall
            helm_cpu += cpu
        # The same hits through the whole engine (the fast path switched off), for reference.
        engine_env = {**env, "KILN_CMP_FASTPATH": "0"}
        engine_wall, engine_cpu = time_runs(kiln, chart, engine_env, args.runs)
        med = statistics.median
        ratio = med(kiln_wall) / med(helm_wall)
        result = {
            "command": " ".join(["kiln", *kiln[3:]]),
            "objects": 2 * args.templates,
            "runs": args.runs,
            "kiln_miss_wall_s": round(miss, 4),
            "kiln_hit_wall_median_s": round(med(kiln_wall), 4),
            "kiln_hit_wall_min_s": round(min(kiln_wall), 4),
            "helm_template_wall_median_s": round(med(helm_wall), 4),
            "helm_template_wall_min_s": round(min(helm_wall), 4),
            "kiln_hit_cpu_median_s": round(med(kiln_cpu), 4),
            "helm_template_cpu_median_s": round(med(helm_cpu), 4),
            "ratio_wall_median": round(ratio, 3),
            "ratio_wall_min": round(min(kiln_wall) / min(helm_wall), 3),
            "ratio_cpu_median": round(med(kiln_cpu) / med(helm_cpu), 3),
            "engine_hit_wall_median_s": round(med(engine_wall), 4),
            "engine_hit_cpu_median_s": round(med(engine_cpu), 4),
            "ratio_engine_wall_median": round(med(engine_wall) / med(helm_wall), 3),
            "ratio_engine_cpu_median": round(med(engine_cpu) / med(helm_cpu), 3),
            "target_ratio": 1.5,
            "within_target": ratio <= 1.5,
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
