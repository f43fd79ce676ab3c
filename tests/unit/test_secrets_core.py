"""The backend-agnostic secrets pipeline: grammar, modifiers, AVP substitution rules, batching.

Unit tests have no network, so the backend here is an in-memory dict (``DictBackend``); the same
code runs against a real OpenBao server in tests/integration/test_secrets_vault.py.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from kiln.core import placeholders as ph
from kiln.core import secret_modifiers
from kiln.core import secrets as s
from kiln.core.errors import SecretError, SecretErrors, SecretNotFound
from kiln.core.redact import Redactor

AVP = ph.Grammar(avp=True, schemes=frozenset({"mem"}))


class DictBackend:
    """An in-memory backend that counts reads, can fail transiently and tracks concurrency."""

    name = "mem"

    def __init__(self, data: Mapping[str, Mapping[str, Any]], *, transient: int = 0,
                 delay: float = 0.0) -> None:
        self.data = data
        self.reads: list[s.ReadKey] = []
        self.opens = 0
        self.transient = transient
        self.delay = delay
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def open(self) -> None:
        self.opens += 1

    def read(self, key: s.ReadKey) -> Mapping[str, Any]:
        with self.lock:
            self.reads.append(key)
            self.active += 1
            self.peak = max(self.peak, self.active)
            fail = self.transient > 0
            if fail:
                self.transient -= 1
        try:
            time.sleep(self.delay)
            if fail:
                raise s.TransientBackendError("connection refused")
            if key.path == "denied":
                raise SecretError("permission denied")
            if key.path not in self.data:
                raise SecretNotFound(f"no secret at {key.path}")
            return self.data[key.path]
        finally:
            with self.lock:
                self.active -= 1


DATA = {
    "kv/app": {"user": "alice-user", "pw": "hunter2-pw", "n": "3",
               "cfg": '{"db": {"user": "dbu", "port": 5432, "tags": ["a", "b"]}}',
               "doc": "a: 1\nb: [x, y]\n"},
    "kv/other": {"token": "tok-value"},
}
FAST = s.FetchPolicy(concurrency=4, timeout=1, retries=2, backoff=0.001)


def run(objects: list[dict[str, Any]], data: Mapping[str, Mapping[str, Any]] = DATA,
        grammar: ph.Grammar = AVP) -> list[dict[str, Any]]:
    return ph.resolve_stream(objects, grammar, DictBackend(data), FAST)


def secret(string_data: dict[str, Any], annotations: dict[str, str] | None = None,
           kind: str = "Secret") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "s", "namespace": "ns"}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": kind, "metadata": meta, "stringData": string_data}


# -- grammar --------------------------------------------------------------------------------------

def test_inline_placeholder_parts() -> None:
    ref = ph.parse_placeholder("<path:kv/data/a#key#3 | jsonPath {.x} | base64encode>", {}, AVP)
    assert ref.read == s.ReadKey("kv/data/a", "3")
    assert ref.key == "key"
    assert ref.modifiers == (ph.Modifier("jsonPath", ("{.x}",)), ph.Modifier("base64encode"))
    assert ref.error is None


def test_generic_placeholder_uses_annotations() -> None:
    ann = {ph.AVP_PATH: "kv/app", ph.AVP_SECRET_VERSION: "2"}
    ref = ph.parse_placeholder("<user | sha256sum>", ann, AVP)
    assert (ref.read, ref.key, ref.modifiers) == (s.ReadKey("kv/app", "2"), "user",
                                                  (ph.Modifier("sha256sum"),))


@pytest.mark.parametrize("text, message", [
    ("<path:kv/app>", "malformed inline placeholder"),
    ("<path:kv/app#>", "malformed inline placeholder"),
    ("<user | nope>", "invalid modifier 'nope'"),
    ("<user | >", "empty modifier"),
    ("<path:kv/../secret#k>", "'..' segment"),
    ("<>", "empty placeholder"),
])
def test_malformed_placeholders(text: str, message: str) -> None:
    ref = ph.parse_placeholder(text, {ph.AVP_PATH: "kv/app"}, AVP)
    assert ref.error is not None and message in ref.error


def test_path_validation_is_a_search() -> None:
    grammar = ph.Grammar(avp=True, path_validation=__import__("re").compile(r"^kv/app$"))
    assert ph.parse_placeholder("<path:kv/app#k>", {}, grammar).error is None
    bad = ph.parse_placeholder("<path:kv/other#k>", {}, grammar)
    assert bad.error is not None and "AVP_PATH_VALIDATION" in bad.error


def test_angle_text_is_not_a_placeholder_without_the_path_annotation() -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "x"}, "spec": {"description": "set <KEY> and <other>"}}
    assert not ph.wants([crd], AVP)
    assert run([crd]) == [crd]


def test_uris_by_scheme_only() -> None:
    obj = secret({"a": "ref+mem://kv/app#user", "b": "ref+other://kv/app#user",
                  "c": "x ref+mem://kv/app?version=1#/pw y"})
    keys = ph.scan([obj], AVP)
    assert keys == [s.ReadKey("kv/app"), s.ReadKey("kv/app", "1")]
    assert ph.wants([obj], AVP)
    assert not ph.wants([secret({"b": "ref+other://kv/app#user"})], AVP)


# -- modifiers ----------------------------------------------------------------------------

@pytest.mark.parametrize("expr, expected", [
    ("{.db.user}", "dbu"),
    ("{.db.port}", "5432"),
    ("{$.db.tags[1]}", "b"),
    ("{.db['user']}", "dbu"),
    ("{.db.tags[*]}", "a b"),
    ("{.db.tags}", '["a","b"]'),
    ("user={.db.user}:{.db.port}", "user=dbu:5432"),
])
def test_json_path(expr: str, expected: str) -> None:
    assert secret_modifiers.json_path(expr, DATA["kv/app"]["cfg"]) == expected


def test_json_path_missing_key_is_an_error_without_the_value() -> None:
    with pytest.raises(secret_modifiers.ModifierError) as info:
        secret_modifiers.json_path("{.db.password}", DATA["kv/app"]["cfg"])
    assert "dbu" not in str(info.value)


def test_indent_follows_avp() -> None:
    value = "  first  \n  second\n\n third \n"
    result = secret_modifiers.apply_modifier(ph.Modifier("indent", ("2",)), value)
    assert result == "first\n  second\n  third"


def test_base64decode_ignores_errors_like_avp() -> None:
    assert secret_modifiers.apply_modifier(ph.Modifier("base64decode"), "!!notbase64") == ""
    assert secret_modifiers.apply_modifier(ph.Modifier("base64decode"), "aGk=") == "hi"


def test_modifier_type_errors() -> None:
    with pytest.raises(secret_modifiers.ModifierError, match="expected a string, got object"):
        secret_modifiers.apply_modifier(ph.Modifier("base64encode"), {"a": 1})
    with pytest.raises(secret_modifiers.ModifierError, match="takes no arguments"):
        secret_modifiers.apply_modifier(ph.Modifier("sha256sum", ("x",)), "v")


# -- substitution rules -------------------------------------------------------------------

def test_substitution_rules() -> None:
    ann = {ph.AVP_PATH: "kv/app"}
    obj = secret({"pw": "<pw>", "both": "<user>:<pw>", "list": ["<user>", {"in": "<pw>"}],
                  "<user>": "key untouched", "n": "<n | jsonParse>",
                  "cfg": "<cfg | jsonParse>", "doc": "<doc | yamlParse>"}, ann)
    obj["metadata"]["labels"] = {"who": "<user>"}
    (out,) = run([obj])
    sd = out["stringData"]
    assert sd["pw"] == "hunter2-pw" and sd["both"] == "alice-user:hunter2-pw"
    assert sd["list"] == ["alice-user", {"in": "hunter2-pw"}]
    assert sd["<user>"] == "key untouched"
    assert sd["n"] == 3
    assert sd["cfg"]["db"]["port"] == 5432
    assert sd["doc"] == {"a": 1, "b": ["x", "y"]}
    assert out["metadata"]["labels"] == {"who": "alice-user"}
    assert list(out["stringData"]) == list(obj["stringData"])


def test_configmap_values_become_strings() -> None:
    cm = secret({}, {ph.AVP_PATH: "kv/app"}, kind="ConfigMap")
    cm["data"] = {"n": "<n | jsonParse>", "cfg": "<cfg | jsonParse>"}
    (out,) = run([cm])
    assert out["data"]["n"] == "3"
    assert out["data"]["cfg"] == '{"db":{"user":"dbu","port":5432,"tags":["a","b"]}}'


def test_secret_base64_template_is_substituted_inside() -> None:
    template = base64.b64encode(b"user=<path:kv/app#user>\npw=<path:kv/app#pw>").decode()
    obj = secret({})
    obj["data"] = {"env": template, "plain": base64.b64encode(b"no placeholder").decode()}
    (out,) = run([obj])
    assert base64.b64decode(out["data"]["env"]) == b"user=alice-user\npw=hunter2-pw"
    assert out["data"]["plain"] == obj["data"]["plain"]


def test_remove_missing_drops_only_missing_keys() -> None:
    ann = {ph.AVP_PATH: "kv/app", ph.AVP_REMOVE_MISSING: "true"}
    (out,) = run([secret({"pw": "<pw>", "gone": "<absent>",
                          "inline": "<path:kv/app#absent>"}, ann)])
    assert out["stringData"] == {"pw": "hunter2-pw"}
    with pytest.raises(SecretErrors, match="can only be used on Secret or ConfigMap"):
        run([secret({"pw": "<pw>"}, ann, kind="Deployment")])


def test_ignore_annotation_skips_and_never_reads() -> None:
    backend = DictBackend(DATA)
    obj = secret({"pw": "<pw>"}, {ph.AVP_PATH: "kv/app", ph.AVP_IGNORE: "True"})
    assert ph.resolve_stream([obj], AVP, backend, FAST) == [obj]
    assert backend.reads == []


def test_errors_are_collected_and_name_object_field_and_reference() -> None:
    objs = [secret({"a": "prefix <path:kv/app#nope> suffix", "b": "<path:missing#k>",
                    "c": "<path:denied#k>", "d": "<path:kv/app#pw | jsonParse>"}),
            secret({"x": "<path:kv/app#user | indent z>"}, kind="ConfigMap")]
    with pytest.raises(SecretErrors) as info:
        run(objs)
    lines = info.value.details()
    assert len(lines) == 5
    assert lines[0] == "Secret/ns/s: stringData.a: <path:kv/app#nope>: key 'nope' not found " \
                       "at kv/app"
    assert lines[1].startswith("Secret/ns/s: stringData.b: <path:missing#k>: no secret at")
    assert "permission denied" in lines[2]
    assert "jsonParse: not JSON" in lines[3]
    assert lines[4].startswith("ConfigMap/ns/s: stringData.x:")
    text = "\n".join(lines) + info.value.one_line()
    for value in ("hunter2-pw", "alice-user", "prefix", "suffix"):
        assert value not in text


# -- fetching -----------------------------------------------------------------------------------

def test_one_read_per_key_and_bounded_concurrency() -> None:
    data = {f"p/{i}": {"k": f"v{i}"} for i in range(20)}
    objs = [secret({f"f{j}": f"<path:p/{i}#k>" for j in range(5)}) for i in range(20) for _ in
            range(3)]
    backend = DictBackend(data, delay=0.01)
    out = ph.resolve_stream(objs, AVP, backend, FAST)
    assert len(backend.reads) == 20 and len(set(backend.reads)) == 20
    assert backend.opens == 1
    assert 1 < backend.peak <= FAST.concurrency
    assert out[3]["stringData"]["f0"] == "v1"


def test_transient_failures_are_retried_with_backoff() -> None:
    backend = DictBackend(DATA, transient=2)
    data = s.fetch_all(backend, [s.ReadKey("kv/app")], FAST)
    assert data[s.ReadKey("kv/app")] == DATA["kv/app"]
    assert len(backend.reads) == 3


def test_retries_give_up_and_final_errors_are_not_retried() -> None:
    backend = DictBackend(DATA, transient=10)
    data = s.fetch_all(backend, [s.ReadKey("kv/app")], FAST)
    assert isinstance(data[s.ReadKey("kv/app")], s.TransientBackendError)
    assert len(backend.reads) == FAST.retries + 1
    backend = DictBackend(DATA)
    data = s.fetch_all(backend, [s.ReadKey("denied"), s.ReadKey("missing")], FAST)
    assert len(backend.reads) == 2
    assert all(isinstance(v, SecretError) for v in data.values())


def test_unreachable_backend_is_one_error() -> None:
    backend = DictBackend(DATA, transient=100)
    objs = [secret({"a": "<path:kv/app#pw>", "b": "<path:kv/other#token>"})]
    with pytest.raises(s.TransientBackendError, match="connection refused"):
        ph.resolve_stream(objs, AVP, backend, FAST)


def test_every_value_is_registered_with_the_redactor() -> None:
    redactor = Redactor()
    ph.resolve_stream([secret({"a": "<path:kv/app#cfg | jsonPath {.db.user} | base64encode>"})],
                     AVP, DictBackend(DATA), FAST, redactor)
    # Every value of the path read, and every intermediate modifier result.
    for value in ("hunter2-pw", "alice-user", "dbu", base64.b64encode(b"dbu").decode()):
        assert redactor.redact(f"x {value} y") == "x <redacted> y"
    assert redactor.redact(base64.b64encode(b"hunter2-pw").decode()) == "<redacted>"


# -- helpers used by `kiln generate` ------------------------------------------------------------

def test_strip_avp_annotations_keeps_order() -> None:
    obj = secret({"a": "1"}, {"z": "keep", ph.AVP_PATH: "kv/app"})
    (out,) = ph.strip_avp_annotations([obj])
    assert out["metadata"]["annotations"] == {"z": "keep"}
    assert list(out) == list(obj)
    (bare,) = ph.strip_avp_annotations([secret({"a": "1"}, {ph.AVP_PATH: "kv/app"})])
    assert "annotations" not in bare["metadata"]


def test_unresolved_names_what_no_backend_took() -> None:
    errors = ph.unresolved([secret({"a": "<path:kv/app#pw>", "b": "ref+awssecrets://x#k",
                                   "c": "<plain>"})])
    assert [e.one_line().split(": ")[1] for e in errors] == ["stringData.a", "stringData.b"]


def test_wants_is_precise() -> None:
    b64 = base64.b64encode(b"<not-a-ref>").decode()
    plain = secret({"a": "<text>"})
    plain["data"] = {"x": b64}
    assert not ph.wants([plain], AVP)
    annotated = secret({"a": "no placeholders"}, {ph.AVP_PATH: "kv/app"})
    assert not ph.wants([annotated], AVP)
    annotated["stringData"]["b"] = "<pw>"
    assert ph.wants([annotated], AVP)
    inline = secret({})
    inline["data"] = {"x": base64.b64encode(b"<path:kv/app#pw>").decode()}
    assert ph.wants([inline], AVP)


# -- resolved values are final ------------------------------------------------------------------

TRAP = "x<path:kv/data/trap#k>y ref+mem://trap#k ref+other://trap#k"
"""A secret value that looks like references of every grammar below (the test chose it)."""
OTHER = ph.Grammar(schemes=frozenset({"other"}))


def test_value_from_one_resolver_is_never_read_or_substituted_by_another() -> None:
    first = DictBackend({"kv/data/a": {"k": TRAP}})
    second = DictBackend({"b": {"j": "J"}})
    obj = {"kind": "ConfigMap", "metadata": {"name": "c"},
           "data": {"mixed": "<path:kv/data/a#k>|ref+other://b#j", "lone": "ref+other://b#j"}}
    out = ph.resolve_stream([obj], AVP, first, s.FetchPolicy())
    # The value read holds ref+mem:// text, which AVP's grammar owns: it was not read.
    assert [k.path for k in first.reads] == ["kv/data/a"]
    out = ph.resolve_stream(out, OTHER, second, s.FetchPolicy())
    assert [k.path for k in second.reads] == ["b"]
    assert out[0]["data"] == {"mixed": f"{TRAP}|J", "lone": "J"}
    assert ph.unresolved(out) == []
    plain = s.plain(out)
    assert type(plain[0]["data"]["mixed"]) is str and plain[0]["data"]["mixed"] == f"{TRAP}|J"
    # Without the marks (what a plain copy of the text would be) the trap would be reported.
    assert len(ph.unresolved(plain)) == 3


def test_leftover_next_to_a_resolved_value_is_still_reported_without_the_value() -> None:
    backend = DictBackend({"kv/data/a": {"k": TRAP}})
    obj = {"kind": "ConfigMap", "metadata": {"name": "c"},
           "data": {"v": "<path:kv/data/a#k> and ref+nobody://x#y"}}
    out = ph.resolve_stream([obj], AVP, backend, s.FetchPolicy())
    errors = ph.unresolved(out)
    assert [e.one_line() for e in errors] == [
        "ConfigMap/c: data.v: ref+nobody://x#y: no secrets backend is configured for this "
        "reference (set AVP_TYPE, VAULT_ADDR, or a secrets section)"]


def test_base64_secret_template_keeps_resolved_spans_for_the_next_resolver() -> None:
    template = "a=<path:kv/data/a#k>\nb=ref+other://b#j\n"
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
           "data": {"conf": base64.b64encode(template.encode()).decode()}}
    first = DictBackend({"kv/data/a": {"k": TRAP}})
    second = DictBackend({"b": {"j": "J"}, "trap": {"k": "BAD"}})
    out = ph.resolve_stream([obj], AVP, first, s.FetchPolicy())
    out = ph.resolve_stream(out, OTHER, second, s.FetchPolicy())
    assert [k.path for k in second.reads] == ["b"]
    decoded = base64.b64decode(s.plain(out)[0]["data"]["conf"]).decode()
    assert decoded == f"a={TRAP}\nb=J\n"


def test_non_string_values_and_final_marks_nested_strings() -> None:
    backend = DictBackend({"kv/data/a": {"k": {"inner": TRAP, "n": 1}}})
    obj = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": "<path:kv/data/a#k>"}}
    out = ph.resolve_stream([obj], AVP, backend, s.FetchPolicy())
    assert out[0]["spec"]["x"] == {"inner": TRAP, "n": 1}
    assert ph.unresolved(out) == []
    marked = s.final({"a": ["<path:x#y>", 2], "b": "ref+vault://x#y"})
    assert ph.unresolved([{"kind": "ConfigMap", "data": marked}]) == []
    assert s.plain(marked) == {"a": ["<path:x#y>", 2], "b": "ref+vault://x#y"}


# -- time limits --------------------------------------------------------------------------------


def test_read_time_limit_is_total_and_includes_retries() -> None:
    """A backend that fails transiently after 0.3 s each time: with a 1 s limit and 10 retries
    the read gives up after about 1 s, not 10 x 0.3 s."""
    backend = DictBackend({"a": {"k": "v"}}, transient=100, delay=0.3)
    started = time.monotonic()
    data = s.fetch_all(backend, [s.ReadKey("a")], s.FetchPolicy(timeout=1.0, retries=10,
                                                                backoff=0.01))
    elapsed = time.monotonic() - started
    assert isinstance(data[s.ReadKey("a")], SecretError)
    assert elapsed < 1.6, elapsed
    assert 2 <= len(backend.reads) <= 4


def test_a_read_that_never_finishes_is_given_up() -> None:
    backend = DictBackend({"a": {"k": "v"}}, delay=30)
    started = time.monotonic()
    data = s.fetch_all(backend, [s.ReadKey("a")], s.FetchPolicy(timeout=0.5, retries=0))
    assert time.monotonic() - started < 1.5
    err = data[s.ReadKey("a")]
    assert isinstance(err, SecretError) and "within 0.5s" in err.message


def test_the_command_deadline_names_every_pending_read() -> None:
    from kiln.core.deadline import Deadline, DeadlineExceeded

    backend = DictBackend({"a": {"k": "v"}, "b": {"k": "v"}, "c": {"k": "v"}}, delay=30)
    policy = s.FetchPolicy(timeout=30, deadline=Deadline(0.5))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as info:
        s.fetch_all(backend, [s.ReadKey(p) for p in "abc"], policy)
    assert time.monotonic() - started < 1.5
    assert info.value.one_line() == (
        "gave up after the 0.5s deadline (KILN_TIMEOUT) while reading from mem: 3 read(s) "
        "pending: a, b, c")


def test_kiln_timeout_parsing() -> None:
    from kiln.core.deadline import Deadline
    from kiln.core.errors import ConfigError

    assert Deadline.from_env({}).seconds is None
    assert Deadline.from_env({}, 55).seconds == 55
    assert Deadline.from_env({"KILN_TIMEOUT": "3.5"}, 55).seconds == 3.5
    assert Deadline.from_env({"KILN_TIMEOUT": "0"}, 55).seconds is None
    assert Deadline.from_env({"KILN_TIMEOUT": "0"}).remaining() == float("inf")
    for bad in ("soon", "-1", "inf", "nan"):
        with pytest.raises(ConfigError, match="KILN_TIMEOUT must be a number of seconds"):
            Deadline.from_env({"KILN_TIMEOUT": bad})
    d = Deadline(10)
    assert 9 < d.cap(30) <= 10 and d.cap(2) == 2
