"""SOPS through kustomize, Flux's way: encrypted sources decrypted before the build, and MACs of
encrypted resources checked at the source.

Real ``sops`` encrypts every fixture at test time with throwaway age keys (pyrage); the expected
output is ``kubectl kustomize`` run on a copy decrypted by hand with ``sops decrypt``. kiln runs
as the real CLI.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import assert_clean_failure, run_kiln, write_tree
from tests.integration.kustomize_support import raw_kustomize, tree_digest
from tests.integration.sops_helpers import AgeKey, new_age_key, sops_decrypt, sops_encrypt, sops_env
from tests.secrets_scan import PlaintextScan, plaintext_scan

pytestmark = pytest.mark.integration
__all__ = ["plaintext_scan"]

ENV_PLAIN = b"DB_USER=admin-sopskust\nDB_PASSWORD=pw-Env-S3cr3t-77\n"
TOKEN_PLAIN = b"tok-File-S3cr3t-0123456789"
CONFIG_PLAIN = b"endpoint: https://db.example\napiKey: key-Yaml-S3cr3t-42\n"
PATCH_PLAIN = b"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
      - name: web
        env:
        - name: LICENSE
          value: lic-Patch-S3cr3t-99
"""
VALUES = ["admin-sopskust", "pw-Env-S3cr3t-77", TOKEN_PLAIN.decode(), "key-Yaml-S3cr3t-42",
          "lic-Patch-S3cr3t-99"]
