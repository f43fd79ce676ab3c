"""Which kustomize inputs count as SOPS sources, their formats, and the engine's file services."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from kiln.core.context import SecretContext
from kiln.core.engine import Engine
from kiln.core.hookspecs import hookimpl
from kiln.core.registry import ResolverRegistry
from kiln.core.sops_format import looks_encrypted
from kiln.plugins.kustomize.encrypted import find_encrypted, source_format
from kiln.plugins.kustomize.walk import walk
from tests.helpers import write_tree


@pytest.mark.parametrize(("what", "name", "fmt"), [
    ("secretGenerator file", "token", "binary"),
    ("secretGenerator file", "cfg.YAML", "yaml"),
    ("secretGenerator file", "a.yml", "yaml"),
    ("secretGenerator file", ".dockerconfigjson", "json"),
    ("secretGenerator file", "x.json", "json"),
    ("secretGenerator file", "s.ini", "ini"),
    ("secretGenerator env file", "creds", "dotenv"),
    ("secretGenerator env file", "creds.env", "dotenv"),
    ("secretGenerator env file", "creds.json", "json"),
    ("patch", "p.yaml", "yaml"),
])
def test_source_format_follows_flux(what: str, name: str, fmt: str) -> None:
    assert source_format(what, name) == fmt


def test_markers_of_every_format() -> None:
    assert looks_encrypted(b"a: ENC[x]\nsops:\n    mac: ENC[AES]")
    assert looks_encrypted(b'{"sops": {"mac": "ENC[AES"}}')
    assert looks_encrypted(b"A=ENC[x]\nsops_mac=ENC[AES]\n")
    assert looks_encrypted(b"[sops]\nmac = ENC[x]\n")
    assert not looks_encrypted(b"password: ENC[not-a-sops-file]\n")


def test_walk_records_secret_sources_and_resources(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {
        "app/kustomization.yaml": """
            resources: [../base, res.yaml]
            configMapGenerator:
            - name: cm
              files: [cm.txt]
            secretGenerator:
            - name: s
              files: [key.yaml=data.bin]
              envs: [a.env]
            patches:
            - path: p.yaml
            patchesStrategicMerge: [smp.yaml]
            generators: [gen.yaml]
        """,
        "app/res.yaml": "kind: X\n",
        "app/cm.txt": "x",
        "app/data.bin": "x",
        "app/a.env": "A=1\n",
        "app/p.yaml": "kind: X\n",
        "app/smp.yaml": "kind: X\n",
        "app/gen.yaml": """
            apiVersion: builtin
            kind: SecretGenerator
            metadata: {name: g}
            files: [g.txt]
        """,
        "app/g.txt": "x",
        "base/kustomization.yaml": """
            resources: [b.yaml]
            secretGenerator:
            - {name: b, env: b.env}
        """,
        "base/b.yaml": "kind: X\n",
        "base/b.env": "B=1\n",
    })
    closure = walk(root / "app", root)
    app, base = root / "app", root / "base"
    assert closure.secret_sources == {
        app / "data.bin": ("secretGenerator file", "key.yaml"),
        app / "a.env": ("secretGenerator env file", "a.env"),
        app / "p.yaml": ("patch", "p.yaml"),
        app / "g.txt": ("secretGenerator file", "g.txt"),
        base / "b.env": ("secretGenerator env file", "b.env"),
    }
    assert closure.resource_files == {app / "res.yaml", base / "b.yaml"}
    (app / "data.bin").write_text('{"data": "ENC[x]", "sops": {"mac": "ENC[y]"}}')
    found = find_encrypted(closure)
    assert [(e.path, e.what, e.fmt) for e in found] == [
        (app / "data.bin", "secretGenerator file", "yaml")]


class _FileResolver:
    """A stand-in resolver exposing the optional file services (the interface is what is
    under test here; the real SOPS resolver is exercised in the integration tests)."""

    options_type = None

    def __init__(self, name: str, order: int, answer: Any) -> None:
        self.name, self.order, self.answer = name, order, answer
        self.calls: list[tuple[bytes, str, str | None]] = []

    def wants(self, objects: Sequence[dict[str, Any]], ctx: SecretContext) -> bool:
        return False

    def resolve(self, objects: list[dict[str, Any]], ctx: SecretContext) -> list[dict[str, Any]]:
        return objects

    def decrypt_file(self, data: bytes, name: str, ctx: SecretContext, *,
                     fmt: str | None = None) -> Any:
        self.calls.append((data, name, fmt))
        return self.answer


class _Plugin:
    def __init__(self, *resolvers: _FileResolver) -> None:
        self.resolvers = resolvers

    @hookimpl
    def kiln_register_secret_resolvers(self, registry: ResolverRegistry) -> None:
        for resolver in self.resolvers:
            registry.add(resolver)


def test_engine_file_service_asks_resolvers_in_order(tmp_path: Path) -> None:
    first, second = _FileResolver("a-first", 1, None), _FileResolver("b-second", 2, b"plain")
    engine = Engine(tmp_path, env={"KILN_DISABLE_PLUGINS": "secrets_sops"}, entry_points=False,
                    plugins=[_Plugin(second, first)])
    (tmp_path / "app").mkdir()
    app = engine.load_app(tmp_path / "app")
    ctx = engine.render_context()
    assert ctx.redactor is engine.redactor
    assert ctx.decrypt_file is not None and ctx.verify_file is not None
    assert ctx.decrypt_file(app, b"enc", "f.env", "dotenv") == b"plain"
    assert first.calls == second.calls == [(b"enc", "f.env", "dotenv")]
    assert ctx.verify_file(app, b"enc", "f.yaml", "yaml") is None  # nobody verifies
    quiet = engine.render_context(secrets=False)
    assert quiet.decrypt_file is None and quiet.verify_file is None


def test_engine_file_service_without_resolvers(tmp_path: Path) -> None:
    engine = Engine(tmp_path, env={"KILN_DISABLE_PLUGINS": "secrets_sops"}, entry_points=False)
    (tmp_path / "app").mkdir()
    app = engine.load_app(tmp_path / "app")
    ctx = engine.render_context()
    assert ctx.decrypt_file is not None
    assert ctx.decrypt_file(app, b"enc", "f.env", None) is None
