"""Object-level diffs (kiln.diff.objects): pairing, states, headers; each unified diff checked
by the real ``patch`` tool, which must turn the masked before text into the masked after text."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kiln.core.errors import InputError
from kiln.diff.mask import MaskPolicy
from kiln.diff.objects import diff_objects, diff_pair, ref_of
from tests.helpers import tool


def cm(name: str, data: dict[str, str], ns: str | None = "apps",
       api: str = "v1") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if ns:
        meta["namespace"] = ns
    return {"apiVersion": api, "kind": "ConfigMap", "metadata": meta, "data": data}


def test_states_and_order() -> None:
    before = [cm("same", {"a": "1"}), cm("changed", {"a": "1"}), cm("gone", {"a": "1"})]
    after = [cm("new", {"a": "1"}), cm("changed", {"a": "2"}), cm("same", {"a": "1"})]
    result = diff_objects(before, after, policy=MaskPolicy())
    assert [(o.ref, o.state) for o in result.objects] == [
        ("ConfigMap/apps/changed", "changed"), ("ConfigMap/apps/gone", "removed"),
        ("ConfigMap/apps/new", "added"), ("ConfigMap/apps/same", "unchanged")]
    assert result.changed
    assert result.counts() == {"added": 1, "removed": 1, "changed": 1, "unchanged": 1}
    assert result.objects[3].diff == ""
    assert not diff_objects(before, before, policy=MaskPolicy()).changed


def test_headers_name_both_sides_like_kubectl_diff() -> None:
    result = diff_objects([cm("c", {"a": "1"})], [cm("c", {"a": "2"})], policy=MaskPolicy())
    lines = result.objects[0].diff.splitlines()
    assert lines[:2] == ["--- live/ConfigMap/apps/c", "+++ desired/ConfigMap/apps/c"]
    assert "-  a: '1'" in lines and "+  a: '2'" in lines


def test_pairs_across_api_versions_and_ignores_field_order() -> None:
    old = {"apiVersion": "apps/v1beta1", "kind": "Deployment",
           "metadata": {"namespace": "a", "name": "web"}, "spec": {"b": 1, "a": 2}}
    new = {"kind": "Deployment", "apiVersion": "apps/v1",
           "metadata": {"name": "web", "namespace": "a"}, "spec": {"a": 2, "b": 1}}
    result = diff_objects([old], [new], policy=MaskPolicy())
    assert [(o.ref, o.state) for o in result.objects] == [("Deployment/a/web", "changed")]
    assert "-apiVersion: apps/v1beta1" in result.objects[0].diff
    assert "spec" not in "".join(line for line in result.objects[0].diff.splitlines()
                                 if line.startswith(("+", "-")) and not
                                 line.startswith(("+++", "---")))


def test_same_name_in_two_groups_are_two_objects() -> None:
    a = {"apiVersion": "one.example.com/v1", "kind": "Thing", "metadata": {"name": "x"}}
    b = {"apiVersion": "two.example.com/v1", "kind": "Thing", "metadata": {"name": "x"}}
    result = diff_objects([a], [b], policy=MaskPolicy())
    assert sorted(o.state for o in result.objects) == ["added", "removed"]


def test_two_objects_with_one_identity_are_an_error() -> None:
    with pytest.raises(InputError) as err:
        diff_objects([cm("c", {}), cm("c", {"a": "1"})], [], policy=MaskPolicy())
    assert "two objects named ConfigMap/apps/c" in err.value.one_line()


def test_ref_of_cluster_scoped_object() -> None:
    assert ref_of({"kind": "Namespace", "metadata": {"name": "apps"}}) == "Namespace/apps"


def _patched(tmp_path: Path, before: str, diff: str) -> str:
    (tmp_path / "before.yaml").write_text(before)
    (tmp_path / "change.diff").write_text(diff)
    proc = subprocess.run([tool("patch"), "-s", "-o", str(tmp_path / "after.yaml"),
                           str(tmp_path / "before.yaml"), str(tmp_path / "change.diff")],
                          capture_output=True, text=True, check=False, timeout=30)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return (tmp_path / "after.yaml").read_text()


def _masked_yaml(obj: dict[str, Any] | None) -> str:
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False) if obj else ""


@pytest.mark.parametrize("context", [0, 1, 3])
def test_the_diff_patches_the_masked_before_into_the_masked_after(tmp_path: Path,
                                                                  context: int) -> None:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    before = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {
        "a": "1", "b": "2", "c": "3", "d": "4"}}, "type": "Opaque",
        "data": {"k1": b64("v1"), "k2": b64("v2"), "k3": b64("v3")}}
    after = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {
        "a": "1", "b": "two", "c": "3", "e": "5"}}, "type": "Opaque",
        "data": {"k1": b64("v1"), "k2": b64("changed"), "k4": b64("v4")}}
    item = diff_pair("Secret/s", before, after, policy=MaskPolicy(), context=context)
    # The oracle: the masked texts a reader must see, written by the test from the states.
    masked_before = _masked_yaml({**before, "data": {
        "k1": "<masked, unchanged>", "k2": "<masked, changed (before)>",
        "k3": "<masked, removed>"}})
    masked_after = _masked_yaml({**after, "data": {
        "k1": "<masked, unchanged>", "k2": "<masked, changed (after)>",
        "k4": "<masked, added>"}})
    assert _patched(tmp_path, masked_before, item.diff) == masked_after
    created = diff_pair("Secret/s", None, after, policy=MaskPolicy(), context=context)
    assert created.state == "added"
    assert _patched(tmp_path, "", created.diff) == _masked_yaml(
        {**after, "data": {"k1": "<masked, added>", "k2": "<masked, added>",
                           "k4": "<masked, added>"}})
