"""The content-addressed cache: what is a hit, what is a miss, and corrupted entries."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from kiln import App, Engine
from kiln.core.cache.fs import FsStore


def make_app(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")
    (root / "b.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: b\n")
    return root


@pytest.fixture
def engine(cache_dir: Path) -> Engine:
    return Engine(cache_dir=cache_dir, entry_points=False)


def test_second_render_is_a_hit_with_same_objects(tmp_path: Path, engine: Engine) -> None:
    app = App(path=make_app(tmp_path / "app"))
    first = engine.render(app)
    second = engine.render(app)
    assert not first.cache_hit and second.cache_hit
    assert first.key == second.key and len(first.key or "") == 64
    assert second.objects == first.objects
    assert second.to_yaml() == first.to_yaml()


def test_touching_a_file_is_still_a_hit(tmp_path: Path, engine: Engine) -> None:
    path = make_app(tmp_path / "app")
    key = engine.render(App(path=path)).key
    os.utime(path / "a.yaml", (1, 1))
    result = engine.render(App(path=path))
    assert result.cache_hit and result.key == key


def test_one_changed_byte_is_a_miss(tmp_path: Path, engine: Engine) -> None:
    path = make_app(tmp_path / "app")
    engine.render(App(path=path))
    text = (path / "a.yaml").read_text()
    (path / "a.yaml").write_text(text.replace("name: a", "name: c"))
    result = engine.render(App(path=path))
    assert not result.cache_hit
    assert result.objects[0]["metadata"]["name"] == "c"


def test_changed_option_is_a_miss(tmp_path: Path, engine: Engine) -> None:
    path = make_app(tmp_path / "app")
    engine.render(App(path=path, namespace="one"))
    assert not engine.render(App(path=path, namespace="two")).cache_hit
    assert engine.render(App(path=path, namespace="one")).cache_hit


def test_same_app_copied_elsewhere_is_a_hit(tmp_path: Path, engine: Engine) -> None:
    original = make_app(tmp_path / "one" / "app")
    first = engine.render(App(path=original))
    copy = tmp_path / "two" / "app"
    shutil.copytree(original, copy)
    second = engine.render(App(path=copy))
    assert second.cache_hit and second.key == first.key


def test_change_to_a_non_input_is_still_a_hit(tmp_path: Path, engine: Engine) -> None:
    path = make_app(tmp_path / "app")
    (path / "README.md").write_text("one")
    (path / "sub").mkdir()
    (path / "sub" / "x.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    engine.render(App(path=path))
    (path / "README.md").write_text("two")
    (path / "sub" / "x.yaml").write_text("apiVersion: v1\nkind: Secret\n")  # not recursed
    assert engine.render(App(path=path)).cache_hit


def test_corrupted_entry_is_detected_removed_and_re_rendered(
    tmp_path: Path, engine: Engine, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = make_app(tmp_path / "app")
    key = engine.render(App(path=path)).key
    assert key is not None
    entry = cache_dir / "objects" / key[:2] / key[2:]
    blob = bytearray(entry.read_bytes())
    blob[-3] ^= 0xFF
    entry.write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING, logger="kiln.cache"):
        result = engine.render(App(path=path))
    assert not result.cache_hit
    assert "corrupted" in caplog.text
    assert result.objects[0]["metadata"]["name"] == "a"
    assert engine.render(App(path=path)).cache_hit  # rewritten


def test_no_cache_never_reads_or_writes(tmp_path: Path, cache_dir: Path) -> None:
    path = make_app(tmp_path / "app")
    engine = Engine(cache_dir=cache_dir, use_cache=False, entry_points=False)
    assert not engine.render(App(path=path)).cache_hit
    assert not engine.render(App(path=path)).cache_hit
    assert engine.store.stats().entries == 0


def test_store_evicts_least_recently_used(tmp_path: Path) -> None:
    store = FsStore(tmp_path, max_bytes=0)
    payload = os.urandom(3000)
    store.max_bytes = 10_000
    keys = [f"{i:02d}" + "ab" * 31 for i in range(3)]
    for i, key in enumerate(keys):
        store.put(key, payload)
        os.utime(store._path(key), (1000 + i, 1000 + i))
    assert store.get(keys[0]) is not None  # refreshes its "last used" time
    store.put("99" + "cd" * 31, payload)
    assert store.get(keys[1]) is None  # the least recently used went first
    assert store.get(keys[0]) is not None
    assert store.stats().bytes <= 10_000


def test_result_objects_can_be_mutated_without_touching_the_cache(
    tmp_path: Path, engine: Engine
) -> None:
    path = make_app(tmp_path / "app")
    first = engine.render(App(path=path))
    first.objects[0]["metadata"]["name"] = "mutated"
    again = engine.render(App(path=path))
    assert again.objects[0]["metadata"]["name"] == "a"
    assert "mutated" not in again.to_yaml()


def test_key_recipe_is_the_key_render_uses(tmp_path: Path, engine: Engine) -> None:
    import hashlib

    import kiln

    path = make_app(tmp_path / "app")
    recipe = engine.key_recipe(App(path=path))
    result = engine.render(App(path=path))
    assert result.recipe is not None
    assert recipe.key == result.key == result.recipe.key == recipe.compute_key()
    assert [(f.rel, f.sha256) for f in recipe.inputs] == [
        (name, hashlib.sha256((path / name).read_bytes()).hexdigest())
        for name in ("a.yaml", "b.yaml")]
    assert (recipe.renderer, recipe.kiln) == ("directory", kiln.__version__)
    assert dict(recipe.plugin) == {"name": "directory", "distribution": "kiln",
                                   "version": kiln.__version__}
    assert recipe.location is None and recipe.tools == ()


def test_uncacheable_recipe_has_no_key(tmp_path: Path, cache_dir: Path) -> None:
    path = make_app(tmp_path / "app")
    engine = Engine(cache_dir=cache_dir, use_cache=False, entry_points=False)
    result = engine.render(App(path=path))
    assert result.key is None and result.recipe is not None and result.recipe.key is None
    assert engine.key_recipe(App(path=path)).key is not None  # the recipe itself is computed
