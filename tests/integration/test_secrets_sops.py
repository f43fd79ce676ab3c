"""The SOPS resolver end to end: real ``sops`` encrypts, kiln decrypts, sops cross-checks.

Every test encrypts its fixtures at test time with throwaway age keys (pyrage), runs the real
``kiln`` CLI (or the in-memory API), compares the plaintext with ``sops decrypt`` on the same
ciphertext, and scans the cache for plaintext afterwards.
"""

from __future__ import annotations

import base64
import configparser
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import assert_clean_failure, run_kiln, tool
from tests.integration.sops_helpers import (
    AgeKey,
    new_age_key,
    sops_decrypt,
    sops_encrypt,
    sops_env,
)
from tests.secrets_scan import assert_no_plaintext

pytestmark = pytest.mark.integration

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: {name}
  namespace: apps
type: Opaque
stringData:
  password: {password}
  token: tok-{name}-0123456789
data:
  apiKey: {api_key}
"""
DATA_ONLY = ["--encrypted-regex", "^(data|stringData)$"]


@pytest.fixture(scope="module")
def key() -> AgeKey:
    return new_age_key()


@pytest.fixture(scope="module")
def other_key() -> AgeKey:
    return new_age_key()


@pytest.fixture
def env(key: AgeKey) -> dict[str, str]:
    return sops_env(key)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "cache"
    path.mkdir()
    yield path


def secret(name: str) -> tuple[bytes, list[str]]:
    """A plaintext Secret manifest and the secret values in it."""
    password = f"pw-{name}-S3cr3t!"
    api = f"api-{name}-key-value"
    text = SECRET.format(name=name, password=password,
                         api_key=base64.b64encode(api.encode()).decode())
    return text.encode(), [password, f"tok-{name}-0123456789", api]


def strip_sops(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "sops"}


def render(app: Path, cache: Path, env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    proc = run_kiln("render", str(app), "--cache-dir", str(cache), *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def scan(cache: Path, values: list[str]) -> None:
    assert assert_no_plaintext([cache], values) > 0, "the cache holds nothing: nothing was checked"


# -- whole objects --------------------------------------------------------------------------

@pytest.mark.parametrize("selector", [
    DATA_ONLY,
    ["--unencrypted-regex", "^(apiVersion|kind|metadata|type)$"],
    ["--encrypted-suffix", "ata"],
    ["--unencrypted-suffix", "_plain"],
    [*DATA_ONLY, "--mac-only-encrypted"],
], ids=["encrypted_regex", "unencrypted_regex", "encrypted_suffix", "unencrypted_suffix",
        "mac_only_encrypted"])
def test_whole_object_matches_sops(tmp_path: Path, key: AgeKey, env: dict[str, str],
                                   cache: Path, selector: list[str]) -> None:
    app = tmp_path / "app"
    app.mkdir()
    plain, values = secret("web")
    enc = sops_encrypt(plain, "yaml", tmp_path, "--age", key.recipient, *selector)
    assert b"S3cr3t" not in enc
    (app / "secret.yaml").write_bytes(enc)
    expected = yaml.safe_load(sops_decrypt(enc, "yaml", env))
    objects = render(app, cache, env)
    assert objects == [strip_sops(expected)]
    assert objects[0]["stringData"]["password"] == values[0]
    scan(cache, values)
    # A cache hit decrypts again, in memory, from the stored ciphertext.
    assert render(app, cache, env) == objects
    scan(cache, values)


def test_multi_document_stream(tmp_path: Path, key: AgeKey, env: dict[str, str],
                               cache: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    one, v1 = secret("one")
    two, v2 = secret("two")
    three, v3 = secret("three")
    (app / "a-one.yaml").write_bytes(sops_encrypt(one, "yaml", tmp_path, "--age", key.recipient,
                                                  *DATA_ONLY))
    both = two + b"---\n" + three
    enc_both = sops_encrypt(both, "yaml", tmp_path, "--age", key.recipient, *DATA_ONLY)
    (app / "b-both.yaml").write_bytes(enc_both)
    (app / "c-plain.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
                                      "data:\n  k: v\n")
    objects = render(app, cache, env)
    expected_one = yaml.safe_load(sops_decrypt((app / "a-one.yaml").read_bytes(), "yaml", env))
    expected_both = list(yaml.safe_load_all(sops_decrypt(enc_both, "yaml", env)))
    assert objects[0] == strip_sops(expected_one)
    assert objects[1:3] == [strip_sops(d) for d in expected_both]
    assert objects[3]["kind"] == "ConfigMap"
    scan(cache, v1 + v2 + v3)


def test_disabled_annotation_leaves_object_encrypted(tmp_path: Path, key: AgeKey,
                                                     env: dict[str, str], cache: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    plain, _ = secret("skip")
    plain = plain.replace(b"  namespace: apps\n", b"  namespace: apps\n  annotations:\n"
                          b"    kustomize.toolkit.fluxcd.io/decrypt: Disabled\n")
    enc = sops_encrypt(plain, "yaml", tmp_path, "--age", key.recipient, *DATA_ONLY)
    (app / "s.yaml").write_bytes(enc)
    objects = render(app, cache, env)
    assert "sops" in objects[0]
    assert objects[0]["stringData"]["password"].startswith("ENC[AES256_GCM")


def test_in_process_false_uses_sops_binary(tmp_path: Path, key: AgeKey, env: dict[str, str],
                                           cache: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    plain, values = secret("bin")
    two, values2 = secret("bin2")
    enc = sops_encrypt(plain + b"---\n" + two, "yaml", tmp_path, "--age", key.recipient,
                       *DATA_ONLY)
    (app / "s.yaml").write_bytes(enc)
    in_process = render(app, cache, env)
    via_binary = render(app, cache, env, "-O", "secrets.sops.inProcess=false")
    assert via_binary == in_process
    assert in_process == [strip_sops(d) for d in yaml.safe_load_all(sops_decrypt(enc, "yaml",
                                                                                  env))]
    scan(cache, values + values2)


# -- per-key Secret values ------------------------------------------------------------------

PER_KEY = {
    "app.env": ("dotenv", b"DB_PASSWORD=dotenv-pass-123\n#a comment\nMULTI=line1\\nline2\n"),
    "config.json": ("json", b'{"user": "admin", "password": "json-pass-456", "port": 5432}\n'),
    "settings.yaml": ("yaml", b"db:\n  password: yaml-pass-789\n  replicas: 3\n"),
    "legacy.ini": ("ini", b"[db]\npassword = ini-pass-000\nhost = db.local\n"),
    "blob": ("binary", b"binary-secret-\x00\x01\x02-bytes"),
    ".dockerconfigjson": ("json", b'{"auths": {"r.io": {"auth": "ZG9ja2VyLWF1dGg="}}}'),
}


def _semantic(fmt: str, data: bytes) -> Any:
    if fmt == "yaml":
        return yaml.safe_load(data)
    if fmt == "json":
        return json.loads(data)
    if fmt == "ini":
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(data.decode())
        return {s: dict(parser[s]) for s in parser.sections()}
    return data  # dotenv and binary: byte for byte


def test_per_key_secret_values_match_sops(tmp_path: Path, key: AgeKey, env: dict[str, str],
                                          cache: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    data: dict[str, str] = {}
    expected: dict[str, Any] = {}
    for name, (fmt, plain) in PER_KEY.items():
        enc = sops_encrypt(plain, fmt, tmp_path, "--age", key.recipient)
        data[name] = base64.b64encode(enc).decode()
        expected[name] = (fmt, _semantic(fmt, sops_decrypt(enc, fmt, env)))
    string_enc = sops_encrypt(b"STRING_SECRET=string-data-secret\n", "dotenv", tmp_path,
                              "--age", key.recipient)
    manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "per-key"},
                "data": {**data, "plain": base64.b64encode(b"not encrypted").decode()},
                "stringData": {"extra.env": string_enc.decode()}}
    (app / "secret.yaml").write_text(yaml.safe_dump(manifest))
    [obj] = render(app, cache, env)
    for name, (fmt, want) in expected.items():
        got = base64.b64decode(obj["data"][name])
        assert _semantic(fmt, got) == want, name
    assert base64.b64decode(obj["data"]["plain"]) == b"not encrypted"
    assert obj["stringData"]["extra.env"] == "STRING_SECRET=string-data-secret\n"
    scan(cache, ["dotenv-pass-123", "json-pass-456", "yaml-pass-789", "ini-pass-000",
                 "binary-secret-", "string-data-secret"])


def test_in_memory_api_matches_sops_for_every_format(tmp_path: Path, key: AgeKey,
                                                     env: dict[str, str]) -> None:
    from kiln.plugins.secrets_sops.api import Decryptor

    dec = Decryptor.for_app(None, env)
    for name, (fmt, plain) in PER_KEY.items():
        for extra in ([], ["--encrypted-regex", "pass"], ["--mac-only-encrypted"]):
            if fmt == "binary" and extra[:1] == ["--encrypted-regex"]:
                continue
            enc = sops_encrypt(plain, fmt, tmp_path, "--age", key.recipient, *extra)
            want = sops_decrypt(enc, fmt, env)
            got = dec.decrypt_bytes(enc, name=f"x/{name}", fmt=fmt)
            assert _semantic(fmt, got) == _semantic(fmt, want), (name, extra)


# -- keys -----------------------------------------------------------------------------------

def test_keys_from_file_option_and_secret_manifest(tmp_path: Path, key: AgeKey,
                                                   cache: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    plain, values = secret("keys")
    enc = sops_encrypt(plain, "yaml", tmp_path, "--age", key.recipient, *DATA_ONLY)
    (app / "s.yaml").write_bytes(enc)
    no_keys = sops_env(extra={"XDG_CONFIG_HOME": str(tmp_path / "none")})
    reference = yaml.safe_load(sops_decrypt(enc, "yaml", sops_env(key)))

    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"# test key\n{key.identity}\n")
    assert render(app, cache, {**no_keys, "SOPS_AGE_KEY_FILE": str(key_file)}) == \
        [strip_sops(reference)]
    assert render(app, cache, no_keys, "-O", f"secrets.sops.ageKeyFile={key_file}") == \
        [strip_sops(reference)]
    manifest = tmp_path / "sops-age.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sops-age"},
        "data": {"identity.agekey": base64.b64encode(key.identity.encode()).decode()}}))
    # A key file is the operator's to name (a flag), never kiln.yaml's (kiln.core.trust).
    assert render(app, cache, no_keys, "-O", f"secrets.sops.keySecretFile={manifest}") == \
        [strip_sops(reference)]
    scan(cache, values)


def test_wrong_key_lists_recipients(tmp_path: Path, key: AgeKey, other_key: AgeKey,
                                    cache: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    plain, values = secret("wrong")
    (app / "s.yaml").write_bytes(sops_encrypt(plain, "yaml", tmp_path, "--age", key.recipient,
                                              *DATA_ONLY))
    proc = run_kiln("render", str(app), "--cache-dir", str(cache),
                    env=sops_env(other_key, extra={"XDG_CONFIG_HOME": str(tmp_path)}))
    assert_clean_failure(proc, "Secret/apps/wrong", "no available key", key.recipient)
    assert other_key.identity not in proc.stderr
    scan(cache, values)


def test_tampered_value_names_the_field(tmp_path: Path, key: AgeKey, env: dict[str, str],
                                        cache: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    plain, values = secret("tamper")
    enc = sops_encrypt(plain, "yaml", tmp_path, "--age", key.recipient, *DATA_ONLY)
    doc = yaml.safe_load(enc)
    token = doc["stringData"]["password"]
    data = token.split("data:", 1)[1].split(",", 1)[0]
    flipped = base64.b64encode(bytes([base64.b64decode(data)[0] ^ 1]) +
                               base64.b64decode(data)[1:]).decode()
    tampered = enc.replace(data.encode(), flipped.encode())
    (app / "s.yaml").write_bytes(tampered)
    proc = run_kiln("render", str(app), "--cache-dir", str(cache), env=env)
    assert_clean_failure(proc, "Secret/apps/tamper", "stringData:password", "authentication")
    ref = subprocess.run([tool("sops"), "decrypt", "--input-type", "yaml", "--output-type",
                          "yaml"], input=tampered, capture_output=True, env=env, check=False)
    assert ref.returncode != 0, "sops should refuse the tampered value too"
    scan(cache, values)


def test_tampered_mac_fails_unless_ignored(tmp_path: Path, key: AgeKey, env: dict[str, str],
                                           cache: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    plain, values = secret("mac")
    enc = sops_encrypt(plain, "yaml", tmp_path, "--age", key.recipient, *DATA_ONLY)
    # metadata is plaintext, but covered by the MAC: changing it must be detected
    tampered = enc.replace(b"namespace: apps", b"namespace: evil")
    (app / "s.yaml").write_bytes(tampered)
    proc = run_kiln("render", str(app), "--cache-dir", str(cache), env=env)
    assert_clean_failure(proc, "Secret/evil/mac", "MAC mismatch")
    ref = subprocess.run([tool("sops"), "decrypt", "--input-type", "yaml", "--output-type",
                          "yaml"], input=tampered, capture_output=True, env=env, check=False)
    assert ref.returncode != 0 and b"MAC mismatch" in ref.stderr
    objects = render(app, cache, env, "-O", "secrets.sops.ignoreMac=true")
    expected = yaml.safe_load(sops_decrypt(tampered, "yaml", env, "--ignore-mac"))
    assert objects == [strip_sops(expected)]
    scan(cache, values)


def test_oversize_document_is_refused(tmp_path: Path, env: dict[str, str], cache: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    big = b"mac: ENC[" + b"x" * (5 << 20)
    manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "big"},
                "data": {"huge.yaml": base64.b64encode(big).decode()}}
    (app / "s.yaml").write_text(yaml.safe_dump(manifest))
    proc = run_kiln("render", str(app), "--cache-dir", str(cache), env=env)
    assert_clean_failure(proc, "Secret/big data.huge.yaml", "5242880-byte limit")


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "sops-binary"])
def test_every_decrypted_value_is_reported_for_redaction(tmp_path: Path, key: AgeKey,
                                                         env: dict[str, str],
                                                         in_process: bool) -> None:
    from kiln.core.redact import Redactor
    from kiln.plugins.secrets_sops.api import Decryptor
    from kiln.plugins.secrets_sops.options import SopsOptions

    redactor = Redactor()
    base = Decryptor.for_app(None, env)
    dec = Decryptor(base.ring, SopsOptions(in_process=in_process), on_plain=redactor.register)
    plain, values = secret("redact")
    enc = sops_encrypt(plain, "yaml", tmp_path, "--age", key.recipient, *DATA_ONLY)
    dec.decrypt_bytes(enc, name="s.yaml")
    env_enc = sops_encrypt(b"A=dotenv-redacted-1\nB=dotenv-redacted-2\n", "dotenv", tmp_path,
                           "--age", key.recipient)
    dec.decrypt_bytes(env_enc, name="s.env")
    for value in [*values[:2], "dotenv-redacted-1", "dotenv-redacted-2"]:
        assert redactor.redact(f"x {value} y") == "x <redacted> y", value


def test_debug_log_holds_no_plaintext(tmp_path: Path, key: AgeKey, env: dict[str, str],
                                      cache: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    plain, values = secret("logs")
    (app / "s.yaml").write_bytes(sops_encrypt(plain, "yaml", tmp_path, "--age", key.recipient,
                                              *DATA_ONLY))
    proc = run_kiln("render", str(app), "--cache-dir", str(cache), "--debug", env=env)
    assert proc.returncode == 0, proc.stderr
    assert values[0] in proc.stdout
    for value in values:
        assert value not in proc.stderr
    scan(cache, values)


def test_kustomize_reordered_object_needs_ignore_mac(tmp_path: Path, key: AgeKey,
                                                     env: dict[str, str], cache: Path) -> None:
    """kustomize sorts fields, so the MAC of a built object no longer matches (Flux never
    checks it); kiln says so cleanly, ignoreMac decrypts, and the source file verifies."""
    from kiln.plugins.secrets_sops.api import Decryptor

    plain, values = secret("kz")
    enc = sops_encrypt(plain, "yaml", tmp_path, "--age", key.recipient, *DATA_ONLY)
    kz = tmp_path / "kz"
    kz.mkdir()
    (kz / "secret.yaml").write_bytes(enc)
    (kz / "kustomization.yaml").write_text("resources:\n- secret.yaml\n")
    built = subprocess.run([tool("kubectl"), "kustomize", str(kz)], capture_output=True,
                           check=True, timeout=60).stdout
    app = tmp_path / "app"
    app.mkdir()
    (app / "built.yaml").write_bytes(built)
    proc = run_kiln("render", str(app), "--cache-dir", str(cache), env=env)
    assert_clean_failure(proc, "Secret/apps/kz", "MAC mismatch")
    objects = render(app, cache, env, "-O", "secrets.sops.ignoreMac=true")
    assert objects == [yaml.safe_load(sops_decrypt(built, "yaml", env, "--ignore-mac"))]
    # The source file itself verifies (what kustomize apps check before the build).
    tokens = Decryptor.for_app(None, env).verify_documents((kz / "secret.yaml").read_bytes(),
                                                           name="secret.yaml")
    assert len(tokens) == 1
    scan(cache, values)


def test_bundled_example_with_published_test_key(cache: Path) -> None:
    from tests.helpers import EXAMPLES

    key_file = EXAMPLES / "sops-TEST-ONLY-age-key.txt"
    env = sops_env(extra={"SOPS_AGE_KEY_FILE": str(key_file)})
    enc = (EXAMPLES / "sops" / "secret.yaml").read_bytes()
    objects = render(EXAMPLES / "sops", cache, env)
    assert objects[1] == yaml.safe_load(sops_decrypt(enc, "yaml", env))
    scan(cache, ["example-password-not-real"])
