"""Benchmark: kiln's kustomize renderer against raw ``kubectl kustomize`` on the same overlay.

Builds a base (20 resources, a generator) and an overlay app whose kiln options (namePrefix,
images, commonLabels, a patch) equal a hand-written overlay, then times, interleaved:

- raw: ``kubectl kustomize`` on the hand-written overlay (what kiln's render must call anyway);
- kiln cold, in process: ``Engine(use_cache=False).render`` (walk + private copy + kubectl +
  parse + normalise);
- kiln cold, CLI: ``kiln render --no-cache`` (adds Python start-up and imports);
- kiln warm (cache hit), in process and CLI;
- and the same overlay without options ("no options"), raw and kiln cold, compared together.

Prints medians and the ratios against raw. Not part of the test suite. Usage:
``PYTHONPATH=. python bench/kustomize.py [--runs N]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from kiln.core.engine import Engine
from kiln.core.tools import find_tool

RESOURCES = 20


def make_tree(root: Path) -> tuple[Path, Path]:
    """Write base, app (kiln options) and hand-written overlay; return (app, handwritten)."""
    base = root / "base"
    base.mkdir(parents=True)
    names = []
    for i in range(RESOURCES):
        name = f"svc{i}"
        names.append(f"{name}.yaml")
        (base / f"{name}.yaml").write_text(textwrap.dedent(f"""\
            apiVersion: apps/v1
            kind: Deployment
            metadata: {{name: {name}, labels: {{app: {name}}}}}
            spec:
              replicas: 1
              selector: {{matchLabels: {{app: {name}}}}}
              template:
                metadata: {{labels: {{app: {name}}}}}
                spec:
                  containers:
                  - name: main
                    image: nginx:1.25
                    envFrom: [{{configMapRef: {{name: settings}}}}]
            """))
    (base / "kustomization.yaml").write_text(
        f"resources: {names}\nconfigMapGenerator:\n- name: settings\n  literals: [A=1]\n")
    patch = "- op: replace\n  path: /spec/replicas\n  value: 2\n"
    for name in ("app", "hand"):
        (root / "apps" / name).mkdir(parents=True)
    (root / "apps" / "app" / "kustomization.yaml").write_text("resources: [../../base]\n")
    (root / "apps" / "hand" / "kustomization.yaml").write_text(textwrap.dedent("""\
        resources: [../../base]
        namePrefix: prod-
        commonLabels: {env: prod}
        images: [{name: nginx, newTag: "1.26"}]
        patches:
        - target: {kind: Deployment, name: svc0}
          patch: |
            - op: replace
              path: /spec/replicas
              value: 2
        """))
    (root / "apps" / "app" / "kiln.yaml").write_text(textwrap.dedent(f"""\
        kustomize:
          namePrefix: prod-
          commonLabels: {{env: prod}}
          images: ["nginx:1.26"]
          patches:
          - target: {{kind: Deployment, name: svc0}}
            patch: {json.dumps(patch)}
        """))
    return root / "apps" / "app", root / "apps" / "hand"


def cpu_seconds() -> float:
    """User + system CPU time of this process and its waited-for children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    kubectl = find_tool("kubectl", "KILN_KUBECTL")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        app, hand = make_tree(root / "repo")
        cache = root / "cache"
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        # Measure kiln as installed, with its bytecode cached (some shells forbid writing it).
        env.pop("PYTHONDONTWRITEBYTECODE", None)

        def raw() -> None:
            subprocess.run([kubectl, "kustomize", str(hand)], check=True, capture_output=True)

        cold_engine = Engine(cache, use_cache=False, entry_points=False)
        warm_engine = Engine(cache, entry_points=False)
        loaded = cold_engine.load_app(app, source_root=root / "repo")

        def cold_lib() -> None:
            cold_engine.render(loaded, secrets=False)

        def warm_lib() -> None:
            assert warm_engine.render(loaded, secrets=False).cache_hit

        cli = [sys.executable, "-m", "kiln", "render", str(app), "--source-root",
               str(root / "repo"), "--cache-dir", str(cache)]

        def cold_cli() -> None:
            subprocess.run([*cli, "--no-cache"], check=True, capture_output=True, env=env)

        def warm_cli() -> None:
            subprocess.run(cli, check=True, capture_output=True, env=env)

        # Same output, checked once; then warm-up runs fill the cache and the version memo.
        import yaml

        out = subprocess.run([kubectl, "kustomize", str(hand)], check=True, capture_output=True,
                             text=True).stdout
        expected = [d for d in yaml.safe_load_all(out) if d]
        assert cold_engine.render(loaded, secrets=False).objects == expected
        warm_engine.render(loaded, secrets=False)
        warm_cli()

        plain = root / "repo" / "apps" / "plain"
        plain.mkdir()
        (plain / "kustomization.yaml").write_text("resources: [../../base]\n")
        loaded_plain = cold_engine.load_app(plain, source_root=root / "repo")

        def raw_plain() -> None:
            subprocess.run([kubectl, "kustomize", str(plain)], check=True, capture_output=True)

        def cold_plain() -> None:
            cold_engine.render(loaded_plain, secrets=False)

        cases: dict[str, Callable[[], None]] = {
            "raw, no options": raw_plain, "kiln cold, no options": cold_plain,
            "raw kubectl kustomize": raw, "kiln cold (library)": cold_lib,
            "kiln cold (CLI)": cold_cli, "kiln warm (library)": warm_lib,
            "kiln warm (CLI)": warm_cli,
        }
        wall: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, func in cases.items():
                cpu_started = cpu_seconds()
                started = time.perf_counter()
                func()
                wall[name].append(time.perf_counter() - started)
                cpu[name].append(cpu_seconds() - cpu_started)
        base_wall = median_ms(wall["raw kubectl kustomize"])
        base_cpu = median_ms(cpu["raw kubectl kustomize"])
        print(f"overlay: {RESOURCES} Deployments + 1 generated ConfigMap; "
              f"{args.runs} interleaved runs each; medians (CPU = this process + children)")
        print(f"  {'':<24} {'wall ms':>9} {'ratio':>6}   {'CPU ms':>9} {'ratio':>6}")
        for name in cases:
            w, c = median_ms(wall[name]), median_ms(cpu[name])
            if name.endswith("no options"):  # compared with raw on the same plain overlay
                base_w, base_c = median_ms(wall["raw, no options"]), median_ms(cpu[
                    "raw, no options"])
                print(f"  {name:<24} {w:9.1f} {w / base_w:5.2f}x   {c:9.1f} {c / base_c:5.2f}x")
                continue
            print(f"  {name:<24} {w:9.1f} {w / base_wall:5.2f}x   {c:9.1f} {c / base_cpu:5.2f}x")


if __name__ == "__main__":
    main()
