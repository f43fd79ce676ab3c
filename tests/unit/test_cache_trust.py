"""Cache trust: an entry is served only for the key it was written for, and, with the operator's
HMAC key, only when it carries a valid MAC under that key.

Forged entries are built here from the documented format (docs/architecture.md, "Cache
entries") with hashlib, hmac and zlib, not with kiln's codec: the test is the attacker.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import shutil
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln import App, Engine
from kiln.core.cache import codec
from kiln.core.errors import ConfigError

KEY_A = "operator-key-0123456789abcdef"
KEY_B = "another-operator-key-fedcba987"


def make_app(parent: Path, name: str) -> Path:
    """A directory app whose only object is a ConfigMap named ``name``."""
    path = parent / name
    path.mkdir(parents=True)
    (path / "cm.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  app: {name}\n")
    return path


def entry_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / "objects" / key[:2] / key[2:]


def engine(cache_dir: Path, **env: str) -> Engine:
    return Engine(cache_dir=cache_dir, env=env, entry_points=False)


def names(engine_: Engine, app: Path) -> tuple[bool, list[str]]:
    result = engine_.render(App(path=app))
    return result.cache_hit, [o["metadata"]["name"] for o in result.objects]


def forge(key: str, payload: bytes, mac_key: bytes | None = None) -> bytes:
    """An entry for ``key`` written the way the docs describe the format."""
    body = zlib.compress(payload)
    sealed = key.encode() + b"\n" + body
    if mac_key is None:
        seal = b"sha256=" + hashlib.sha256(sealed).hexdigest().encode()
    else:
        seal = b"hmac-sha256=" + hmac.new(mac_key, sealed, "sha256").hexdigest().encode()
    return b"kiln-cache-3 " + key.encode() + b" " + seal + b"\n" + body


def payload_of(blob: bytes) -> bytes:
    return zlib.decompress(blob.split(b"\n", 1)[1])


def two_apps(tmp_path: Path, eng: Engine) -> tuple[Path, str, Path, str]:
    shop, blog = make_app(tmp_path, "shop"), make_app(tmp_path, "blog")
    shop_key, blog_key = eng.render(App(path=shop)).key, eng.render(App(path=blog)).key
    assert shop_key and blog_key and shop_key != blog_key
    return shop, shop_key, blog, blog_key


def test_entry_copied_under_another_key_is_a_logged_miss(
        tmp_path: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    eng = engine(cache_dir)
    _, shop_key, blog, blog_key = two_apps(tmp_path, eng)
    shutil.copyfile(entry_path(cache_dir, shop_key), entry_path(cache_dir, blog_key))
    with caplog.at_level(logging.WARNING, logger="kiln.cache"):
        hit, objects = names(eng, blog)
    assert (hit, objects) == (False, ["blog"])  # rendered fresh: its own object, not shop's
    assert shop_key[:12] in caplog.text and blog_key[:12] in caplog.text
    assert names(eng, blog) == (True, ["blog"])  # the fresh render replaced the misfiled entry


def test_without_hmac_a_rewritten_header_is_served(tmp_path: Path, cache_dir: Path) -> None:
    """The limit HMAC exists for: whoever can write the cache can forge a plain entry."""
    eng = engine(cache_dir)
    _, shop_key, blog, blog_key = two_apps(tmp_path, eng)
    stolen = payload_of(entry_path(cache_dir, shop_key).read_bytes())
    entry_path(cache_dir, blog_key).write_bytes(forge(blog_key, stolen))
    assert names(eng, blog) == (True, ["shop"])


def test_hmac_rejects_forged_unauthenticated_and_foreign_entries(
        tmp_path: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    eng = engine(cache_dir, KILN_CACHE_HMAC_KEY=KEY_A)
    _, shop_key, blog, blog_key = two_apps(tmp_path, eng)
    assert names(eng, blog) == (True, ["blog"])  # with the right key: a hit
    stolen = payload_of(entry_path(cache_dir, shop_key).read_bytes())
    forged = {
        "plain sha256 (no MAC)": forge(blog_key, stolen),
        "another operator key": forge(blog_key, stolen, KEY_B.encode()),
        "MAC over another cache key": forge(shop_key, stolen, KEY_A.encode()).replace(
            shop_key.encode(), blog_key.encode(), 1),
    }
    good = forge(blog_key, stolen, KEY_A.encode())
    tampered = bytearray(good)
    tampered[-5] ^= 0x01
    forged["tampered body"] = bytes(tampered)
    for what, blob in forged.items():
        entry_path(cache_dir, blog_key).write_bytes(blob)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="kiln.cache"):
            assert names(eng, blog) == (False, ["blog"]), what
        assert blog_key[:12] in caplog.text, what
    # an attacker holding the operator key is the one case it cannot stop
    entry_path(cache_dir, blog_key).write_bytes(good)
    assert names(eng, blog) == (True, ["shop"])


def test_entries_written_without_the_key_are_misses_with_it_and_back(
        tmp_path: Path, cache_dir: Path) -> None:
    app = make_app(tmp_path, "web")
    plain, keyed = engine(cache_dir), engine(cache_dir, KILN_CACHE_HMAC_KEY=KEY_A)
    other = engine(cache_dir, KILN_CACHE_HMAC_KEY=KEY_B)
    assert names(plain, app) == (False, ["web"])
    assert names(plain, app) == (True, ["web"])
    assert names(keyed, app) == (False, ["web"])
    assert names(keyed, app) == (True, ["web"])
    assert names(other, app) == (False, ["web"])
    assert names(plain, app) == (False, ["web"])


def test_key_file_and_variable_are_the_same_key(tmp_path: Path, cache_dir: Path) -> None:
    key_file = tmp_path / "hmac-key"
    key_file.write_text(KEY_A + "\n")
    app = make_app(tmp_path, "web")
    assert names(engine(cache_dir, KILN_CACHE_HMAC_KEY=KEY_A), app) == (False, ["web"])
    assert names(engine(cache_dir, KILN_CACHE_HMAC_KEY_FILE=str(key_file)), app) == (
        True, ["web"])


def test_app_environment_cannot_choose_the_key(tmp_path: Path, cache_dir: Path) -> None:
    """``ARGOCD_ENV_KILN_CACHE_HMAC_KEY`` (what an Application may set) is not the key."""
    app = make_app(tmp_path, "web")
    assert names(engine(cache_dir, ARGOCD_ENV_KILN_CACHE_HMAC_KEY=KEY_A), app)[0] is False
    assert names(engine(cache_dir), app) == (True, ["web"])  # it wrote a plain entry
    assert names(engine(cache_dir, KILN_CACHE_HMAC_KEY=KEY_A), app)[0] is False


@pytest.mark.parametrize(("env", "needle"), [
    ({"KILN_CACHE_HMAC_KEY": "tiny-key"}, "KILN_CACHE_HMAC_KEY: the cache HMAC key is shorter "
                                          "than 16 bytes"),
    ({"KILN_CACHE_HMAC_KEY": KEY_A, "KILN_CACHE_HMAC_KEY_FILE": "/x"}, "only one of"),
    ({"KILN_CACHE_HMAC_KEY_FILE": "/nonexistent/kiln-hmac"}, "KILN_CACHE_HMAC_KEY_FILE"),
])
def test_bad_key_settings_are_config_errors(cache_dir: Path, env: dict[str, str],
                                            needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Engine(cache_dir=cache_dir, env=env, entry_points=False)
    assert needle in caught.value.one_line()
    assert "tiny-key" not in caught.value.one_line() and KEY_A not in caught.value.one_line()


def test_hmac_key_is_redacted(cache_dir: Path) -> None:
    eng = engine(cache_dir, KILN_CACHE_HMAC_KEY=KEY_A)
    assert KEY_A not in eng.redactor.redact(f"debug: key is {KEY_A}")


def test_entry_of_an_older_format_is_a_quiet_miss(tmp_path: Path, cache_dir: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    eng = engine(cache_dir)
    app = make_app(tmp_path, "web")
    key = eng.render(App(path=app)).key
    assert key
    path = entry_path(cache_dir, key)
    body = zlib.compress(payload_of(path.read_bytes()))
    path.write_bytes(b"kiln-cache-2 " + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
    with caplog.at_level(logging.WARNING, logger="kiln.cache"):
        assert names(eng, app) == (False, ["web"])
    assert caplog.text == ""
    assert names(eng, app) == (True, ["web"])


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=300), mac=st.sampled_from([None, KEY_A.encode()]),
       data=st.data())
def test_codec_round_trip_and_any_flipped_byte_is_rejected(
        payload: bytes, mac: bytes | None, data: st.DataObject) -> None:
    key = hashlib.sha256(payload).hexdigest()
    blob = codec.encode(key, payload, mac)
    assert codec.decode(key, blob, mac) == payload
    assert blob == forge(key, payload, mac)  # the format is the documented one
    index = data.draw(st.integers(0, len(blob) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(blob)
    flipped[index] ^= 1 << bit
    with pytest.raises(codec.Rejected):
        codec.decode(key, bytes(flipped), mac)
    with pytest.raises(codec.Rejected):
        codec.decode(hashlib.sha256(b"other" + payload).hexdigest(), blob, mac)


def test_entries_are_private_to_kiln_s_user(tmp_path: Path, cache_dir: Path) -> None:
    eng = engine(cache_dir)
    key = eng.render(App(path=make_app(tmp_path, "web"))).key
    assert key
    path = entry_path(cache_dir, key)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert (cache_dir / "objects").stat().st_mode & 0o777 == 0o700
