"""Benchmark: 500 ``ref+awssecrets://`` references over 50 AWS secrets on a real moto_server.

Measures, in the same run and against the same server:
  * kiln's secrets stage (``Engine.resolve``: one GetSecretValue per distinct secret, 8
    concurrent reads), and the same with concurrency 1 (batching alone);
  * a naive loop doing one GetSecretValue per reference through boto3 (what a resolver without
    batching does, e.g. argocd-vault-plugin's per-placeholder reads).
GetSecretValue calls are counted by a small counting HTTP proxy in front of moto (it reads the
``X-Amz-Target`` header of every request), not by kiln.

Run: PYTHONPATH=. .venv/bin/python bench/external_secrets.py [--rounds N]
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.resolve_timing import timed_resolve  # noqa: E402
from tests.integration.moto_server import MotoServer, start_moto, stop_moto  # noqa: E402

SECRETS = 50
KEYS = 10
OBJECTS = 50
TARGET = "secretsmanager.GetSecretValue"


class CountingProxy:
    """A threaded HTTP proxy to ``upstream`` counting GetSecretValue requests."""

    def __init__(self, upstream: str) -> None:
        self.count = 0
        self.lock = threading.Lock()
        up = urlsplit(upstream)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("X-Amz-Target") == TARGET:
                    with proxy.lock:
                        proxy.count += 1
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request("POST", self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def take(self) -> int:
        """Return the count so far and reset it."""
        with self.lock:
            n, self.count = self.count, 0
        return n

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def seed(server: MotoServer) -> None:
    client = server.client()
    for s in range(SECRETS):
        client.create_secret(Name=f"bench/s{s}",
                             SecretString=json.dumps({f"k{k}": f"value-{s}-{k}"
                                                      for k in range(KEYS)}))


def stream() -> list[dict[str, Any]]:
    """50 Secrets x 10 keys = 500 references, each secret referenced from several objects."""
    objs = []
    for o in range(OBJECTS):
        data = {}
        for i in range(KEYS):
            s = (o * KEYS + i) % SECRETS
            data[f"v{i}"] = f"ref+awssecrets://bench/s{s}#k{(o + i) % KEYS}"
        objs.append({"apiVersion": "v1", "kind": "Secret",
                     "metadata": {"name": f"o{o}", "namespace": "b"}, "stringData": data})
    return objs


def kiln_resolve(env: dict[str, str], concurrency: int) -> tuple[float, list[dict[str, Any]]]:
    return timed_resolve(env, stream, concurrency)


def naive(proxy_url: str, server: MotoServer) -> tuple[float, list[dict[str, Any]]]:
    client = server.client(endpoint_url=proxy_url)
    objs = stream()
    start = time.perf_counter()
    for obj in objs:
        for key, ref in obj["stringData"].items():
            name, _, field = ref[len("ref+awssecrets://"):].partition("#")
            value = json.loads(client.get_secret_value(SecretId=name)["SecretString"])[field]
            obj["stringData"][key] = value
    return time.perf_counter() - start, objs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        server = start_moto(Path(work))
        proxy = CountingProxy(server.url)
        try:
            seed(server)
            env = server.env(AWS_ENDPOINT_URL=proxy.url)
            refs = OBJECTS * KEYS
            print(f"{refs} references over {SECRETS} AWS secrets (moto_server {server.url})")
            results: dict[str, list[float]] = {"kiln (8 concurrent)": [],
                                               "kiln (concurrency 1)": [],
                                               "naive (1 call/reference)": []}
            calls: dict[str, int] = {}
            outputs = []
            for _ in range(args.rounds):
                for label, run in (("kiln (8 concurrent)", lambda: kiln_resolve(env, 8)),
                                   ("kiln (concurrency 1)", lambda: kiln_resolve(env, 1)),
                                   ("naive (1 call/reference)",
                                    lambda: naive(proxy.url, server))):
                    proxy.take()
                    seconds, out = run()
                    calls[label] = proxy.take()
                    results[label].append(seconds)
                    outputs.append(out)
            assert all(o == outputs[0] for o in outputs), "outputs differ"
            best = {k: min(v) for k, v in results.items()}
            for label, seconds in best.items():
                print(f"  {label:28s} GetSecretValue calls: {calls[label]:4d}   "
                      f"best wall time: {seconds * 1000:8.1f} ms")
            naive_t = best["naive (1 call/reference)"]
            print(f"  speed-up vs naive: {naive_t / best['kiln (8 concurrent)']:.1f}x "
                  f"(8 concurrent), {naive_t / best['kiln (concurrency 1)']:.1f}x "
                  f"(concurrency 1)")
            assert calls["kiln (8 concurrent)"] == SECRETS, calls
            assert calls["naive (1 call/reference)"] == refs, calls
        finally:
            proxy.close()
            stop_moto(server)


if __name__ == "__main__":
    main()
