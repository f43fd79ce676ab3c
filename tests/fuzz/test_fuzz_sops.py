"""SOPS documents: real ``sops`` output (age keys, every format) mutated as text and as a tree.

Decrypting any mutation ends in plaintext or one KilnError naming the document (a tampered
value or MAC, a broken ``sops`` map, a format error, a missing key), within a time bound.
Whole-object SOPS Secrets go through ``decrypt_objects``, as the resolver calls it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from kiln.core.errors import KilnError
from kiln.plugins.secrets_sops.api import Decryptor
from tests.fuzz.bounds import FUZZ, result_or_kiln_error
from tests.integration.sops_helpers import (
    AgeKey,
    new_age_key,
    sops_decrypt,
    sops_encrypt,
    sops_env,
)

PLAIN = {
    "yaml": b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n"
            b"  password: pw-1\n  port: 5432\n  list: [a, 1, true]\n",
    "json": b'{"user": "u", "nested": {"n": 1.5, "b": false}, "list": ["x", null]}',
    "dotenv": b"A=1\nB=two words\n",
    "ini": b"[db]\nuser = u\npass = p\n",
    "binary": b"\x00\x01 raw bytes\n",
}
EXT = {"yaml": "yaml", "json": "json", "dotenv": "env", "ini": "ini", "binary": "bin"}
PIECES = st.sampled_from([
    b"ENC[", b"]", b",", b":", b"data:", b"iv:", b"tag:", b"type:str", b"type:int",
    b"type:float", b"type:bool", b"type:bytes", b"type:comment", b"AES256_GCM", b"\n", b"  ",
    b"sops:", b"mac:", b"age:", b"recipient:", b"enc:", b"lastmodified:", b"version:",
    b"encrypted_regex:", b"unencrypted_suffix:", b"mac_only_encrypted:", b"shamir_threshold:",
    b"key_groups:", b"pgp:", b"kms:", b"-----BEGIN AGE ENCRYPTED FILE-----", b"==", b"\"", b"{",
    b"}", b"[", b"- ", b"#", b"=", b"sops_", b"\xff", b"\x00",
])
BYTES = st.lists(st.one_of(PIECES, st.binary(max_size=4)), max_size=6).map(b"".join)
LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                 st.text(max_size=8), st.sampled_from([
                     "ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]",
                     "ENC[AES256_GCM,data:,iv:,tag:,type:int]", "ENC[", "2024-01-01T00:00:00Z",
                     "3.9.0", "^data$", "_unencrypted"]))
VALUE = st.recursive(LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=5)


@pytest.fixture(scope="module")
def key() -> AgeKey:
    return new_age_key()


@pytest.fixture(scope="module")
def encrypted(key: AgeKey, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    work = tmp_path_factory.mktemp("sops")
    return {fmt: sops_encrypt(plain, fmt, work, "--age", key.recipient)
            for fmt, plain in PLAIN.items()}


@pytest.fixture(scope="module")
def decryptor(key: AgeKey) -> Decryptor:
    return Decryptor.for_app(None, {"SOPS_AGE_KEY": key.identity})


def test_the_unmutated_documents_decrypt(key: AgeKey, encrypted: dict[str, bytes],
                                         decryptor: Decryptor) -> None:
    """The documents the mutations start from decrypt to what ``sops decrypt`` gives."""
    for fmt, data in encrypted.items():
        out = decryptor.decrypt_bytes(data, name=f"doc.{EXT[fmt]}", fmt=fmt)
        want = sops_decrypt(data, fmt, sops_env(key))
        if fmt == "json":
            assert json.loads(out) == json.loads(want)
        elif fmt == "yaml":  # the same data; kiln's own layout (list indentation)
            assert yaml.safe_load(out) == yaml.safe_load(want)
        else:
            assert out == want, fmt


@pytest.mark.parametrize("plain", [b"[a]\nx = 1\n\n[b]\ny = 2\n", b"top = 1\n[a]\nx = 1\n",
                                   b"[a]\n", b"[a]\n[b]\nq=1\n", b"top = 1\n"])
def test_ini_layout_is_sops_own(key: AgeKey, decryptor: Decryptor, tmp_path: Path,
                                plain: bytes) -> None:
    """Default-section keys carry no header; sections are separated by one blank line and the
    last is not followed by one (a kustomize generator file must get sops' exact bytes)."""
    enc = sops_encrypt(plain, "ini", tmp_path, "--age", key.recipient)
    assert decryptor.decrypt_bytes(enc, name="x.ini", fmt="ini") == sops_decrypt(
        enc, "ini", sops_env(key))


@FUZZ
@given(fmt=st.sampled_from(sorted(PLAIN)), cut=st.tuples(st.floats(0, 1), st.floats(0, 1)),
       insert=BYTES)
def test_any_text_mutation_decrypts_or_is_one_error(encrypted: dict[str, bytes],
                                                     decryptor: Decryptor, fmt: str,
                                                     cut: tuple[float, float],
                                                     insert: bytes) -> None:
    data = encrypted[fmt]
    start, end = sorted(int(x * len(data)) for x in cut)
    end = min(end, start + 40)
    mutated = data[:start] + insert + data[end:]
    name = f"doc.{EXT[fmt]}"
    out = result_or_kiln_error(lambda: decryptor.decrypt_bytes(mutated, name=name, fmt=fmt))
    if isinstance(out, KilnError):
        assert name in out.one_line(), out.one_line()


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*here, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*here, i))
    return out


def _replace(node: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        copy = dict(node)
        if delete and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _replace(node[head], rest, value, delete)
        return copy
    copy_list = list(node)
    if delete and not rest:
        copy_list.pop(head)
    else:
        copy_list[head] = _replace(node[head], rest, value, delete)
    return copy_list


@FUZZ
@given(fmt=st.sampled_from(["yaml", "json"]), seed=st.integers(0, 2**32), value=VALUE,
       delete=st.booleans(), as_object=st.booleans())
def test_any_tree_mutation_decrypts_or_is_one_error(encrypted: dict[str, bytes],
                                                     decryptor: Decryptor, fmt: str, seed: int,
                                                     value: Any, delete: bool,
                                                     as_object: bool) -> None:
    tree = json.loads(encrypted[fmt]) if fmt == "json" else yaml.safe_load(encrypted[fmt])
    paths = _paths(tree)
    path = random.Random(seed).choice(paths)
    mutated = _replace(tree, path, value, delete)
    if as_object and isinstance(mutated, dict):
        result_or_kiln_error(lambda: decryptor.decrypt_objects([mutated], name="Secret/db"))
        return
    data = (json.dumps(mutated) if fmt == "json" else yaml.safe_dump(mutated)).encode()
    name = f"doc.{fmt}"
    out = result_or_kiln_error(lambda: decryptor.decrypt_bytes(data, name=name, fmt=fmt))
    if isinstance(out, KilnError):
        assert name in out.one_line(), out.one_line()


@FUZZ
@given(data=BYTES, fmt=st.sampled_from(sorted(PLAIN)))
def test_any_bytes_decrypt_or_are_one_error(decryptor: Decryptor, data: bytes, fmt: str) -> None:
    result_or_kiln_error(lambda: decryptor.decrypt_bytes(data, name="x", fmt=fmt))
