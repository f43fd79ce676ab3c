"""Rule 1 for ``kiln render --output-dir``: kiln writes files there, so no resolved secret may
reach them. The apps hold real SOPS ciphertext (a throwaway age key, the real sops): the same
apps printed with ``-o json`` do decrypt (the values are reachable, so the scan can fail), and
the written tree holds the ciphertext and none of the values, raw or base64."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import yaml

from tests.helpers import run_kiln, write_tree
from tests.integration.many_repo import git
from tests.integration.sops_helpers import new_age_key, sops_encrypt, sops_env
from tests.secrets_scan import find_plaintext

pytestmark = pytest.mark.integration


def test_output_dir_never_writes_a_resolved_secret(tmp_path: Path) -> None:
    key = new_age_key()
    password = "pw-" + secrets.token_hex(12)
    token = "tok-" + secrets.token_hex(12)
    root = tmp_path / "repo"
    write_tree(root, {
        "apps/plain/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\n",
        "apps/kust/kustomization.yaml": "secretGenerator:\n- name: creds\n  envs: [creds.env]\n",
    })
    plain = (f"apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\n"
             f"stringData:\n  password: {password}\n").encode()
    (root / "apps/sops").mkdir(parents=True)
    (root / "apps/sops/secret.yaml").write_bytes(sops_encrypt(
        plain, "yaml", tmp_path, "--age", key.recipient,
        "--encrypted-regex", "^(data|stringData)$"))
    (root / "apps/kust/creds.env").write_bytes(sops_encrypt(
        f"TOKEN={token}\n".encode(), "dotenv", tmp_path, "--age", key.recipient))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "apps")
    env = sops_env(key)
    apps = ["apps/kust", "apps/plain", "apps/sops"]
    cache = tmp_path / "cache"

    printed = run_kiln("render", "-o", "json", *apps, "--cache-dir", str(cache), cwd=root,
                       env=env)
    assert printed.returncode == 0, printed.stderr
    doc = json.loads(printed.stdout)
    assert doc["apps"][2]["objects"][0]["stringData"]["password"] == password
    (tmp_path / "printed").mkdir()
    (tmp_path / "printed/apps.json").write_text(printed.stdout)
    # the scan sees each value where kiln did resolve it (the token base64 in Secret.data)
    assert find_plaintext([tmp_path / "printed"], [password])
    assert find_plaintext([tmp_path / "printed"], [token])

    out = tmp_path / "rendered"
    tree = run_kiln("render", "--output-dir", str(out), *apps, "--cache-dir", str(cache),
                    cwd=root, env=env)
    assert tree.returncode == 0, tree.stderr
    assert tree.stdout == ""
    assert find_plaintext([out], [password, token]) == []
    assert password not in tree.stderr and token not in tree.stderr
    written = yaml.safe_load((out / "apps/sops/manifest.yaml").read_text())
    assert written["stringData"]["password"].startswith("ENC[AES256_GCM,")
    assert (out / "apps/plain/manifest.yaml").is_file()
    assert (out / "apps/kust/manifest.yaml").is_file()
    assert find_plaintext([cache], [password, token]) == []
