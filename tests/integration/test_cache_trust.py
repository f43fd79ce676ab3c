"""Cache trust through a real redis-server: a value SET under another app's key is a miss, and
with the operator's HMAC key only entries sealed with it are served (also through the CLI)."""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiln import App, Engine
from kiln.core.cache.redis import PREFIX
from tests.helpers import run_kiln
from tests.servers import redis_server

pytestmark = pytest.mark.integration

HMAC_KEY = "tenant-a-operator-key-5f0c9e1d"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def client(redis_url: str) -> Iterator[Any]:
    import redis

    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.close()


def make_app(parent: Path, name: str) -> Path:
    path = parent / name
    path.mkdir()
    (path / "cm.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n")
    return path


def names(engine: Engine, app: Path) -> tuple[bool, list[str]]:
    result = engine.render(App(path=app))
    return result.cache_hit, [o["metadata"]["name"] for o in result.objects]


def engine(tmp_path: Path, redis_url: str, **env: str) -> Engine:
    return Engine(cache_dir=tmp_path / "state", cache_url=redis_url, env=env,
                  entry_points=False)


def test_value_set_under_another_key_is_a_miss(client: Any, redis_url: str, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    eng = engine(tmp_path, redis_url)
    shop, blog = make_app(tmp_path, "shop"), make_app(tmp_path, "blog")
    shop_key, blog_key = eng.render(App(path=shop)).key, eng.render(App(path=blog)).key
    assert shop_key and blog_key
    client.set(PREFIX + blog_key, client.get(PREFIX + shop_key))
    with caplog.at_level(logging.WARNING, logger="kiln.cache"):
        assert names(eng, blog) == (False, ["blog"])
    assert shop_key[:12] in caplog.text and blog_key[:12] in caplog.text
    assert names(eng, blog) == (True, ["blog"])
    assert names(eng, shop) == (True, ["shop"])


def test_hmac_through_redis(client: Any, redis_url: str, tmp_path: Path) -> None:
    keyed = engine(tmp_path, redis_url, KILN_CACHE_HMAC_KEY=HMAC_KEY)
    other_tenant = engine(tmp_path, redis_url, KILN_CACHE_HMAC_KEY="tenant-b-key-" + "0" * 16)
    app = make_app(tmp_path, "web")
    assert names(keyed, app) == (False, ["web"])
    assert names(keyed, app) == (True, ["web"])
    key = keyed.render(App(path=app)).key
    assert key
    stored = client.get(PREFIX + key)
    assert HMAC_KEY.encode() not in stored
    # another tenant's kiln, holding another key, does not serve tenant A's entry
    assert names(other_tenant, app) == (False, ["web"])
    # a forged plain entry (what anyone with write access to Redis can make) is a miss
    body = zlib.compress(b'{"objects":[{"apiVersion":"v1","kind":"ConfigMap","metadata":'
                         b'{"name":"forged"}}],"yaml":"forged","meta":{}}')
    seal = hashlib.sha256(key.encode() + b"\n" + body).hexdigest()
    forged = f"kiln-cache-3 {key} sha256={seal}\n".encode() + body
    client.set(PREFIX + key, forged)
    assert names(engine(tmp_path, redis_url), app) == (True, ["forged"])  # no key: served
    client.set(PREFIX + key, forged)
    assert names(keyed, app) == (False, ["web"])  # with the key: refused, rendered fresh


def test_cli_with_hmac_key_file(client: Any, redis_url: str, tmp_path: Path) -> None:
    key_file = tmp_path / "hmac.key"
    key_file.write_text(HMAC_KEY + "\n")
    app = make_app(tmp_path, "cli-app")
    env = {"KILN_CACHE_URL": redis_url, "KILN_CACHE_HMAC_KEY_FILE": str(key_file)}
    cache = str(tmp_path / "cli-state")
    first = run_kiln("render", str(app), "--debug", "--cache-dir", cache, env=env)
    second = run_kiln("render", str(app), "--debug", "--cache-dir", cache, env=env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    assert "rendered via directory" in first.stderr
    assert "cache hit via directory" in second.stderr
    assert second.stdout == first.stdout and "name: cli-app" in first.stdout
    other = run_kiln("render", str(app), "--debug", "--cache-dir", cache,
                     env={"KILN_CACHE_URL": redis_url})
    assert "rendered via directory" in other.stderr and "not served" in other.stderr
    bad = run_kiln("render", str(app), "--cache-dir", cache,
                   env={**env, "KILN_CACHE_HMAC_KEY_FILE": str(tmp_path / "missing")})
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("kiln: error: KILN_CACHE_HMAC_KEY_FILE=")


# The ACL docs/cache.md tells operators to set, word for word.
DOCUMENTED_ACL = ("on >kiln-redis-pw-0123 resetkeys ~kiln:m:* resetchannels -@all "
                  "+get +set +expire +del +strlen +scan +multi +exec")


def test_documented_redis_acl_is_enough(client: Any, redis_url: str, tmp_path: Path) -> None:
    import redis

    client.execute_command("ACL", "SETUSER", "kiln", *DOCUMENTED_ACL.split())
    client.set("argocd|app-details", b"argo cd's own entry")
    url = redis_url.replace("redis://", "redis://kiln:kiln-redis-pw-0123@")
    app = make_app(tmp_path, "acl-app")
    env = {"KILN_CACHE_URL": url}
    cache = str(tmp_path / "acl-state")
    runs = [run_kiln("render", str(app), "--debug", "--cache-dir", cache, env=env)
            for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert "cache hit via directory" in runs[1].stderr
    assert "unreachable" not in runs[0].stderr + runs[1].stderr
    stats = run_kiln("cache", "stats", env=env)
    assert stats.returncode == 0 and "entries: 1" in stats.stdout
    assert client.execute_command("ACL", "LOG") == []
    # and the kiln user can touch nothing else in that Redis
    confined = redis.Redis.from_url(url)
    with pytest.raises(redis.exceptions.NoPermissionError):
        confined.get("argocd|app-details")
    with pytest.raises(redis.exceptions.NoPermissionError):
        confined.set("argocd|app-details", b"forged")
    confined.close()
    client.execute_command("ACL", "DELUSER", "kiln")
