"""Masking (kiln.diff.mask): per-key states, one constant per state, no value, length or
equality side channel; annotations, inline secret values and API error text masked too.

The oracles are the values and states each test chose, and base64 from the standard library.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from kiln.core.errors import UsageError
from kiln.core.redact import Redactor
from kiln.diff.mask import (
    ADDED,
    AFTER,
    BEFORE,
    MASK,
    REMOVED,
    UNCHANGED,
    GroupKind,
    MaskPolicy,
    mask_api_error,
    mask_error_text,
    mask_kinds,
    mask_object,
    mask_pair,
)

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(data: dict[str, str] | None = None, string_data: dict[str, str] | None = None,
           **meta: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                           "metadata": {"name": "db", "namespace": "apps", **meta}}
    if data is not None:
        obj["data"] = {k: b64(v) for k, v in data.items()}
    if string_data is not None:
        obj["stringData"] = string_data
    return obj


def strings(value: Any) -> list[str]:
    """Every string (keys and values) anywhere in ``value``."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def test_each_key_gets_its_state_and_only_a_constant() -> None:
    before = secret({"kept": "same-value-1", "changed": "old-password", "gone": "bye-bye-1"})
    after = secret({"kept": "same-value-1", "changed": "new-password-longer",
                    "new": "fresh-value-9"})
    pair = mask_pair(before, after, MaskPolicy())
    assert pair.keys == {"kept": "unchanged", "changed": "changed", "gone": "removed",
                         "new": "added"}
    assert pair.before is not None and pair.after is not None
    assert pair.before["data"] == {"kept": UNCHANGED, "changed": BEFORE, "gone": REMOVED}
    assert pair.after["data"] == {"kept": UNCHANGED, "changed": AFTER, "new": ADDED}
    text = json.dumps([pair.before, pair.after])
    for value in ("same-value-1", "old-password", "new-password-longer", "bye-bye-1",
                  "fresh-value-9"):
        assert value not in text and b64(value) not in text
    # The inputs are untouched.
    assert before["data"]["changed"] == b64("old-password")


def test_string_data_keys_are_the_data_keys_they_become() -> None:
    before = secret({"password": "hunter22", "user": "admin"})
    after = secret({"user": "root"}, {"password": "hunter22", "token": "t0ken-value"})
    pair = mask_pair(before, after, MaskPolicy())
    assert pair.keys == {"password": "unchanged", "user": "changed", "token": "added"}
    assert pair.after is not None and "stringData" not in pair.after
    assert set(pair.after["data"]) == {"password", "user", "token"}


def test_string_data_wins_over_data_like_the_api_server() -> None:
    before = secret({"password": "same"})
    after = secret({"password": "other"}, {"password": "same"})
    assert mask_pair(before, after, MaskPolicy()).keys == {"password": "unchanged"}


def test_placeholders_do_not_depend_on_values_or_their_lengths() -> None:
    """Same states, different values (and lengths): identical masked output."""
    one = mask_pair(secret({"a": "x", "b": "yy", "c": "z"}),
                    secret({"a": "x", "b": "changed", "d": "n"}), MaskPolicy())
    two = mask_pair(secret({"a": "a-much-longer-value", "b": "1", "c": "3333333333"}),
                    secret({"a": "a-much-longer-value", "b": "22", "d": "new-and-long"}),
                    MaskPolicy())
    assert (one.before, one.after, one.keys) == (two.before, two.after, two.keys)


def test_equal_values_in_different_keys_look_like_different_ones() -> None:
    equal = mask_pair(secret({"a": "shared-value", "b": "shared-value"}),
                      secret({"a": "shared-value", "b": "shared-value"}), MaskPolicy())
    different = mask_pair(secret({"a": "first-value", "b": "second-value-xx"}),
                          secret({"a": "first-value", "b": "second-value-xx"}), MaskPolicy())
    assert (equal.before, equal.after) == (different.before, different.after)


def test_other_fields_of_a_secret_are_shown() -> None:
    before = secret({"a": "v1"}, labels={"team": "x"})
    after = secret({"a": "v1"}, labels={"team": "y"})
    after["type"] = "kubernetes.io/basic-auth"
    pair = mask_pair(before, after, MaskPolicy())
    assert pair.after is not None
    assert pair.after["type"] == "kubernetes.io/basic-auth"
    assert pair.after["metadata"]["labels"] == {"team": "y"}


