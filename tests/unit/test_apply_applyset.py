"""ApplySet (KEP-3659) ids, labels and annotations, and kiln's inventory encoding."""

from __future__ import annotations

import base64
import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.apply.applyset import (
    GROUP_KINDS_ANNOTATION,
    ID_LABEL,
    INVENTORY_KEY,
    NAMESPACES_ANNOTATION,
    PART_OF_LABEL,
    TOOLING_ANNOTATION,
    ApplySet,
    Member,
    applyset_id,
    decode_inventory,
    default_name,
    encode_inventory,
)
from kiln.core.errors import ApplyError

# The value kubectl's own tests (pkg/cmd/apply/apply_test.go) expect for the parent Secret
# "my-set" in namespace "test" — the KEP-3659 example.
KUBECTL_EXAMPLE = "applyset-0eFHV8ySqp7XoShsGvyWFQD3s96yqwHmzc4e0HR1dsY-v1"


def test_id_matches_kubectl_published_example() -> None:
    assert applyset_id("my-set", "test", "Secret", "") == KUBECTL_EXAMPLE
    assert ApplySet("my-set", "test").id == KUBECTL_EXAMPLE


def test_id_is_the_keps_formula() -> None:
    digest = hashlib.sha256(b"cfg.prod.ConfigMap.").digest()
    want = "applyset-" + base64.urlsafe_b64encode(digest).decode().rstrip("=") + "-v1"
    assert ApplySet("cfg", "prod", "ConfigMap").id == want
    assert "=" not in want and "+" not in want and "/" not in want


def test_parent_carries_the_kep_labels_and_annotations() -> None:
    aset = ApplySet("my-set", "test", tooling="kiln/9.9.9")
    members = [Member("apps/v1", "Deployment", "test", "web", "u1"),
               Member("v1", "Service", "other", "web", "u2"),
               Member("rbac.authorization.k8s.io/v1", "ClusterRole", "", "r", "u3"),
               Member("v1", "ConfigMap", "b-ns", "c", "u4")]
    parent = aset.parent(members)
    meta = parent["metadata"]
    assert parent["kind"] == "Secret" and meta["namespace"] == "test"
    assert meta["labels"] == {ID_LABEL: KUBECTL_EXAMPLE}
    assert meta["annotations"][TOOLING_ANNOTATION] == "kiln/9.9.9"
    assert meta["annotations"][GROUP_KINDS_ANNOTATION] == \
        "ClusterRole.rbac.authorization.k8s.io,ConfigMap,Deployment.apps,Service"
    assert meta["annotations"][NAMESPACES_ANNOTATION] == "b-ns,other"
    text = base64.b64decode(parent["data"][INVENTORY_KEY]).decode()
    assert sorted(decode_inventory(text, "x")) == sorted(members)


def test_default_tooling_is_kiln_and_its_version() -> None:
    from kiln import __version__

    assert ApplySet("a", "b").tooling == f"kiln/{__version__}"


def test_members_are_labelled_and_input_untouched() -> None:
    aset = ApplySet("s", "n")
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c",
                                                                "labels": {"a": "1"}}}
    labelled = aset.label(obj)
    assert labelled["metadata"]["labels"] == {"a": "1", PART_OF_LABEL: aset.id}
    assert obj["metadata"]["labels"] == {"a": "1"}


def test_an_object_of_another_set_is_refused() -> None:
    aset = ApplySet("s", "n")
    with pytest.raises(ApplyError, match="another ApplySet"):
        aset.label({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c", "labels": {PART_OF_LABEL: "applyset-x-v1"}}})


def test_another_tools_parent_is_refused() -> None:
    aset = ApplySet("s", "n")
    live = {"metadata": {"labels": {ID_LABEL: aset.id},
                         "annotations": {TOOLING_ANNOTATION: "kubectl/v1.33.0"}}}
    with pytest.raises(ApplyError, match="managed by 'kubectl'"):
        aset.check_parent(live)
    aset.check_parent({"metadata": {"labels": {ID_LABEL: aset.id},
                                    "annotations": {TOOLING_ANNOTATION: "kiln/0.0.1"}}})
    with pytest.raises(ApplyError, match="label is not"):
        aset.check_parent({"metadata": {"labels": {ID_LABEL: "applyset-x-v1"},
                                        "annotations": {TOOLING_ANNOTATION: "kiln/1"}}})


def test_configmap_parent_keeps_plain_text() -> None:
    aset = ApplySet("s", "n", "ConfigMap")
    parent = aset.parent([Member("v1", "Secret", "n", "x", "u")])
    assert "type" not in parent
    assert aset.inventory(parent) == [Member("v1", "Secret", "n", "x", "u")]


@pytest.mark.parametrize("name", ["", "UPPER", "-x", "x_y", "a" * 254])
def test_bad_parent_names(name: str) -> None:
    with pytest.raises(ApplyError):
        ApplySet(name, "n")


def test_default_name_is_a_valid_name() -> None:
    assert default_name("Guest Book") == "kiln-guest-book"
    ApplySet(default_name("__"), "n")


@pytest.mark.parametrize("text", ["", "{", "[]", '{"format": 2, "members": []}',
                                  '{"format": 1, "members": [{"kind": "A"}]}',
                                  '{"format": 1, "members": [{"apiVersion": "v1", "kind": '
                                  '"A", "namespace": "", "name": "", "uid": ""}]}'])
def test_malformed_inventory_is_one_error(text: str) -> None:
    with pytest.raises(ApplyError, match="inventory"):
        decode_inventory(text, "Secret/n/s")


_word = st.text("abcxyz-.", min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.builds(Member, st.sampled_from(["v1", "apps/v1", "x.io/v2"]), _word,
                          st.text("abc", max_size=3), _word, st.text("0123", max_size=4)),
                max_size=15))
def test_inventory_round_trips(members: list[Member]) -> None:
    unique = {m.key: m for m in sorted(members)}
    decoded = decode_inventory(encode_inventory(members), "x")
    assert sorted(decoded) == sorted(unique.values())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_inventory_decoder_never_crashes(text: str) -> None:
    with contextlib.suppress(ApplyError):
        decode_inventory(text, "x")
