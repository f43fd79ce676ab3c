"""Unit tests of the jsonnet plugin's pure parts: import scan, resolver, flattening, messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kiln.core.errors import InputError, RenderError
from kiln.plugins.jsonnet.flatten import flatten
from kiln.plugins.jsonnet.jpath import Resolver, build_jpath, project_root
from kiln.plugins.jsonnet.messages import describe
from kiln.plugins.jsonnet.natives import (
    manifest_yaml_from_json,
    parse_json,
    parse_yaml,
    sha256,
    snake_key,
)
from kiln.plugins.jsonnet.scan import find_imports, import_closure


def paths(text: str) -> list[tuple[str, str, int]]:
    return [(r.kind, r.path, r.line) for r in find_imports(text)]


def test_scan_finds_all_three_import_forms() -> None:
    text = (
        "local a = import 'a.libsonnet';\n"
        'local b = importstr "b.txt";\n'
        "local c = importbin @'c''s.bin';\n"
        'local d = import @"d""q.json";\n'
    )
    assert paths(text) == [
        ("import", "a.libsonnet", 1),
        ("importstr", "b.txt", 2),
        ("importbin", "c's.bin", 3),
        ("import", 'd"q.json', 4),
    ]


def test_scan_skips_comments_strings_and_text_blocks() -> None:
    text = (
        "// import 'line-comment'\n"
        "# import 'hash-comment'\n"
        "/* import 'block-comment'\n   still comment */\n"
        "local s = \"import 'in-string' \\\" import 'escaped'\";\n"
        "local t = 'it\\'s import \"x\"';\n"
        "local blk = |||\n  import 'in-text-block'\n    import 'deeper'\n|||;\n"
        "local chomp = |||-\n  import 'chomped'\n|||;\n"
        "local v = @'import ''verbatim''';\n"
        "local real = import 'real.libsonnet';\n"
        "{ myimport: 1, x: reimport }\n"
    )
    assert paths(text) == [("import", "real.libsonnet", 15)]


def test_scan_allows_comments_and_newlines_between_keyword_and_path() -> None:
    text = "import /* c */\n  // c2\n  'lib/x.libsonnet'"
    assert paths(text) == [("import", "lib/x.libsonnet", 1)]


def test_scan_decodes_escapes() -> None:
    assert paths(r'import "a\u0062c\/d\\e.libsonnet"') == [("import", "abc/d\\e.libsonnet", 1)]


def test_scan_ignores_computed_imports_and_is_quiet_on_broken_text() -> None:
    assert paths("import ('x' + 'y')") == []
    assert paths("local x = |||\nbad block") == []


def test_text_block_ends_at_less_indented_terminator() -> None:
    text = "{ a: |||\n    one\n\n    two\n  |||, b: import 'after.libsonnet' }"
    assert paths(text) == [("import", "after.libsonnet", 5)]


def tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_closure_follows_code_imports_only(tmp_path: Path) -> None:
    tree(tmp_path, {
        "main.jsonnet": "local a = import 'a.libsonnet'; local s = importstr 'data.txt'; a",
        "a.libsonnet": "import 'sub/b.libsonnet'",
        "sub/b.libsonnet": "{ x: importbin 'blob.bin', y: import 'missing.libsonnet' }",
        "sub/blob.bin": "xx",
        "data.txt": "import 'not-followed.libsonnet'",
    })
    resolver = Resolver(tmp_path, [tmp_path])
    closure = import_closure(str(tmp_path / "main.jsonnet"), resolver)
    rel = [os.path.relpath(f, tmp_path) for f in closure.files]
    assert rel == ["main.jsonnet", "a.libsonnet", "data.txt", "sub/b.libsonnet", "sub/blob.bin"]
    assert closure.missing == [(str(tmp_path / "sub/b.libsonnet"), "missing.libsonnet")]
    assert not closure.uses_helm


def test_resolver_searches_importer_dir_then_jpath_right_most_first(tmp_path: Path) -> None:
    tree(tmp_path, {"one/x.libsonnet": "1", "two/x.libsonnet": "2", "app/y.libsonnet": "3"})
    resolver = Resolver(tmp_path, [tmp_path / "one", tmp_path / "two"])
    app = str(tmp_path / "app")
    assert resolver.resolve(app, "x.libsonnet") == str(tmp_path / "two/x.libsonnet")
    assert resolver.resolve(app, "y.libsonnet") == str(tmp_path / "app/y.libsonnet")
    assert resolver.resolve(app, "nope.libsonnet") is None


def test_resolver_refuses_files_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    tree(tmp_path, {"secret.txt": "s", "root/app/main.jsonnet": ""})
    (root / "app" / "link.libsonnet").symlink_to(tmp_path / "secret.txt")
    resolver = Resolver(root, [root / "app"])
    with pytest.raises(InputError, match="outside the source root"):
        resolver.resolve(str(root / "app"), "../../secret.txt", where="main.jsonnet:1")
    with pytest.raises(InputError, match="outside the source root"):
        resolver.resolve(str(root / "app"), str(tmp_path / "secret.txt"))
    with pytest.raises(InputError, match="resolves outside the source root"):
        resolver.resolve(str(root / "app"), "link.libsonnet")


def test_jpath_holds_tanka_conventions_and_libs(tmp_path: Path) -> None:
    tree(tmp_path, {"proj/jsonnetfile.json": "{}", "proj/lib/l": "", "proj/vendor/v": "",
                    "proj/env/dev/main.jsonnet": "", "shared/s": ""})
    app = tmp_path / "proj/env/dev"
    assert project_root(app, tmp_path) == tmp_path / "proj"
    jpath = build_jpath(app, tmp_path, ["shared"])
    assert jpath == [tmp_path / "proj/vendor", tmp_path / "proj/lib", app, tmp_path / "shared"]
    with pytest.raises(InputError, match="does not exist"):
        build_jpath(app, tmp_path, ["nope"])
    with pytest.raises(InputError, match="outside the source root"):
        build_jpath(app, tmp_path / "proj", ["../shared"])


def test_project_root_stops_at_the_source_root(tmp_path: Path) -> None:
    tree(tmp_path, {"jsonnetfile.json": "{}", "root/app/main.jsonnet": ""})
    assert project_root(tmp_path / "root/app", tmp_path / "root") == tmp_path / "root/app"


def obj(kind: str, name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}


def test_flatten_walks_nested_objects_in_sorted_key_order() -> None:
    out = {"z": obj("A", "z"), "a": {"y": [obj("B", "1"), None, obj("B", "2")], "x": {}},
           "m": [], "n": None}
    assert [o["metadata"] for o in flatten(out, "s")] == [  # type: ignore[index]
        {"name": "1"}, {"name": "2"}, {"name": "z"}]
    assert flatten(obj("A", "top"), "s") == [obj("A", "top")]
    assert flatten([obj("A", "1"), [obj("A", "2")]], "s") == [obj("A", "1"), obj("A", "2")]


def test_flatten_names_the_path_of_a_stray_value() -> None:
    with pytest.raises(RenderError, match=r"output at \.a\[1\] is a string"):
        flatten({"a": [obj("A", "1"), "oops"]}, "main.jsonnet")
    with pytest.raises(RenderError, match="output at the top level is a number"):
        flatten(3, "main.jsonnet")


def test_flatten_inline_tanka_environment() -> None:
    env = {"apiVersion": "tanka.dev/v1alpha1", "kind": "Environment",
           "metadata": {"name": "prod"}, "spec": {"namespace": "prod"},
           "data": {"b": obj("B", "2"), "a": [obj("A", "1")]}}
    assert flatten({"envs": {"prod": env}}, "s") == [obj("A", "1"), obj("B", "2")]
    other = {**env, "metadata": {"name": "dev"}}
    with pytest.raises(RenderError, match=r"2 inline Tanka environments \(dev, prod\)"):
        flatten([env, other], "s")


def test_describe_static_and_runtime_errors() -> None:
    assert describe("/a/main.jsonnet:2:2-3 Unknown variable: b\n\n b}\n") == (
        "/a/main.jsonnet:2:2-3", "Unknown variable: b")
    runtime = ("RUNTIME ERROR: boom\n\t<std>:1:1-2\tfunction <x>\n\t/a/lib.libsonnet:3:5-20\t"
               "object <o>\n\t/a/main.jsonnet:1:1-9\t$\n\tDuring evaluation\t\n")
    assert describe(runtime) == ("/a/lib.libsonnet:3:5-20", "boom")
    native = "RUNTIME ERROR: failed to execute native callback, code: 0\n\t/a/m.jsonnet:1:1-5\t$\n"
    assert describe(native, native_error="parseYaml: bad") == ("/a/m.jsonnet:1:1-5",
                                                               "parseYaml: bad")
    stack = "RUNTIME ERROR: max stack frames exceeded.\n\t/a/m.jsonnet:(1:1)-(2:3)\tf\n"
    loc, msg = describe(stack, max_stack=50)
    assert loc == "/a/m.jsonnet:(1:1)-(2:3)" and "jsonnet.maxStack=50" in msg
    assert describe("importer error: x") == (None, "importer error: x")
    imported = ("RUNTIME ERROR: /a/lib.libsonnet:3:19-20 Unknown variable: d\n"
                "\t/a/main.jsonnet:7:7-32\tobject <anonymous>\n")
    assert describe(imported) == ("/a/lib.libsonnet:3:19-20", "Unknown variable: d")


def test_natives() -> None:
    assert parse_yaml("a: 1\n---\n- b\n") == [{"a": 1}, ["b"]]
    assert parse_json('{"a": [1, 2]}') == {"a": [1, 2]}
    assert manifest_yaml_from_json('{"b": 1, "a": {"c": [1]}}') == "a:\n  c:\n  - 1\nb: 1\n"
    assert sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    with pytest.raises(InputError, match="duplicate key"):
        parse_json('{"a": 1, "a": 2}')
    with pytest.raises(InputError, match="malformed YAML"):
        parse_yaml("a: [")


def test_snake_key_matches_tankas_default_name_format() -> None:
    assert snake_key("ServiceAccount", "my-app") == "service_account_my_app"
    assert snake_key("Deployment", "web-hello") == "deployment_web_hello"
    assert snake_key("CustomResourceDefinition", "crontabs.stable.example.com") == (
        "custom_resource_definition_crontabs_stable_example_com")


def test_rewrite_native_calls_only_in_code() -> None:
    from kiln.plugins.jsonnet.natives import rewrite_native_calls

    text = ("local h = std.native('helmTemplate'); // std.native('helmTemplate')\n"
            "{ s: \"std.native('helmTemplate')\",\n"
            "  t: std.native( \"helmTemplate\" )('a', 'b', {}) }")
    out = rewrite_native_calls(text)
    assert out.count("std.manifestJsonMinified(conf)") == 2
    assert "// std.native('helmTemplate')\n" in out
    assert "s: \"std.native('helmTemplate')\"" in out
    assert len(out.splitlines()) == 3
    assert rewrite_native_calls("std.native('parseYaml')") == "std.native('parseYaml')"


def test_frames_survive_arbitrary_chunking() -> None:
    import os as _os

    from kiln.plugins.jsonnet import protocol

    r, w = _os.pipe()
    try:
        protocol.send(w, {"op": "done", "json": "x" * 1000})
        protocol.send(w, {"op": "helm", "name": "ü"})
        data = _os.read(r, 1 << 16)
    finally:
        _os.close(r)
        _os.close(w)
    reader = protocol.FrameReader()
    got = []
    for i in range(0, len(data), 7):
        reader.feed(data[i:i + 7])
        while (message := reader.next()) is not None:
            got.append(message)
    assert got == [{"op": "done", "json": "x" * 1000}, {"op": "helm", "name": "ü"}]