def test_a_created_or_deleted_secret_is_masked_too() -> None:
    created = mask_pair(None, secret({"a": "brand-new-pw"}), MaskPolicy())
    assert created.before is None and created.after is not None
    assert created.after["data"] == {"a": ADDED} and created.keys == {"a": "added"}
    deleted = mask_pair(secret({"a": "old-pw-value"}), None, MaskPolicy())
    assert deleted.before is not None and deleted.before["data"] == {"a": REMOVED}


def test_invalid_base64_and_non_mapping_data_are_masked() -> None:
    before = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "data": {"bad": "%%not-base64%%"}}
    after = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
             "data": ["list", "of", "secret-things"]}
    pair = mask_pair(before, after, MaskPolicy())
    text = json.dumps([pair.before, pair.after])
    assert "not-base64" not in text and "secret-things" not in text
    assert pair.keys == {"bad": "removed", "(data)": "added"}


def test_copies_of_the_object_in_annotations_are_masked_on_every_kind() -> None:
    copy_text = json.dumps({"data": {"password": b64("hunter22")}})
    before = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "c", "annotations": {LAST_APPLIED: copy_text, "kapp.k14s.io/original": "{}",
                                     "note": "kept"}}}
    after = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "c", "annotations": {LAST_APPLIED: copy_text + " ", "note": "kept"}}}
    pair = mask_pair(before, after, MaskPolicy())
    assert pair.before is not None and pair.after is not None
    assert pair.before["metadata"]["annotations"] == {
        LAST_APPLIED: BEFORE, "kapp.k14s.io/original": REMOVED, "note": "kept"}
    assert pair.after["metadata"]["annotations"] == {LAST_APPLIED: AFTER, "note": "kept"}
    assert pair.keys is None  # a ConfigMap is not shown per key


def test_listed_kinds_are_masked_per_field() -> None:
    policy = MaskPolicy(kinds=mask_kinds(["ConfigMap"], {}))
    before = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
              "data": {"conf": "password=abc123"}, "binaryData": {"blob": b64("bin-value")}}
    after = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
             "data": {"conf": "password=xyz789"}, "binaryData": {"blob": b64("bin-value")}}
    pair = mask_pair(before, after, policy)
    assert pair.keys == {"conf": "changed", "binaryData/blob": "unchanged"}
    text = json.dumps([pair.before, pair.after])
    assert "abc123" not in text and "xyz789" not in text and b64("bin-value") not in text
    # The same kind in another group is not what the operator listed.
    other = {**before, "apiVersion": "example.com/v1"}
    assert mask_pair(other, other, policy).keys is None


def test_kind_secret_of_any_group_is_masked() -> None:
    odd = {"apiVersion": "example.com/v1", "kind": "Secret", "metadata": {"name": "s"},
           "data": {"k": "plain-text-secret"}}
    pair = mask_pair(odd, odd, MaskPolicy())
    assert pair.before is not None and pair.before["data"] == {"k": UNCHANGED}


def test_mask_kinds_from_flags_and_environment() -> None:
    kinds = mask_kinds(["SealedSecret.Bitnami.com"],
                       {"KILN_DIFF_MASK_KINDS": "ConfigMap, Thing.example.com"})
    assert kinds == {GroupKind("SealedSecret", "bitnami.com"), GroupKind("ConfigMap"),
                     GroupKind("Thing", "example.com")}
    with pytest.raises(UsageError) as err:
        mask_kinds(["not a kind"], {})
    assert err.value.one_line().startswith("--mask-kind: expects KIND[.group]")
    with pytest.raises(UsageError) as err:
        mask_kinds([], {"KILN_DIFF_MASK_KINDS": "Good,bad_kind!"})
    assert err.value.source == "KILN_DIFF_MASK_KINDS"


def test_group_kind_of_objects() -> None:
    assert GroupKind.of({"apiVersion": "apps/v1", "kind": "Deployment"}) == \
        GroupKind("Deployment", "apps")
    assert GroupKind.of({"apiVersion": "v1", "kind": "Secret"}) == GroupKind("Secret")
    assert str(GroupKind("SealedSecret", "bitnami.com")) == "SealedSecret.bitnami.com"


