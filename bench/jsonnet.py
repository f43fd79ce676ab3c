"""Benchmark: fifty small Jsonnet apps rendered cold by kiln, against Kapitan compiling them.

Generates fifty apps (``apps/app-NN/main.jsonnet`` + ``params.libsonnet``, sharing
``lib/common.libsonnet``) and the matching Kapitan inventory (one target per app, compiling the
same ``main.jsonnet`` with ``lib`` on the search path). Kapitan is installed in its own venv by
this script (it pins an older C++ jsonnet); ``--kapitan-venv`` chooses where.

Measured, each the median of ``--runs`` cold runs (empty kiln cache, empty Kapitan output):
- kiln (library): one process renders the fifty apps through ``Engine`` (like ``kapitan
  compile``, one command for all targets);
- kiln (CLI): one ``kiln render`` process per app, as Argo CD's plugin would run it;
- kapitan: ``kapitan compile`` of the fifty targets;
- raw go-jsonnet, in process, for reference.
The ratio kapitan / kiln is printed for both kiln modes. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APPS = 50

COMMON = """\
{
  labels(name):: { 'app.kubernetes.io/name': name, 'app.kubernetes.io/managed-by': 'bench' },
  deployment(p):: {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: p.name, labels: $.labels(p.name) },
    spec: {
      replicas: p.replicas,
      selector: { matchLabels: $.labels(p.name) },
      template: {
        metadata: { labels: $.labels(p.name) },
        spec: { containers: [{
          name: p.name,
          image: p.image,
          ports: [{ containerPort: p.port }],
          env: [{ name: k, value: std.toString(p.env[k]) } for k in std.objectFields(p.env)],
        }] },
      },
    },
  },
  service(p):: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: p.name, labels: $.labels(p.name) },
    spec: { selector: $.labels(p.name), ports: [{ port: 80, targetPort: p.port }] },
  },
  configMap(p):: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: p.name + '-config', labels: $.labels(p.name) },
    data: { 'config.json': std.manifestJsonEx(p.env, '  ') },
  },
}
"""

MAIN = """\
local common = import 'common.libsonnet';
local p = import 'params.libsonnet';
{
  deployment: common.deployment(p),
  service: common.service(p),
  configmap: common.configMap(p),
}
"""


def make_tree(root: Path) -> list[Path]:
    """Write the fifty apps, the shared lib and the Kapitan inventory under ``root``."""
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "common.libsonnet").write_text(COMMON)
    (root / "inventory" / "targets").mkdir(parents=True)
    (root / "inventory" / "classes").mkdir(parents=True)
    (root / "inventory" / "classes" / "common.yml").write_text("parameters: {}\n")
    (root / ".git").mkdir()  # makes root the source root kiln detects
    apps = []
    for i in range(APPS):
        name = f"app-{i:02d}"
        app = root / "apps" / name
        app.mkdir(parents=True)
        params = {"name": name, "image": f"example/{name}:1.{i}", "replicas": 1 + i % 3,
                  "port": 8000 + i, "env": {f"KEY_{k}": f"value-{i}-{k}" for k in range(10)}}
        (app / "params.libsonnet").write_text(json.dumps(params, indent=2) + "\n")
        (app / "main.jsonnet").write_text(MAIN)
        (app / "kiln.yaml").write_text("jsonnet:\n  libs: [lib]\n")
        (root / "inventory" / "targets" / f"{name}.yml").write_text(
            "parameters:\n"
            "  kapitan:\n"
            f"    vars: {{target: {name}}}\n"
            "    compile:\n"
            "      - output_path: manifests\n"
            "        input_type: jsonnet\n"
            "        output_type: yaml\n"
            f"        input_paths: [apps/{name}/main.jsonnet]\n"
        )
        apps.append(app)
    return apps


def ensure_kapitan(venv: Path) -> Path:
    """Return the ``kapitan`` executable of ``venv``, creating the venv and installing it."""
    exe = venv / "bin" / "kapitan"
    if exe.exists():
        return exe
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "kapitan"], check=True)
    return exe


def timed(func: Callable[[], None], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        func()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kapitan-venv", type=Path,
                        default=Path(tempfile.gettempdir()) / "kiln-bench-kapitan-venv")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from kiln.core.engine import Engine

    kapitan = ensure_kapitan(args.kapitan_venv)
    with tempfile.TemporaryDirectory(prefix="kiln-bench-jsonnet-") as tmp:
        root = Path(tmp)
        apps = make_tree(root)
        env = {**os.environ, "PYTHONPATH": str(REPO)}

        def kiln_library() -> None:
            cache = root / "kiln-cache"
            shutil.rmtree(cache, ignore_errors=True)
            engine = Engine(cache, entry_points=False)
            for app in apps:
                result = engine.render(engine.load_app(app))
                assert len(result.objects) == 3 and not result.cache_hit

        def kiln_cli() -> None:
            cache = root / "kiln-cache"
            shutil.rmtree(cache, ignore_errors=True)
            for app in apps:
                subprocess.run([sys.executable, "-m", "kiln", "render", str(app), "--cache-dir",
                                str(cache)], check=True, env=env, stdout=subprocess.DEVNULL)

        def kapitan_compile() -> None:
            shutil.rmtree(root / "compiled", ignore_errors=True)
            subprocess.run([str(kapitan), "compile"], cwd=root, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            count = len(list((root / "compiled").rglob("*.yaml")))
            if count != 3 * APPS:
                raise SystemExit(f"kapitan compiled {count} files, expected {3 * APPS}")

        def raw_gojsonnet() -> None:
            code = ("import sys, _gojsonnet\n"
                    "for f in sys.argv[2:]:\n"
                    "    _gojsonnet.evaluate_file(f, jpathdir=[sys.argv[1]])\n")
            subprocess.run([sys.executable, "-c", code, str(root / "lib"),
                            *[str(a / "main.jsonnet") for a in apps]], check=True)

        figures = {
            "kiln library (1 process, 50 apps)": timed(kiln_library, args.runs),
            "kiln CLI (1 process per app)": timed(kiln_cli, args.runs),
            "kapitan compile (50 targets)": timed(kapitan_compile, args.runs),
            "raw go-jsonnet (1 process, reference)": timed(raw_gojsonnet, args.runs),
        }
    print(f"{APPS} small jsonnet apps, cold, median of {args.runs} runs "
          f"({os.cpu_count()} CPUs):")
    for label, seconds in figures.items():
        print(f"  {label:40s} {seconds:8.3f} s")
    kap = figures["kapitan compile (50 targets)"]
    lib = figures["kiln library (1 process, 50 apps)"]
    cli = figures["kiln CLI (1 process per app)"]
    print(f"  kapitan / kiln library = {kap / lib:.1f}x  (target >= 3x)")
    print(f"  kapitan / kiln CLI     = {kap / cli:.1f}x")


if __name__ == "__main__":
    main()
