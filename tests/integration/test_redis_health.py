"""The Redis store's health and outage handling, and the verification of what Redis returns,
against a real redis-server."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import pytest
import redis

from kiln import App, Engine
from kiln.core.cache import codec
from kiln.core.cache.redis import PREFIX, RedisStore
from tests.servers import free_port, redis_server

pytestmark = pytest.mark.integration


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    (path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: real\n")
    return path


def test_health_reports_up_without_the_password(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        admin = redis.Redis.from_url(url)
        admin.execute_command("ACL", "SETUSER", "kiln", "on", ">s3cret-pass-word", "~kiln:*",
                              "+@all")
        authed = url.replace("redis://", "redis://kiln:s3cret-pass-word@")
        health = RedisStore(authed).health()
        port = url.rsplit(":", 1)[1].split("/")[0]
        assert health == {"ok": True, "location": f"redis://127.0.0.1:{port}/0",
                          "error": None, "errors": 0, "outages": 0}
        wrong = RedisStore(url.replace("redis://", "redis://kiln:wrong-pass-word@")).health()
        assert wrong["ok"] is False and wrong["error"]
        assert "wrong-pass-word" not in repr(wrong)


def test_health_follows_an_outage_and_the_recovery(tmp_path: Path, app_dir: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    engine = Engine(cache_dir=tmp_path / "local", cache_url=url, entry_points=False)
    store = engine.store
    assert isinstance(store, RedisStore)
    store.status.retry = 0.0  # try Redis on every call (a server waits a second)
    with caplog.at_level(logging.WARNING, logger="kiln.cache"):
        for _ in range(3):  # down: every render succeeds, uncached
            result = engine.render(App(path=app_dir))
            assert result.objects[0]["metadata"]["name"] == "real" and not result.cache_hit
        health = store.health()
        assert health["ok"] is False and health["error"] == "ConnectionError"
        assert health["outages"] == 1 and health["errors"] >= 6
        # the same outage is logged once, not per request
        down = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(down) == 1
        binary = "/usr/bin/redis-server"
        import subprocess

        proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save",
                                 "", "--appendonly", "no", "--dir", str(tmp_path)],
                                stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not store.health()["ok"]:
                assert time.monotonic() < deadline, "Redis did not come back"
                time.sleep(0.1)
            assert any("answers again" in r.getMessage() for r in caplog.records)
            assert not engine.render(App(path=app_dir)).cache_hit
            assert engine.render(App(path=app_dir)).cache_hit
        finally:
            proc.terminate()
            proc.wait(10)


def test_after_a_failure_redis_is_not_tried_for_a_while(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        store = RedisStore(url)
        store.put("a" * 64, b"payload")
        assert store.get("a" * 64) == b"payload"
        pid = int(redis.Redis.from_url(url).info("server")["process_id"])
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        assert store.get("a" * 64) is None  # fails: an outage starts
        errors = store.status.errors
        started = time.monotonic()
        for _ in range(100):
            assert store.get("a" * 64) is None
            store.put("b" * 64, b"x")
        assert time.monotonic() - started < 0.5
        assert store.status.errors == errors  # not even tried


def test_forged_and_foreign_values_in_redis_are_misses(tmp_path: Path, app_dir: Path) -> None:
    with redis_server(tmp_path) as url:
        engine = Engine(cache_dir=tmp_path / "local", cache_url=url, entry_points=False)
        key = str(engine.render(App(path=app_dir)).key)
        client = redis.Redis.from_url(url)
        good = client.get(PREFIX + key)
        assert good is not None
        # 1. garbage under the key: a miss, and removed
        client.set(PREFIX + key, b"not a kiln entry at all")
        again = engine.render(App(path=app_dir))
        assert not again.cache_hit and again.objects[0]["metadata"]["name"] == "real"
        # 2. a well-formed entry written for another key, copied under this one: a miss
        other = codec.encode("f" * 64, codec.decode(key, good).replace(b"real", b"evil"))
        client.set(PREFIX + key, other)
        served = engine.render(App(path=app_dir))
        assert not served.cache_hit and served.objects[0]["metadata"]["name"] == "real"
        # 3. this key's header with a flipped body byte: a miss
        blob = bytearray(good)
        blob[-3] ^= 0x55
        client.set(PREFIX + key, bytes(blob))
        served = engine.render(App(path=app_dir))
        assert not served.cache_hit and served.objects[0]["metadata"]["name"] == "real"
        assert engine.render(App(path=app_dir)).cache_hit  # re-stored after the miss


def test_an_hmac_replica_refuses_a_forged_entry(tmp_path: Path, app_dir: Path) -> None:
    with redis_server(tmp_path) as url:
        env = {"KILN_CACHE_HMAC_KEY": "operator-key-0123456789"}
        engine = Engine(cache_dir=tmp_path / "a", cache_url=url, env=env, entry_points=False)
        key = str(engine.render(App(path=app_dir)).key)
        client = redis.Redis.from_url(url)
        payload = codec.decode(key, client.get(PREFIX + key) or b"",
                               b"operator-key-0123456789")
        # an attacker with write access but no key seals a forged payload with sha256
        client.set(PREFIX + key, codec.encode(key, payload.replace(b"real", b"evil")))
        other = Engine(cache_dir=tmp_path / "b", cache_url=url, env=env, entry_points=False)
        served = other.render(App(path=app_dir))
        assert not served.cache_hit and served.objects[0]["metadata"]["name"] == "real"


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://kiln:pa55word-xyz@cache.example:6380/3", "redis://cache.example:6380/3"),
    ("rediss://:pa55word-xyz@cache.example/0", "rediss://cache.example:6379/0"),
    ("unix://kiln:pa55word-xyz@/run/redis.sock?db=2", "unix:///run/redis.sock"),
])
def test_the_location_never_carries_credentials(url: str, shown: str) -> None:
    store = RedisStore(url, timeout=0.2)
    assert store.location() == shown
    health = store.health()  # nothing listens: a failure, still without the password
    assert health["ok"] is False and health["location"] == shown
    assert "pa55word" not in repr(health)
