"""Property-based fuzzing of the many-apps inputs and outputs: any app path an Application may
name resolves inside the checkout or is a one-line ConfigError naming the Application; any
batch's combined YAML stream parses as the apps' objects one after another; any app path
lands under --output-dir."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from kiln.apps.model import AppSpec
from kiln.core.engine import RenderResult
from kiln.core.errors import ConfigError
from kiln.many.output import manifest_path, yaml_stream
from kiln.many.runner import AppOutcome, app_directory
from tests.fuzz.bounds import FUZZ

PARTS = st.sampled_from(["..", ".", "", "a", "b", "apps", "/", "//", "x y", "é", "-", "~",
                         "\\", "\x00", "\n", ":", "#"])
PATHS = st.lists(PARTS, max_size=8).map("/".join) | st.text(max_size=40)
ORIGIN = "apps.yaml: Application fuzz"


def spec(path: str, name: str = "fuzz") -> AppSpec:
    return AppSpec(name=name, path=path, app_settings={}, env={}, origin=ORIGIN)


@FUZZ
@given(path=PATHS)
def test_an_app_path_stays_inside_the_checkout_or_is_refused(tmp_path: Path, path: str
                                                             ) -> None:
    root = tmp_path / "repo"
    if not root.exists():
        (root / "a" / "b").mkdir(parents=True)
        (tmp_path / "outside").mkdir()
        (root / "a" / "up").symlink_to(tmp_path / "outside")
    try:
        found = app_directory(root, spec(path))
    except ConfigError as exc:
        line = exc.one_line()
        assert line.startswith(f"{ORIGIN}: ") and "\n" not in line
        return
    real = os.path.realpath(found)
    assert real == os.path.realpath(root) or real.startswith(os.path.realpath(root) + os.sep)


SCALARS = st.one_of(st.text(max_size=12), st.integers(-5, 10**6), st.booleans(), st.none(),
                    st.sampled_from(["y", "no", "12:30", "---", "# Source: x", "...", "~"]))
OBJECTS = st.fixed_dictionaries({
    "apiVersion": st.just("v1"), "kind": st.just("ConfigMap"),
    "metadata": st.fixed_dictionaries({"name": st.from_regex(r"[a-z]{1,8}", fullmatch=True)}),
    "data": st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), SCALARS, max_size=3),
})
APPS = st.lists(st.tuples(st.from_regex(r"apps/[a-z#: -]{1,10}", fullmatch=True),
                          st.lists(OBJECTS, max_size=3)), min_size=1, max_size=4)


@FUZZ
@given(APPS)
def test_the_combined_stream_is_every_apps_objects_in_order(apps: list[tuple[str, list[Any]]]
                                                            ) -> None:
    outcomes = [AppOutcome(AppSpec(name=p, path=p, app_settings={}, env={}, origin=p),
                           RenderResult(objs, False, None, "directory"), None, 0.0)
                for p, objs in apps]
    text = yaml_stream(outcomes)
    parsed = [d for d in yaml.safe_load_all(text) if d is not None]
    # each app's own stream read by the same parser (PyYAML reads "1:0" as 60, go-yaml as a
    # string: the combination is under test here, not kiln's YAML writer)
    alone = [d for o in outcomes for d in yaml.safe_load_all(o.result.to_yaml() if o.result
                                                               else "") if d is not None]
    assert parsed == alone
    assert len(parsed) == sum(len(objs) for _, objs in apps)
    comments = [line for line in text.splitlines() if line.startswith("# Source: ")]
    assert len(comments) == len(apps)


@FUZZ
@given(st.lists(st.sampled_from(["a", "b", "c.d", "x y", "é"]), max_size=5).map("/".join))
def test_every_app_path_lands_under_the_output_dir(path: str) -> None:
    out = Path("/out")
    target = manifest_path(out, spec(path or "."))
    assert target.name == "manifest.yaml"
    assert str(target.parent) == "/out" or str(target.parent).startswith("/out/")
