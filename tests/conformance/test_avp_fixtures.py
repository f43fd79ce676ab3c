"""argocd-vault-plugin's own fixture suite, run through ``kiln generate`` against OpenBao.

From a fetched argocd-vault-plugin (``KILN_AVP_MIRROR``): the secrets its ``cmd`` tests write
to their test Vault (every ``client.Logical().Write`` of ``CreateTestAppRoleVault`` in
``pkg/helpers/test_helpers.go``, read from the Go source) are written to a real OpenBao dev
server with the same mounts (``secret/`` KV v1, ``kv/`` KV v2) and an AppRole that may read
both; ``kiln generate fixtures/input/nonempty`` must then print, object for object, what
``fixtures/output/all.yaml`` holds (both parsed with PyYAML).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conformance.conftest import mirror
from tests.conformance.gosource import git_show, vault_writes
from tests.helpers import run_kiln
from tests.integration.openbao import OpenBao, start_openbao, stop_openbao

pytestmark = pytest.mark.integration

MIRROR = mirror("KILN_AVP_MIRROR")
WRITES = vault_writes(git_show(MIRROR, "pkg/helpers/test_helpers.go"), "CreateTestAppRoleVault")


@pytest.fixture(scope="module")
def avp_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mirror's ``fixtures/`` directory, exported (git archive) into a temporary dir."""
    root = tmp_path_factory.mktemp("avp")
    archive = subprocess.run(["git", f"--git-dir={MIRROR}", "archive", "HEAD", "fixtures"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root / "fixtures"


@pytest.fixture(scope="module")
def avp_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OpenBao, str, str]]:
    """A dedicated OpenBao holding AVP's test data; yields (server, role_id, secret_id)."""
    server = start_openbao(tmp_path_factory.mktemp("openbao-avp"))
    try:
        server.api("DELETE", "sys/mounts/secret")  # the dev server's secret/ is KV v2
        server.enable_kv("secret", 1)
        server.enable_kv("kv", 2)
        for path, body in WRITES:
            if path.startswith(("secret/", "kv/")):
                server.api("POST", path, body)
        server.put_policy("avp-read", 'path "secret/*" { capabilities = ["read", "list"] }\n'
                                      'path "kv/*" { capabilities = ["read", "list"] }\n')
        role_id, secret_id = server.approle("role1", ["avp-read"])
        yield server, role_id, secret_id
    finally:
        stop_openbao(server)


def _docs(text: str) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def _ident(doc: Any) -> str:
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind')}/{meta.get('namespace')}/{meta.get('name')}"


def test_avp_writes_were_read() -> None:
    """The Go extractor found AVP's test data (a broken extractor must not pass quietly)."""
    paths = [path for path, _ in WRITES]
    assert "secret/json" in paths and "kv/data/versioned" in paths and len(paths) >= 10


def test_avp_nonempty_fixtures_match_all_yaml(avp_tree: Path,
                                              avp_vault: tuple[OpenBao, str, str]) -> None:
    """``kiln generate fixtures/input/nonempty`` equals AVP's ``all.yaml``, object for object."""
    server, role_id, secret_id = avp_vault
    proc = run_kiln("generate", str(avp_tree / "input" / "nonempty"), env={
        "AVP_TYPE": "vault", "AVP_AUTH_TYPE": "approle", "AVP_ROLE_ID": role_id,
        "AVP_SECRET_ID": secret_id, "VAULT_ADDR": server.addr})
    assert proc.returncode == 0, proc.stderr
    got = _docs(proc.stdout)
    want = _docs((avp_tree / "output" / "all.yaml").read_text())
    matched = [w for w, g in zip(want, got, strict=False) if w == g]
    print(f"\nAVP fixtures: {len(matched)} of {len(want)} objects of all.yaml matched "
          f"({len(got)} generated)")
    mismatched = [f"{_ident(w)}: want {w!r}\n  got {g!r}"
                  for w, g in zip(want, got, strict=False) if w != g]
    assert not mismatched, "\n".join(mismatched)
    assert len(got) == len(want), [_ident(d) for d in got]


MODIFIERS_TEST = git_show(MIRROR, "pkg/kube/modifiers_test.go")
NESTED = {"data": {"subkey": "secret"}}


@pytest.mark.parametrize(("template", "value", "expected"), [
    ("{.data.subkey}", NESTED, "secret"),  # TestJsonPath_succcess
    ("{.data.subkey}", '{"data": {"subkey": "secret"}}', "secret"),  # TestJsonPath_unmarshal_...
    ("{.missingPath}", NESTED, "error: missingPath is not found"),  # TestJsonPath_missingPath
    ("{!invalidPath}", NESTED,  # TestJsonPath_invalidPath
     "error: unrecognized character in action: U+0021 '!'"),
])
def test_avp_jsonpath_modifier_tests(template: str, value: Any, expected: str) -> None:
    """AVP's own jsonPath modifier tests (``pkg/kube/modifiers_test.go``), by their values."""
    from kiln.core.placeholders import Modifier
    from kiln.core.secret_modifiers import ModifierError, apply_modifier

    assert f'"{template}"' in MODIFIERS_TEST
    assert expected.removeprefix("error: ") in MODIFIERS_TEST
    try:
        got = apply_modifier(Modifier("jsonPath", (template,)), value)
    except ModifierError as exc:
        got = f"error: {exc}"
    assert got == expected