SECRET = b"""\
apiVersion: v1
kind: Secret
metadata:
  name: db
type: Opaque
stringData:
  password: pw-Resource-S3cr3t-55
  user: resource-user
"""
DATA_ONLY = ["--encrypted-regex", "^(data|stringData)$"]
TREE = {
    "app/kustomization.yaml": """
        namePrefix: prod-
        resources: [deploy.yaml]
        secretGenerator:
        - name: creds
          envs: [creds.env]
          files: [token, config.yaml]
        patches:
        - path: license-patch.yaml
    """,
    "app/deploy.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          selector:
            matchLabels: {app: web}
          template:
            metadata:
              labels: {app: web}
            spec:
              containers:
              - name: web
                image: nginx:1.27
    """,
}
# (file, plaintext, sops format) of each encrypted source of TREE's app.
SOURCES = [("creds.env", ENV_PLAIN, "dotenv"), ("token", TOKEN_PLAIN, "binary"),
           ("config.yaml", CONFIG_PLAIN, "yaml"), ("license-patch.yaml", PATCH_PLAIN, "yaml")]


@pytest.fixture(scope="module")
def key() -> AgeKey:
    return new_age_key()


@pytest.fixture
def env(key: AgeKey, tmp_path: Path) -> dict[str, str]:
    out = sops_env(key)
    out["XDG_CACHE_HOME"] = str(tmp_path / "xdg-cache")
    return out


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "kiln-cache"


def make_repo(tmp_path: Path, key: AgeKey) -> Path:
    """TREE with every source encrypted by the real sops; returns the source root."""
    root = write_tree(tmp_path / "repo", TREE)
    for name, plain, fmt in SOURCES:
        (root / "app" / name).write_bytes(sops_encrypt(plain, fmt, tmp_path, "--age",
                                                       key.recipient))
    return root


def render(root: Path, cache: Path, env: dict[str, str], app: str = "app", *args: str
           ) -> Any:
    return run_kiln("render", str(root / app), "--source-root", str(root), "--cache-dir",
                    str(cache), *args, env=env)


def expected_build(root: Path, tmp_path: Path, env: dict[str, str],
                   sources: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """``kubectl kustomize`` on a copy whose ``sources`` (file, format) ``sops decrypt`` wrote."""
    copy = tmp_path / "by-hand"
    shutil.copytree(root, copy)
    for name, fmt in sources:
        path = copy / "app" / name
        path.write_bytes(sops_decrypt(path.read_bytes(), fmt, env))
    try:
        return raw_kustomize(copy / "app")
    finally:
        shutil.rmtree(copy)


def cache_entries(cache: Path) -> list[Path]:
    objects = cache / "objects"
    return [p for p in objects.rglob("*") if p.is_file()] if objects.exists() else []


def shm_builds() -> set[str]:
    shm = Path("/dev/shm")
    return {p.name for p in shm.glob("kiln-kustomize-*")} if shm.is_dir() else set()


def test_generator_and_patch_sources_are_decrypted_before_the_build(
        tmp_path: Path, key: AgeKey, env: dict[str, str], cache: Path,
        plaintext_scan: PlaintextScan) -> None:
    plaintext_scan.add(*VALUES)
    root = make_repo(tmp_path, key)
    for name, *_ in SOURCES:
        assert b"S3cr3t" not in (root / "app" / name).read_bytes()
    before = tree_digest(root)
    shm_before = shm_builds()
    proc = render(root, cache, env)
    assert proc.returncode == 0, proc.stderr
    objects = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert objects == expected_build(root, tmp_path, env, [(n, f) for n, _, f in SOURCES])
    secret = next(o for o in objects if o["kind"] == "Secret")
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert data["DB_PASSWORD"] == b"pw-Env-S3cr3t-77" and data["DB_USER"] == b"admin-sopskust"
    assert data["token"] == TOKEN_PLAIN
    assert yaml.safe_load(data["config.yaml"]) == yaml.safe_load(CONFIG_PLAIN)
    assert not any(k.startswith("sops") for k in data), data.keys()
    deploy = next(o for o in objects if o["kind"] == "Deployment")
    assert deploy["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "LICENSE", "value": "lic-Patch-S3cr3t-99"}]
    # The checkout is untouched, the private tree is gone, and the render was never cached:
    # a second render builds again (still nothing stored).
    assert tree_digest(root) == before
    assert shm_builds() <= shm_before
    assert not list((cache / "tools" / "kustomize" / "builds").iterdir())
    assert cache_entries(cache) == []
    again = render(root, cache, env, "app", "--debug")
    assert again.returncode == 0, again.stderr
    assert again.stdout == proc.stdout
    assert "not cached: SOPS-encrypted" in again.stderr
    assert "S3cr3t" not in again.stderr
    assert cache_entries(cache) == []
    plaintext_scan.watch(root)
    plaintext_scan.expect_no_entries()  # never cached (asserted above): tools/ is scanned


def test_no_secrets_leaves_sources_encrypted(tmp_path: Path, key: AgeKey, env: dict[str, str],
                                             cache: Path, plaintext_scan: PlaintextScan) -> None:
    plaintext_scan.add(*VALUES)
    root = make_repo(tmp_path, key)
    kfile = root / "app" / "kustomization.yaml"
    full = kfile.read_text()
    # An encrypted patch cannot be applied encrypted: a clear error, not kustomize's.
    proc = render(root, cache, sops_env(), "app", "--no-secrets")
    assert_clean_failure(proc, str(root / "app" / "license-patch.yaml"), "--no-secrets")
    # Generator sources stay encrypted; no key is needed since nothing is decrypted.
    kfile.write_text(full.split("patches:")[0])
    proc = render(root, cache, sops_env(), "app", "--no-secrets")
    assert proc.returncode == 0, proc.stderr
    assert "S3cr3t" not in proc.stdout
    secret = next(d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "Secret")
    assert b"ENC[" in base64.b64decode(secret["data"]["token"])
    assert cache_entries(cache) == []
    plaintext_scan.expect_no_entries()  # never cached (asserted above): tools/ is scanned


def test_tampered_env_file_is_a_one_line_error(tmp_path: Path, key: AgeKey,
                                               env: dict[str, str], cache: Path) -> None:
    root = make_repo(tmp_path, key)
    path = root / "app" / "creds.env"
    lines = path.read_text().splitlines(keepends=True)
    name, _, value = lines[1].partition("=")
    data = value.split("data:", 1)[1].split(",", 1)[0]
    flipped = ("A" if data[0] != "A" else "B") + data[1:]
    lines[1] = f"{name}={value.replace(data, flipped, 1)}"
    path.write_text("".join(lines))
    before = tree_digest(root)
    proc = render(root, cache, env)
    assert_clean_failure(proc, str(path), "DB_PASSWORD")
    assert "S3cr3t" not in proc.stderr
    assert tree_digest(root) == before


def test_wrong_key_names_the_file_and_recipients(tmp_path: Path, key: AgeKey,
                                                 cache: Path) -> None:
    root = make_repo(tmp_path, key)
    proc = render(root, cache, sops_env(new_age_key()))
    assert_clean_failure(proc, str(root / "app"), "no available key", key.recipient)


def test_sops_plugin_disabled_is_a_clear_error(tmp_path: Path, key: AgeKey,
                                               env: dict[str, str], cache: Path) -> None:
    root = make_repo(tmp_path, key)
    proc = render(root, cache, {**env, "KILN_DISABLE_PLUGINS": "secrets_sops"})
    assert_clean_failure(proc, str(root / "app" / "config.yaml"), "SOPS-encrypted",
                         "secrets_sops plugin disabled")


def test_encrypted_source_in_a_base_is_found(tmp_path: Path, key: AgeKey, env: dict[str, str],
                                             cache: Path, plaintext_scan: PlaintextScan) -> None:
    """The walk follows resources and components: a base's secretGenerator is decrypted too."""
    plaintext_scan.add("pw-Env-S3cr3t-77")
    root = write_tree(tmp_path / "repo", {
        "app/kustomization.yaml": "resources: [../base]\ncomponents: [../extra]\n",
        "base/kustomization.yaml": "secretGenerator:\n- name: base\n  envs: [creds.env]\n",
        "extra/kustomization.yaml": """
            apiVersion: kustomize.config.k8s.io/v1alpha1
            kind: Component
            secretGenerator:
            - name: extra
              files: [token]
        """,
    })
    (root / "base" / "creds.env").write_bytes(
        sops_encrypt(ENV_PLAIN, "dotenv", tmp_path, "--age", key.recipient))
    (root / "extra" / "token").write_bytes(
        sops_encrypt(TOKEN_PLAIN, "binary", tmp_path, "--age", key.recipient))
    proc = render(root, cache, env)
    assert proc.returncode == 0, proc.stderr
    objects = [d for d in yaml.safe_load_all(proc.stdout) if d]
    copy = tmp_path / "by-hand"
    shutil.copytree(root, copy)
    for rel, fmt in (("base/creds.env", "dotenv"), ("extra/token", "binary")):
        (copy / rel).write_bytes(sops_decrypt((copy / rel).read_bytes(), fmt, env))
    assert objects == raw_kustomize(copy / "app")
    shutil.rmtree(copy)
    assert cache_entries(cache) == []
    plaintext_scan.expect_no_entries()  # never cached (asserted above): tools/ is scanned


# -- whole-object encrypted resources ---------------------------------------------------------

def resource_repo(tmp_path: Path, key: AgeKey) -> Path:
    root = write_tree(tmp_path / "repo", {
        "app/kustomization.yaml": """
            namespace: apps
            namePrefix: prod-
            commonLabels: {team: db}
            resources: [secret.enc.yaml]
        """,
    })
    (root / "app" / "secret.enc.yaml").write_bytes(
        sops_encrypt(SECRET, "yaml", tmp_path, "--age", key.recipient, *DATA_ONLY))
    return root


def test_encrypted_resource_through_kustomize_is_verified_at_the_source(
        tmp_path: Path, key: AgeKey, env: dict[str, str], cache: Path,
        plaintext_scan: PlaintextScan) -> None:
    plaintext_scan.add("pw-Resource-S3cr3t-55")
    root = resource_repo(tmp_path, key)
    expected = [{k: v for k, v in o.items() if k != "sops"}
                for o in expected_build(root, tmp_path, env, [("secret.enc.yaml", "yaml")])]
    for attempt in ("cold", "cache hit"):
        proc = render(root, cache, env)
        assert proc.returncode == 0, (attempt, proc.stderr)
        objects = [d for d in yaml.safe_load_all(proc.stdout) if d]
        assert objects == expected, attempt
        assert objects[0]["stringData"]["password"] == "pw-Resource-S3cr3t-55"
        assert objects[0]["metadata"]["name"] == "prod-db"
    # This render is cacheable: only ciphertext was stored.
    assert len(cache_entries(cache)) == 1


@pytest.mark.parametrize("tamper", ["plaintext field", "swapped value"])
def test_tampered_encrypted_resource_fails_naming_the_file(
        tmp_path: Path, key: AgeKey, env: dict[str, str], cache: Path, tamper: str) -> None:
    root = resource_repo(tmp_path, key)
    path = root / "app" / "secret.enc.yaml"
    ok = render(root, cache, env)  # a cache entry exists for the good file...
    assert ok.returncode == 0, ok.stderr
    doc = path.read_text()
    if tamper == "plaintext field":
        doc = doc.replace("name: db", "name: evil", 1)
    else:
        lines = doc.splitlines(keepends=True)
        pw = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("password:"))
        user = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("user:"))
        pw_val, user_val = lines[pw].split(": ", 1)[1], lines[user].split(": ", 1)[1]
        lines[pw] = lines[pw].replace(pw_val, user_val)
        lines[user] = lines[user].replace(user_val, pw_val)
        doc = "".join(lines)
    path.write_text(doc)
    proc = render(root, cache, env)  # ...but the changed file is checked before any lookup
    assert_clean_failure(proc, str(path))
    assert "MAC mismatch" in proc.stderr or "authentication failed" in proc.stderr
    assert "S3cr3t" not in proc.stderr


