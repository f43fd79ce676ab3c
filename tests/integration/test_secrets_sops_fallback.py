"""Key types kiln does not unwrap in-process go through the real ``sops`` binary, on stdin.

Vault transit is served by a real OpenBao dev server on 127.0.0.1 (``bao server -dev``); PGP by
a throwaway passwordless GnuPG key in a private GNUPGHOME. kiln's output must equal
``sops decrypt`` on the same ciphertext.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import assert_clean_failure, run_kiln, tool
from tests.integration.openbao import start_openbao, stop_openbao
from tests.integration.sops_helpers import (
    sops_decrypt,
    sops_encrypt,
    sops_env,
)
from tests.secrets_scan import assert_no_plaintext

pytestmark = pytest.mark.integration

PLAIN = b"""\
apiVersion: v1
kind: Secret
metadata:
  name: fallback
stringData:
  password: fallback-secret-value
"""


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real OpenBao dev server with transit enabled; yields the client environment."""
    server = start_openbao(tmp_path_factory.mktemp("bao"))
    env = {"VAULT_ADDR": server.addr, "VAULT_TOKEN": server.token,
           "BAO_ADDR": server.addr, "BAO_TOKEN": server.token}
    try:
        for args in (["secrets", "enable", "transit"],
                     ["write", "-f", "transit/keys/sops"]):
            subprocess.run([tool("bao"), *args], env={**os.environ, **env}, check=True,
                           capture_output=True, timeout=30)
        yield env
    finally:
        stop_openbao(server)


def test_vault_transit_goes_through_sops(tmp_path: Path, bao: dict[str, str]) -> None:
    env = sops_env(extra=bao)
    transit = f"{bao['VAULT_ADDR']}/v1/transit/keys/sops"
    enc = sops_encrypt(PLAIN, "yaml", tmp_path, "--hc-vault-transit", transit,
                       "--encrypted-regex", "^stringData$", env=env)
    app = tmp_path / "app"
    app.mkdir()
    (app / "s.yaml").write_bytes(enc)
    cache = tmp_path / "cache"
    proc = run_kiln("render", str(app), "--cache-dir", str(cache), env=env)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout) == yaml.safe_load(sops_decrypt(enc, "yaml", env))
    assert assert_no_plaintext([cache], ["fallback-secret-value"]) > 0
    # The token may come from a Flux-style key Secret (sops.vault-token) instead.
    keys = tmp_path / "keys.yaml"
    keys.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: sops-keys}\n"
                    f"stringData:\n  sops.vault-token: {bao['VAULT_TOKEN']}\n")
    tokenless = {k: v for k, v in env.items() if k not in ("VAULT_TOKEN", "BAO_TOKEN")}
    tokenless["HOME"] = str(tmp_path)
    proc = run_kiln("render", str(app), "--no-cache", "-O",
                    f"secrets.sops.keySecretFile={keys}", env=tokenless)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout) == yaml.safe_load(sops_decrypt(enc, "yaml", env))
    # Without a token sops cannot unwrap: a clean error naming the transit key.
    no_token = {**env, "VAULT_TOKEN": "wrong", "HOME": str(tmp_path)}
    proc = run_kiln("render", str(app), "--no-cache", env=no_token)
    assert_clean_failure(proc, "no available key", "hc_vault", "transit/keys/sops")


@pytest.fixture(scope="module")
def gpg_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A private GNUPGHOME holding one throwaway passwordless key; yields (home, fingerprint)."""
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run([tool("gpg"), "--batch", "--passphrase", "", "--quick-gen-key",
                    "kiln test <test@kiln.invalid>", "default", "default", "never"],
                   env=env, check=True, capture_output=True, timeout=120)
    out = subprocess.run([tool("gpg"), "--batch", "--with-colons", "--list-secret-keys"],
                         env=env, check=True, capture_output=True, text=True).stdout
    fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))
    yield str(home), fpr
    subprocess.run([tool("gpgconf"), "--kill", "all"], env=env, check=False,
                   capture_output=True, timeout=30)


def test_pgp_goes_through_sops(tmp_path: Path, gpg_home: tuple[str, str]) -> None:
    home, fpr = gpg_home
    env = sops_env(extra={"GNUPGHOME": home})
    enc = sops_encrypt(b"PGP_TOKEN=pgp-protected-token\n", "dotenv", tmp_path, "--pgp", fpr,
                       env=env)
    from kiln.plugins.secrets_sops.api import Decryptor

    got = Decryptor.for_app(None, env).decrypt_bytes(enc, name="pgp.env")
    assert got == sops_decrypt(enc, "dotenv", env) == b"PGP_TOKEN=pgp-protected-token\n"


def test_shamir_key_groups_go_through_sops(tmp_path: Path) -> None:
    from tests.integration.sops_helpers import new_age_key

    one, two = new_age_key(), new_age_key()
    config = tmp_path / ".sops.yaml"
    config.write_text(
        "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n"
        f"      - age: [{one.recipient}]\n      - age: [{two.recipient}]\n")
    src = tmp_path / "s.yaml"
    src.write_bytes(PLAIN)
    both = sops_env(one, two)
    enc = subprocess.run([tool("sops"), "--config", str(config), "encrypt", str(src)],
                         env=both, capture_output=True, check=True, timeout=60).stdout
    src.unlink()
    app = tmp_path / "app"
    app.mkdir()
    (app / "s.yaml").write_bytes(enc)
    proc = run_kiln("render", str(app), "--no-cache", env=both)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout) == yaml.safe_load(sops_decrypt(enc, "yaml", both))
    proc = run_kiln("render", str(app), "--no-cache",
                    env=sops_env(one, extra={"XDG_CONFIG_HOME": str(tmp_path)}))
    assert_clean_failure(proc, "no available key", one.recipient, two.recipient)
