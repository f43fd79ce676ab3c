"""Benchmark: decrypt 500 age-encrypted Secrets in-process vs one ``sops decrypt`` per file.

Both are measured in the same run on the same ciphertext, generated here by the real sops with a
throwaway age key. The in-process figure includes the MAC check. Prints both and the ratio.

    PYTHONPATH=. .venv/bin/python bench/sops.py [--count 500]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: secret-{i}
  namespace: bench
type: Opaque
stringData:
  username: user-{i}
  password: password-{i}-{rand}
  url: postgres://user-{i}:password-{i}@db-{i}.internal:5432/app
"""


def _sops() -> str:
    beside = Path(sys.executable).parent / "sops"
    return str(beside) if beside.exists() else "sops"


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()

    import pyrage

    from kiln.plugins.secrets_sops.api import Decryptor

    ident = pyrage.x25519.Identity.generate()
    env = {**os.environ, "SOPS_DISABLE_VERSION_CHECK": "1", "SOPS_AGE_KEY": str(ident)}
    env.pop("SOPS_AGE_KEY_FILE", None)
    sops = _sops()
    with tempfile.TemporaryDirectory(prefix="kiln-bench-sops-") as tmp:
        work = Path(tmp)

        def encrypt(i: int) -> bytes:
            src = work / f"plain-{i}.yaml"
            src.write_text(SECRET.format(i=i, rand=os.urandom(6).hex()))
            out = subprocess.run(
                [sops, "encrypt", "--age", str(ident.to_public()), "--encrypted-regex",
                 "^(data|stringData)$", str(src)], env=env, capture_output=True, check=True)
            src.unlink()
            return out.stdout

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2) as pool:
            docs = list(pool.map(encrypt, range(args.count)))
        print(f"generated {len(docs)} encrypted Secrets in {time.perf_counter() - started:.1f}s")

        dec = Decryptor.for_app(None, env)
        dec.decrypt_bytes(docs[0], name="warm-up.yaml")  # imports pyrage/cryptography once
        started = time.perf_counter()
        plain_in = [dec.decrypt_bytes(d, name=f"s{i}.yaml") for i, d in enumerate(docs)]
        in_process = time.perf_counter() - started

        from kiln.core.context import SecretContext
        from kiln.core.manifests import parse_stream
        from kiln.core.redact import Redactor
        from kiln.plugins.secrets_sops.resolver import SopsResolver

        objects = [o for i, d in enumerate(docs) for o in parse_stream(d.decode(), f"s{i}")]
        ctx = SecretContext(app=None, env=env, redactor=Redactor())
        resolver = SopsResolver()
        started = time.perf_counter()
        assert resolver.wants(objects, ctx)
        resolved = resolver.resolve(objects, ctx)
        via_resolver = time.perf_counter() - started
        assert all("sops" not in o for o in resolved)

        started = time.perf_counter()
        plain_sops = [
            subprocess.run([sops, "decrypt", "--input-type", "yaml", "--output-type", "yaml"],
                           input=d, env=env, capture_output=True, check=True).stdout
            for d in docs
        ]
        per_file = time.perf_counter() - started

    import yaml

    same = all(yaml.safe_load(a) == yaml.safe_load(b) for a, b in zip(plain_in, plain_sops,
                                                                       strict=True))
    n = len(docs)
    print(f"in-process (age + AES-GCM + MAC): {in_process:8.3f}s  "
          f"{in_process / n * 1000:7.3f} ms/file")
    print(f"resolver on the parsed objects:   {via_resolver:8.3f}s  "
          f"{via_resolver / n * 1000:7.3f} ms/object (wants + resolve + redaction)")
    print(f"sops decrypt, one process a file: {per_file:8.3f}s  "
          f"{per_file / n * 1000:7.3f} ms/file")
    print(f"ratio sops/in-process: {per_file / in_process:.1f}x   outputs identical: {same}")


if __name__ == "__main__":
    main()