def test_without_source_verification_the_kustomized_object_fails_its_mac(
        tmp_path: Path, key: AgeKey, env: dict[str, str], cache: Path) -> None:
    """Why verification moved to the source: a resource kustomize reordered and relabelled,
    rendered as a plain directory stream, fails the resolver's MAC check."""
    root = resource_repo(tmp_path, key)
    raw = run_kiln("render", str(root / "app"), "--source-root", str(root), "--cache-dir",
                   str(cache), "--no-secrets", env=env)
    assert raw.returncode == 0, raw.stderr
    stream = tmp_path / "stream"
    stream.mkdir()
    (stream / "out.yaml").write_text(raw.stdout)
    proc = run_kiln("render", str(stream), "--cache-dir", str(cache), env=env)
    assert_clean_failure(proc, "MAC mismatch")


def test_ignore_mac_skips_source_verification(tmp_path: Path, key: AgeKey,
                                              env: dict[str, str], cache: Path) -> None:
    root = resource_repo(tmp_path, key)
    path = root / "app" / "secret.enc.yaml"
    path.write_text(path.read_text().replace("name: db", "name: other", 1))
    proc = render(root, cache, env, "app", "-O", "secrets.sops.ignoreMac=true")
    assert proc.returncode == 0, proc.stderr
    objects = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert objects[0]["metadata"]["name"] == "prod-other"
    assert objects[0]["stringData"]["password"] == "pw-Resource-S3cr3t-55"


