"""Placeholder text: AVP placeholders (generic and inline, with modifiers), ``ref+`` URIs and the
AVP annotations, built from the grammar's own punctuation plus arbitrary characters.

Every stream either resolves or raises one SecretError, quickly: the regular expressions must
not backtrack for ever, and no modifier argument may make a value explode. The backend is an
in-memory one that answers every key with a value the test chose (the code under test is the
grammar, not a client), so substitutions really happen.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from kiln.core import placeholders as ph
from kiln.core import secrets
from kiln.core.errors import KilnError, SecretNotFound
from kiln.plugins.secrets_vault import vault_grammar
from tests.fuzz.bounds import FUZZ, result_or_kiln_error

PIECES = st.sampled_from([
    "<", ">", "path:", "#", "|", " ", "  ", "ref+vault://", "ref+awssm://", "ref+gcpsm://",
    "?version=", "?kv=1", "&", "=", "/", "..", "data/", "secret/data/app", "+", "base64encode",
    "base64decode", "jsonPath", "jsonParse", "yamlParse", "indent", "sha256sum", "{", "}",
    "{.a}", "{.a[0]}", ".", "$", "[", "]", "*", "\n", "\t", "\\", "'", '"', "%", "\x00", "é",
    "\u202e", "0", "3", "-1", "99999999999", "key", "password",
])
NOISE = st.lists(st.one_of(PIECES, st.text(max_size=3)), max_size=8).map("".join)
MODIFIER = st.tuples(st.sampled_from(["base64encode", "base64decode", "jsonPath", "jsonParse",
                                      "yamlParse", "indent", "sha256sum", "nope", ""]),
                     st.lists(st.one_of(NOISE, st.integers(-5, 10**12).map(str)), max_size=2)
                     ).map(lambda m: " ".join([m[0], *m[1]]))
PLACEHOLDER = st.one_of(
    st.tuples(st.sampled_from(["path:", "path: ", ""]), NOISE, st.sampled_from(["#", "##", ""]),
              NOISE, st.sampled_from(["", "#", "#2"]), st.lists(MODIFIER, max_size=3)).map(
        lambda p: f"<{p[0]}{p[1]}{p[2]}{p[3]}{p[4]}{''.join(' | ' + m for m in p[5])}>"),
    st.tuples(st.sampled_from(["vault", "awssm", "gcpsm", "nope"]), NOISE, NOISE, NOISE).map(
        lambda u: f"ref+{u[0]}://{u[1]}?{u[2]}#{u[3]}"),
)
TEXT = st.lists(st.one_of(NOISE, PLACEHOLDER), max_size=2).map("".join)
LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT)
VALUES = st.recursive(LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=2), st.dictionaries(NOISE, inner, max_size=2)), max_leaves=4)


class AnyKey(Mapping[str, Any]):
    """A secret that holds every key, each with the same value."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __getitem__(self, key: str) -> Any:
        return self.value

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(("key",))

    def __len__(self) -> int:
        return 1


class MemoryBackend:
    """A backend answering every read with ``value`` (or a not-found error when ``missing``)."""

    name = "memory"

    def __init__(self, value: Any, missing: bool) -> None:
        self.value = value
        self.missing = missing

    def open(self) -> None:
        """Nothing to connect to."""

    def read(self, key: secrets.ReadKey) -> Mapping[str, Any]:
        if self.missing:
            raise SecretNotFound("no such secret", source=key.path)
        return AnyKey(self.value)


@st.composite
def objects(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(["Secret", "ConfigMap", "Deployment", ""]))
        annotations = draw(st.dictionaries(st.sampled_from([
            ph.AVP_PATH, ph.AVP_KV_VERSION, ph.AVP_SECRET_VERSION,
            ph.AVP_REMOVE_MISSING, ph.AVP_IGNORE, "other"]),
            st.one_of(TEXT, st.sampled_from(["true", "1", "2", "secret/data/app"])),
            max_size=4))
        data = draw(st.dictionaries(NOISE, TEXT, max_size=2))
        if kind == "Secret" and draw(st.booleans()):
            data = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind,
                               "metadata": {"name": draw(TEXT), "annotations": annotations},
                               "data": data}
        if draw(st.booleans()):
            obj["stringData"] = draw(st.dictionaries(NOISE, VALUES, max_size=2))
        out.append(obj)
    return out


GRAMMARS = [
    vault_grammar(None, avp=True),
    ph.Grammar(avp=True, schemes=frozenset({"awssm"}), whole_key="value",
                    path_validation=re.compile(r"^[A-Za-z0-9/_.-]+$")),
    ph.Grammar(schemes=frozenset({"gcpsm", "vault"}), whole_key="value"),
]
POLICY = secrets.FetchPolicy(concurrency=1, retries=0, timeout=1.0)


INDENT_BOMB = [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"},
                "stringData": {"a": "<path:secret/data/app#key | indent 99999999999>"}}]


@FUZZ
@given(objs=objects(), grammar=st.sampled_from(GRAMMARS), value=VALUES,
       missing=st.booleans())
@example(objs=INDENT_BOMB, grammar=GRAMMARS[0], value="line\nline", missing=False)
def test_any_stream_resolves_or_is_one_secret_error(objs: list[dict[str, Any]],
                                                     grammar: ph.Grammar, value: Any,
                                                     missing: bool) -> None:
    backend = MemoryBackend(value, missing)
    out = result_or_kiln_error(
        lambda: ph.resolve_stream(objs, grammar, backend, POLICY), seconds=5)
    assert isinstance(out, (list, KilnError))
    for call in (lambda: ph.unresolved(objs), lambda: ph.strip_avp_annotations(objs),
                 lambda: ph.scan(objs, grammar), lambda: ph.wants(objs, grammar)):
        result_or_kiln_error(call, seconds=5)


@FUZZ
@given(text=TEXT, annotations=st.dictionaries(
    st.sampled_from([ph.AVP_PATH, ph.AVP_KV_VERSION, ph.AVP_SECRET_VERSION]),
    TEXT, max_size=3), grammar=st.sampled_from(GRAMMARS))
def test_any_placeholder_text_parses_to_a_reference(text: str, annotations: dict[str, str],
                                                     grammar: ph.Grammar) -> None:
    """Parsing never raises: a malformed reference carries its error instead."""
    for match in re.finditer(r"<(.*?)>", text):
        ref = result_or_kiln_error(
            lambda m=match: ph.parse_placeholder(m.group(0), annotations, grammar), 2)
        assert isinstance(ref, ph.Reference)
    for match in ph.URI_RE.finditer(text):
        ref = result_or_kiln_error(
            lambda m=match: ph.parse_uri(m, annotations, grammar), 2)
        assert isinstance(ref, ph.Reference)
