"""Benchmark the manifest cache on a generated 200-object directory app.

Prints in-process cold/warm render times and their ratio, and the wall time of a cache-hit
``kiln render`` and of ``kiln --version`` next to ``python -c "import yaml"`` measured in the
same run. Targets: in-process hit <= 5 ms; CLI hit <= 1.6x and --version <= 1.3x import yaml.
Not part of the test suite.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kiln import App, Engine  # noqa: E402

OBJECTS = 200
PER_FILE = 4


def generate(app_dir: Path) -> None:
    """Write OBJECTS Deployments/Services/ConfigMaps, PER_FILE per file."""
    app_dir.mkdir(parents=True)
    for f in range(OBJECTS // PER_FILE):
        docs = []
        for i in range(PER_FILE):
            n = f * PER_FILE + i
            docs.append(f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{n}
  labels: {{app: app-{n}, tier: backend}}
spec:
  replicas: {n % 5 + 1}
  selector: {{matchLabels: {{app: app-{n}}}}}
  template:
    metadata: {{labels: {{app: app-{n}}}}}
    spec:
      containers:
      - name: main
        image: registry.example.com/app-{n}:1.{n}
        ports: [{{containerPort: 8080}}]
        env: [{{name: MODE, value: production}}, {{name: INDEX, value: "{n}"}}]
        resources: {{limits: {{cpu: 500m, memory: 256Mi}}}}
""")
        (app_dir / f"part-{f:03d}.yaml").write_text("---\n".join(docs))


def best_of(n: int, fn: object) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def wall(argv: list[str], n: int = 15) -> float:
    """Median wall time of a command (after one warm-up run)."""
    subprocess.run(argv, capture_output=True, check=True)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="kiln-bench-"))
    try:
        app_dir = work / "app"
        generate(app_dir)
        cache = work / "cache"
        engine = Engine(cache_dir=cache)
        app = App(path=app_dir)

        def cold() -> None:
            engine.store.clear()
            assert not engine.render(app).cache_hit

        def warm() -> None:
            assert engine.render(app).cache_hit

        cold_s = best_of(5, cold)
        engine.render(app)
        warm_s = best_of(20, warm)
        count = len(engine.render(app).objects)
        print(f"objects: {count}")
        print(f"in-process cold render: {cold_s * 1000:8.2f} ms")
        print(f"in-process cache hit:   {warm_s * 1000:8.2f} ms  (target <= 5 ms)")
        print(f"warm/cold ratio:        {warm_s / cold_s:8.3f}")

        kiln = [sys.executable, "-m", "kiln"]
        script = Path(sys.executable).parent / "kiln"
        if script.exists():
            kiln = [str(script)]
        yaml_s = wall([sys.executable, "-c", "import yaml"])
        hit_s = wall([*kiln, "render", str(app_dir), "--cache-dir", str(cache)])
        version_s = wall([*kiln, "--version"])
        print(f"python -c 'import yaml': {yaml_s * 1000:7.1f} ms")
        print(f"kiln render (cache hit): {hit_s * 1000:7.1f} ms  ratio {hit_s / yaml_s:.2f}x "
              "(target <= 1.6x)")
        print(f"kiln --version:          {version_s * 1000:7.1f} ms  ratio "
              f"{version_s / yaml_s:.2f}x (target <= 1.3x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
