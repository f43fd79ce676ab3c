"""Benchmark: 1,000 AVP placeholders over 50 Vault paths against a real OpenBao dev server.

Measures, in the same run and against the same server:
  * kiln's secrets stage (``Engine.resolve``: one read per path, 8 concurrent reads);
  * the same with concurrency 1 (batching alone);
  * a naive loop doing one HTTP read per placeholder, as argocd-vault-plugin does for inline
    ``<path:...>`` placeholders (``GetIndividualSecret`` re-reads the path every time).
HTTP reads are counted by the server itself (its file audit log), not by kiln.

Run: PYTHONPATH=. .venv/bin/python bench/secrets.py [--rounds N]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.resolve_timing import timed_resolve  # noqa: E402
from tests.integration.openbao import OpenBao, start_openbao, stop_openbao  # noqa: E402

PATHS = 50
KEYS = 20
INLINE = re.compile(r"<path:([^#]+)#([^#>]+)>")


def seed(server: OpenBao) -> None:
    for p in range(PATHS):
        server.kv2_put("secret", f"bench/p{p}", {f"k{k}": f"value-{p}-{k}" for k in range(KEYS)})


def stream() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"s{p}", "namespace": "b"},
         "stringData": {f"k{k}": f"<path:secret/data/bench/p{p}#k{k}>" for k in range(KEYS)}}
        for p in range(PATHS)
    ]


def reads(server: OpenBao) -> int:
    return len(server.audit_requests("secret/data/bench/"))


def kiln_resolve(server: OpenBao, concurrency: int) -> tuple[float, list[dict[str, Any]]]:
    env = {"AVP_TYPE": "vault", "AVP_AUTH_TYPE": "token", "VAULT_ADDR": server.addr,
           "VAULT_TOKEN": server.token}
    return timed_resolve(env, stream, concurrency)


def naive(server: OpenBao) -> tuple[float, list[dict[str, Any]]]:
    """One hvac read per placeholder, sequentially, then splice (AVP's inline behaviour)."""
    import hvac

    objects = stream()
    started = time.perf_counter()
    client = hvac.Client(url=server.addr, token=server.token)
    for obj in objects:
        for key, value in obj["stringData"].items():
            m = INLINE.fullmatch(value)
            assert m is not None
            data = client.adapter.get(f"/v1/{m.group(1)}")["data"]["data"]
            obj["stringData"][key] = data[m.group(2)]
    return time.perf_counter() - started, objects


def wants_cost() -> tuple[float, int]:
    """Time the Vault resolver's ``wants`` on 1,000 reference-free objects (Vault configured)."""
    from kiln.core.context import SecretContext
    from kiln.core.redact import Redactor
    from kiln.plugins.secrets_vault import VaultResolver

    objects = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"},
                "data": {f"k{j}": f"plain value {j} <b>" for j in range(10)}}
               for i in range(1000)]
    ctx = SecretContext(app=None, env={"VAULT_ADDR": "http://127.0.0.1:1"}, redactor=Redactor())
    resolver = VaultResolver()
    started = time.perf_counter()
    for _ in range(10):
        assert not resolver.wants(objects, ctx)
    return (time.perf_counter() - started) / 10, len(objects)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kiln-bench-secrets-"))
    server = start_openbao(workdir)
    try:
        seed(server)
        results: dict[str, list[float]] = {"kiln": [], "kiln-c1": [], "naive": []}
        counts: dict[str, int] = {}
        outputs: dict[str, Any] = {}
        for _ in range(args.rounds):
            for name, run in (("kiln", lambda: kiln_resolve(server, 8)),
                              ("kiln-c1", lambda: kiln_resolve(server, 1)),
                              ("naive", lambda: naive(server))):
                before = reads(server)
                seconds, out = run()
                counts[name] = reads(server) - before
                results[name].append(seconds)
                outputs[name] = out
        assert outputs["kiln"] == outputs["naive"] == outputs["kiln-c1"], "outputs differ"
        best = {name: min(times) for name, times in results.items()}
        print(f"placeholders: {PATHS * KEYS} over {PATHS} paths; best of {args.rounds} rounds")
        for name, label in (("kiln", "kiln (batched, 8 concurrent reads)"),
                            ("kiln-c1", "kiln (batched, 1 read at a time)"),
                            ("naive", "naive (1 read per placeholder, AVP-style)")):
            print(f"  {label:44s} {best[name] * 1000:8.1f} ms   HTTP reads: {counts[name]}")
        print(f"  speed-up kiln vs naive:      {best['naive'] / best['kiln']:.1f}x")
        print(f"  speed-up kiln-c1 vs naive:   {best['naive'] / best['kiln-c1']:.1f}x")
        print(f"  reads saved:                 {counts['naive'] / max(counts['kiln'], 1):.0f}x")
        seconds, n = wants_cost()
        print(f"  wants() on {n} objects without references: {seconds * 1000:.1f} ms "
              "(no hvac import)")
        if counts["kiln"] != PATHS:
            raise SystemExit(f"expected {PATHS} HTTP reads, server logged {counts['kiln']}")
    finally:
        stop_openbao(server)


if __name__ == "__main__":
    main()
