"""The cluster-wide lock hook (``ServerCore.distlock``): held around the lead of a miss only,
under a key every replica computes alike, for git and path sources; and request settings
that differ never share a memo entry. A recording lock stands in for Redis (the real one is
``kiln.server.distlock``, tested on its own)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import yaml

from kiln.cmp.keymemo import KeyMemo
from kiln.cmp.service import CmpService
from kiln.core.deadline import Deadline
from kiln.core.engine import Engine
from kiln.core.sourcetree import SourceTreeBuilder
from kiln.serve.models import RenderRequest
from kiln.serve.service import ServeService, git_received
from kiln.server.lifecycle import ServerCore
from kiln.server.metrics import ServerMetrics

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  v: one\n"
COMMIT = "ab" * 20


class Recorder:
    """A lock that records the keys it was held for, and always gets the lock."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    @contextlib.contextmanager
    def hold(self, key: str, deadline: Deadline) -> Iterator[bool]:
        self.keys.append(key)
        yield True


def _service(tmp_path: Path, name: str, cache: Path) -> tuple[CmpService, Recorder]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HOSTNAME": name}
    engine = Engine(cache_dir=cache, env=env)
    core = ServerCore(2, ServerMetrics(process=False))
    lock = Recorder()
    core.distlock = lock
    service = CmpService(engine, operator_env=env, workdir=tmp_path / f"work-{name}",
                         core=core, memo=KeyMemo())
    return service, lock


def _received() -> object:
    builder = SourceTreeBuilder()
    builder.add_file("apps/web/cm.yaml", CM.encode())
    return git_received("file:///repo.git", COMMIT, "apps/web", builder.build())


def test_the_lead_of_a_miss_holds_the_lock_under_a_replica_independent_key(
        tmp_path: Path) -> None:
    one, lock_one = _service(tmp_path, "replica-a", tmp_path / "cache-a")
    two, lock_two = _service(tmp_path, "replica-b", tmp_path / "cache-b")
    received = _received()
    done = one.render(received, Deadline(60))  # type: ignore[arg-type]
    assert done.result.objects == [yaml.safe_load(CM)]
    assert len(lock_one.keys) == 1 and lock_one.keys[0].startswith("kiln:render:")
    again = one.render(received, Deadline(60))  # type: ignore[arg-type]
    assert again.result.cache_hit and len(lock_one.keys) == 1  # a memo hit takes no lock
    two.render(received, Deadline(60))  # type: ignore[arg-type]
    assert lock_two.keys == lock_one.keys  # another environment, the same key
    settings = {"namespace": "other"}
    three = one.render(received, Deadline(60), settings=settings)  # type: ignore[arg-type]
    assert not three.result.cache_hit, "settings must not share the earlier memo entry"
    assert len(lock_one.keys) == 2 and lock_one.keys[1] != lock_one.keys[0]
    assert one.render(received, Deadline(60),  # type: ignore[arg-type]
                      settings=settings).result.cache_hit


def test_a_path_render_holds_the_lock_too(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "app").mkdir(parents=True)
    (root / "app/cm.yaml").write_text(CM)
    cmp, lock = _service(tmp_path, "a", tmp_path / "cache")
    serve = ServeService(cmp, roots=[root])
    first = serve.render(RenderRequest(path="app"), Deadline(60))
    second = serve.render(RenderRequest(path=str(root / "app")), Deadline(60))
    assert not first.cache_hit and second.cache_hit
    assert len(lock.keys) == 2 and lock.keys[0] == lock.keys[1]
    assert first.body().startswith(b'{"objects":[{')
