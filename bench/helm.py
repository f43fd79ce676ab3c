"""Benchmark the Helm renderer against the raw ``helm template`` measured in the same run.

Prints:
* cold render (manifest cache empty, helm's version memoised) in-process vs raw
  ``helm template`` with the same flags on the same chart (target <= 1.15x), and the same for
  the ``kiln render`` CLI end to end (Python start-up included, for information);
* warm (cache-hit) render time, in-process and CLI;
* fifty apps sharing one OCI chart on a local ``docker-registry``: time, and chart downloads
  counted by the registry's access log (must be 1).
Not part of the test suite. Usage: ``python bench/helm.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import hashlib
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
sys.path.insert(0, str(REPO))

from kiln.core.engine import Engine  # noqa: E402
from tests.fixtures.helm.servers import WEBAPP, Registry, helm_env, package  # noqa: E402

HOST = "web.example.com"
SETTINGS = {"helm": {"parameters": [{"name": "hostname", "value": HOST}]}}
APPS = 50


def timed(fns: list[Callable[[], object]], runs: int) -> list[list[float]]:
    """Wall times of each of ``fns`` over ``runs`` rounds, in seconds.

    The functions are interleaved round by round, so a load spike on a shared machine hits
    kiln and the raw tool alike instead of skewing one side of the ratio. A function returning
    a float reports its own time (to leave its set-up out).
    """
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, bucket in zip(fns, samples, strict=True):
            started = time.perf_counter()
            own = fn()
            bucket.append(own if isinstance(own, float) else time.perf_counter() - started)
    return samples


def paired_ratio(ours: list[float], raw: list[float]) -> float:
    """Median of the round-by-round ratios (robust to load that drifts between rounds)."""
    return statistics.median(a / b for a, b in zip(ours, raw, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    from kiln.plugins.helm.command import helm_binary

    helm = helm_binary()
    work = Path(tempfile.mkdtemp(prefix="kiln-bench-helm-"))
    try:
        chart = Path(shutil.copytree(WEBAPP, work / "webapp"))
        home = helm_env(work / "raw-home")
        raw_argv = [helm, "template", "webapp", str(chart), "--namespace", "default",
                    "--include-crds", "--set", f"hostname={HOST}"]

        def raw() -> None:
            subprocess.run(raw_argv, check=True, capture_output=True, env=home, cwd=chart)

        cache = work / "cache"
        engine = Engine(cache_dir=cache, entry_points=False)
        app = engine.load_app(chart, SETTINGS)
        engine.render(app)  # memoise helm's version, warm the page cache

        def cold() -> float:
            engine.store.clear()  # set-up: not measured
            started = time.perf_counter()
            result = engine.render(app)
            elapsed = time.perf_counter() - started
            assert not result.cache_hit
            return elapsed

        def warm() -> None:
            assert engine.render(app).cache_hit

        cli = [sys.executable, "-m", "kiln", "render", str(chart), "--cache-dir", str(cache),
               "-O", f"helm.parameters=[{{name: hostname, value: {HOST}}}]"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}

        def cli_cold() -> float:
            engine.store.clear()
            started = time.perf_counter()
            subprocess.run(cli, check=True, capture_output=True, env=env)
            return time.perf_counter() - started

        def cli_warm() -> None:
            subprocess.run(cli, check=True, capture_output=True, env=env)

        raw()
        samples = timed([raw, cold, warm, cli_cold, cli_warm], args.runs)
        t_raw, t_cold, t_warm, t_cli_cold, t_cli_warm = (statistics.median(s) for s in samples)
        paired = paired_ratio(samples[1], samples[0])
        print(f"raw helm template            {t_raw * 1000:8.1f} ms")
        print(f"kiln cold (in-process)       {t_cold * 1000:8.1f} ms   "
              f"{t_cold / t_raw:.3f}x raw; paired {paired:.3f}x (target <= 1.15x)")
        print(f"kiln warm (in-process)       {t_warm * 1000:8.1f} ms   "
              f"{t_warm / t_raw:.3f}x raw")
        print(f"kiln render CLI cold         {t_cli_cold * 1000:8.1f} ms   "
              f"{t_cli_cold / t_raw:.3f}x raw (includes Python start-up)")
        print(f"kiln render CLI warm         {t_cli_warm * 1000:8.1f} ms   "
              f"{t_cli_warm / t_raw:.3f}x raw")
        shared_oci(work, helm, home)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def shared_oci(work: Path, helm: str, home: dict[str, str]) -> None:
    """Fifty apps on one OCI chart: render them all with one engine; count chart downloads."""
    with Registry(work / "registry") as registry:
        archive = package(helm, WEBAPP, work / "packages", home)
        subprocess.run([helm, "push", str(archive), f"oci://{registry.host}/charts",
                        "--plain-http"], check=True, capture_output=True, env=home)
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        engine = Engine(cache_dir=work / "oci-cache", entry_points=False)
        apps = []
        for i in range(APPS):
            app_dir = work / "apps" / f"app{i:02d}"
            app_dir.mkdir(parents=True)
            settings = {"helm": {"repoURL": f"oci://{registry.host}/charts", "chart": "webapp",
                                 "version": "1.4.0", "plainHttp": True,
                                 "parameters": [{"name": "hostname",
                                                 "value": f"app{i}.example.com"}]}}
            apps.append(engine.load_app(app_dir, settings))
        started = time.perf_counter()
        for app in apps:
            engine.render(app)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        for app in apps:
            assert engine.render(app).cache_hit
        warm = time.perf_counter() - started
        downloads = registry.chart_downloads("charts/webapp", digest)
        print(f"{APPS} apps, one OCI chart: cold {cold:.2f} s ({cold / APPS * 1000:.0f} ms/app), "
              f"warm {warm * 1000:.1f} ms total; chart downloads: {downloads} "
              f"({'OK' if downloads == 1 else 'FAIL'}: must be 1)")


if __name__ == "__main__":
    main()