def test_values_resolved_in_this_run_are_masked_wherever_they_sit() -> None:
    redactor = Redactor()
    redactor.register("s3cr3t-from-vault")
    policy = MaskPolicy(redactor=redactor)

    def deployment(value: str) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "app", "image": "nginx:1",
                     "env": [{"name": "PW", "value": value}]}]}}}}

    pair = mask_pair(deployment("old-unregistered-one"), deployment("s3cr3t-from-vault"),
                     policy)
    assert pair.before is not None and pair.after is not None
    env_b = pair.before["spec"]["template"]["spec"]["containers"][0]["env"][0]
    env_a = pair.after["spec"]["template"]["spec"]["containers"][0]["env"][0]
    # Masked on both sides, the old (unregistered) value included.
    assert (env_b["value"], env_a["value"]) == (BEFORE, AFTER)
    assert pair.after["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
    created = mask_pair(None, deployment("prefix-s3cr3t-from-vault-suffix"), policy)
    assert created.after is not None
    assert "s3cr3t" not in json.dumps(created.after)


def test_fingerprints_are_appended_only_when_asked() -> None:
    def fake(value: bytes) -> str:
        return f"fp:{len(value) % 2}"  # any function: only its placement is tested here

    pair = mask_pair(secret({"a": "one"}), secret({"a": "two"}), MaskPolicy(fingerprint=fake))
    assert pair.fingerprints == {"a": {"before": "fp:1", "after": "fp:1"}}
    assert pair.before is not None and pair.before["data"]["a"] == f"{BEFORE} fp:1"
    assert mask_pair(secret({"a": "one"}), secret({"a": "two"}), MaskPolicy()).fingerprints \
        is None


def test_mask_object_masks_one_object_on_its_own() -> None:
    redactor = Redactor()
    redactor.register("inline-secret-value")
    obj = secret({"a": "dry-run-value-1"}, annotations={LAST_APPLIED: '{"x": 1}'})
    obj["metadata"]["labels"] = {"app": "inline-secret-value"}
    out = mask_object(obj, MaskPolicy(redactor=redactor))
    assert out["data"] == {"a": MASK}
    assert out["metadata"]["annotations"] == {LAST_APPLIED: MASK}
    assert out["metadata"]["labels"] == {"app": MASK}
    assert obj["data"]["a"] == b64("dry-run-value-1")


def test_error_text_echoing_values_is_masked() -> None:
    sent = [secret({"password": "hunter22-pw"}, {"token": "tok-value-42"})]
    text = ('Secret "db" is invalid: [data[password]: Invalid value: "hunter22-pw": bad, '
            'metadata.annotations: Invalid value: map[string]interface {}{"a":"b, c"}: too '
            'long, stringData: Unsupported value: "tok-value-42"]\n second line ' +
            b64("hunter22-pw"))
    out = mask_error_text(text, objects=sent)
    assert "\n" not in out
    for needle in ("hunter22-pw", "tok-value-42", b64("hunter22-pw"), '"a":"b'):
        assert needle not in out
    assert 'data[password]: Invalid value: "<masked>": bad' in out
    assert "Invalid value: <masked>: too long" in out


def test_error_text_masks_resolved_values_and_credential_shapes() -> None:
    redactor = Redactor()
    redactor.register("resolved-in-memory")
    out = mask_error_text("x resolved-in-memory y https://user:pa55@host/ z",
                          policy=MaskPolicy(redactor=redactor))
    assert "resolved-in-memory" not in out and "pa55" not in out
    assert "pa55" not in mask_error_text("https://user:pa55@host/")


def test_api_error_status_keeps_reason_code_and_masked_message() -> None:
    body = json.dumps({"kind": "Status", "status": "Failure", "reason": "Invalid",
                       "code": 422, "message": 'Secret "db": data: Invalid value: "s3cr3t-x"',
                       "details": {"causes": [{"message": "s3cr3t-x"}]}})
    out = mask_api_error(body.encode())
    assert out == 'Invalid (422): Secret "db": data: Invalid value: "<masked>"'
    assert mask_api_error("plain text\nerror") == "plain text error"


@pytest.mark.parametrize("obj", [
    secret({"b": "v-1", "a": "v-2"}, {"c": "v-3", "a": "v-4"}),
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
     "data": {"x": "1"}, "binaryData": {"y": b64("2")}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": ["odd"]},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}},
])
def test_the_unchanged_fast_path_agrees_with_masking(obj: dict[str, Any]) -> None:
    from kiln.diff.mask import unchanged_keys

    def fp(value: bytes) -> str:
        return "fp-" + value.hex()

    policy = MaskPolicy(kinds=mask_kinds(["ConfigMap"], {}), fingerprint=fp)
    pair = mask_pair(obj, obj, policy)
    assert unchanged_keys(obj, policy) == (pair.keys, pair.fingerprints)
    assert obj.get("stringData", {}).get("c") in (None, "v-3")  # the input is not modified
    if obj.get("stringData"):
        assert "c" not in obj["data"]