def test_hard_linked_sources_are_replaced_never_written_through(
        tmp_path: Path, key: AgeKey, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without /dev/shm the build tree sits beside the checkout and hard-links its files: each
    decrypted source must replace its link with a new 0600 file, leaving the checkout alone.
    (In-process, so the test can take /dev/shm away and watch the files being placed.)"""
    from kiln.core.engine import Engine
    from kiln.plugins.kustomize import encrypted

    root = make_repo(tmp_path, key)
    monkeypatch.setattr(encrypted, "SHM", tmp_path / "no-shm")
    placed: list[tuple[int, int, int]] = []
    real_place = encrypted.place

    def watch(target: Path, plain: bytes) -> None:
        real_place(target, plain)
        st = os.stat(target)
        placed.append((st.st_ino, st.st_nlink, st.st_mode & 0o777))
        assert os.stat(target.parent.parent).st_mode & 0o777 in (0o700, 0o755)

    monkeypatch.setattr(encrypted, "place", watch)
    stats = {n: os.stat(root / "app" / n) for n, *_ in SOURCES}
    before = tree_digest(root)
    engine = Engine(tmp_path / "kiln-cache", env=env, entry_points=False)
    app = engine.load_app(root / "app", source_root=root)
    objects = engine.render(app).objects
    assert objects == expected_build(root, tmp_path, env, [(n, f) for n, _, f in SOURCES])
    assert len(placed) == len(SOURCES)
    inodes = {st.st_ino for st in stats.values()}
    for ino, nlink, mode in placed:
        assert ino not in inodes and nlink == 1 and mode == 0o600
    assert tree_digest(root) == before
    for name, st in stats.items():
        now = os.stat(root / "app" / name)
        assert (now.st_ino, now.st_nlink, now.st_mtime_ns) == (st.st_ino, 1, st.st_mtime_ns)
    assert not list((tmp_path / "kiln-cache" / "tools" / "kustomize" / "builds").iterdir())


def test_generator_source_without_its_mac_is_refused_not_built_encrypted(
        tmp_path: Path, key: AgeKey, env: dict[str, str], cache: Path) -> None:
    """A secretGenerator file whose MAC line was removed is still a SOPS document: kiln refuses
    it (naming the file) instead of handing its ciphertext to kustomize as data."""
    root = make_repo(tmp_path, key)
    source = root / "app" / "config.yaml"
    text = source.read_text()
    stripped = "".join(line for line in text.splitlines(keepends=True)
                       if not line.lstrip().startswith("mac:"))
    assert stripped != text and "ENC[AES256_GCM," in stripped
    source.write_text(stripped)
    proc = render(root, cache, env)
    assert_clean_failure(proc, "config.yaml", "MAC")
    # The operator's explicit switch decrypts it anyway, as `sops --ignore-mac` would.
    ignored = render(root, cache, env, "app", "--sops-ignore-mac")
    assert ignored.returncode == 0, ignored.stderr
    secret = next(d for d in yaml.safe_load_all(ignored.stdout) if d and d["kind"] == "Secret")
    config = base64.b64decode(secret["data"]["config.yaml"])
    assert yaml.safe_load(config) == yaml.safe_load(CONFIG_PLAIN)
