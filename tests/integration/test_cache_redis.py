"""The Redis cache store against a real redis-server (Debian's package, started per module)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln import App, Engine
from kiln.core.cache.redis import PREFIX
from tests.helpers import run_kiln
from tests.servers import free_port, redis_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    (path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n")
    return path


def test_two_replicas_share_renders(redis_url: str, app_dir: Path, tmp_path: Path) -> None:
    first = Engine(cache_dir=tmp_path / "replica-1", cache_url=redis_url, entry_points=False)
    second = Engine(cache_dir=tmp_path / "replica-2", cache_url=redis_url, entry_points=False)
    first.store.clear()
    rendered = first.render(App(path=app_dir))
    shared = second.render(App(path=app_dir))
    assert not rendered.cache_hit and shared.cache_hit
    assert shared.objects == rendered.objects
    assert not (tmp_path / "replica-1" / "objects").exists()  # nothing went to the filesystem


def test_corrupted_entry_is_a_miss(redis_url: str, app_dir: Path, tmp_path: Path) -> None:
    import redis

    engine = Engine(cache_dir=tmp_path, cache_url=redis_url, entry_points=False)
    key = engine.render(App(path=app_dir)).key
    client = redis.Redis.from_url(redis_url)
    blob = bytearray(client.get(PREFIX + str(key)) or b"")
    blob[-2] ^= 0xFF
    client.set(PREFIX + str(key), bytes(blob))
    assert not engine.render(App(path=app_dir)).cache_hit
    assert engine.render(App(path=app_dir)).cache_hit


def test_unreachable_redis_renders_without_cache(app_dir: Path, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    engine = Engine(cache_dir=tmp_path, cache_url=url, entry_points=False)
    with caplog.at_level(logging.WARNING, logger="kiln.cache"):
        result = engine.render(App(path=app_dir))
    assert result.objects[0]["metadata"]["name"] == "shared"
    assert "unreachable" in caplog.text


def test_cli_uses_kiln_cache_url(redis_url: str, app_dir: Path, tmp_path: Path) -> None:
    env = {"KILN_CACHE_URL": redis_url}
    run_kiln("cache", "clear", env=env)
    first = run_kiln("render", str(app_dir), "--debug", "--cache-dir", str(tmp_path), env=env)
    second = run_kiln("render", str(app_dir), "--debug", "--cache-dir", str(tmp_path), env=env)
    assert first.returncode == 0 and second.returncode == 0
    assert "rendered via directory" in first.stderr
    assert "cache hit via directory" in second.stderr
    assert second.stdout == first.stdout
    assert "entries: 1" in run_kiln("cache", "stats", env=env).stdout
