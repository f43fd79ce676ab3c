"""``kiln.diff.many`` pairing and ``kiln.diff.many_report``: apps paired by Application name,
states and exit codes, and the three reports checked against values the tests chose."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from kiln.core.errors import ConfigError, KilnError, RenderError
from kiln.diff.many import AppPair, ManyDiff, diff_pairs, pair_apps
from kiln.diff.many_report import MARKDOWN_LIMIT, render, render_markdown, summary_table
from kiln.diff.mask import MaskPolicy
from kiln.many.runner import AppFailed


@dataclass(frozen=True)
class Spec:
    name: str
    path: str
    origin: str = "apps/x.yaml"


@dataclass
class Result:
    objects: list[dict[str, Any]]


@dataclass
class Outcome:
    spec: Spec
    result: Result | None
    error: KilnError | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def cm(name: str, value: str, namespace: str = "ns") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": {"v": value}}


def secret(name: str, password: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "ns"},
            "data": {"password": base64.b64encode(password.encode()).decode()}}


def outcomes(specs: list[Spec], objects: dict[str, list[dict[str, Any]]],
             failing: dict[str, KilnError] | None = None) -> dict[str, Outcome]:
    failing = failing or {}
    return {s.name: Outcome(s, None if s.name in failing else Result(objects[s.name]),
                            failing.get(s.name)) for s in specs}


def test_pairing_by_name_sorted_with_added_removed_and_moved() -> None:
    before = [Spec("web", "apps/web"), Spec("gone", "apps/gone"), Spec("api", "apps/api")]
    after = [Spec("web", "apps/web"), Spec("api", "services/api"), Spec("new", "apps/new")]
    pairs = pair_apps(before, after)
    assert [p.name for p in pairs] == ["api", "gone", "new", "web"]
    by = {p.name: p for p in pairs}
    assert by["gone"].after is None and by["gone"].path == "apps/gone"
    assert by["new"].before is None and by["new"].path == "apps/new"
    assert by["api"].moved and by["api"].path == "services/api"
    assert not by["web"].moved


def test_a_name_declared_twice_is_an_error_naming_both() -> None:
    with pytest.raises(ConfigError) as caught:
        pair_apps([], [Spec("web", "a", "apps/one.yaml"), Spec("web", "b", "apps/two.yaml")])
    line = caught.value.one_line()
    assert line.startswith("apps/two.yaml: ") and "apps/one.yaml" in line and "'web'" in line


def _scenario() -> tuple[ManyDiff, list[str]]:
    old_pw, new_pw = "Old-Password-1", "New-Password-2"
    before = [Spec("web", "apps/web"), Spec("gone", "apps/gone"), Spec("same", "apps/same"),
              Spec("moved", "old/moved")]
    after = [Spec("web", "apps/web"), Spec("new", "apps/new"), Spec("same", "apps/same"),
             Spec("moved", "new/moved")]
    b = outcomes(before, {"web": [cm("web", "1"), secret("db", old_pw)], "gone": [cm("g", "x")],
                          "same": [cm("s", "x")], "moved": [cm("m", "x")]})
    a = outcomes(after, {"web": [cm("web", "2"), secret("db", new_pw), cm("extra", "e")],
                         "new": [cm("n1", "a"), cm("n2", "b")], "same": [cm("s", "x")],
                         "moved": [cm("m", "x")]})
    diff = diff_pairs(pair_apps(before, after), b, a, policy=MaskPolicy(),
                      labels=("main", "desired"), base="abc123")
    return diff, [old_pw, new_pw]


def test_states_counts_and_exit_codes() -> None:
    diff, _ = _scenario()
    states = {a.name: a.state for a in diff.apps}
    assert states == {"gone": "removed", "moved": "unchanged", "new": "added",
                      "same": "unchanged", "web": "changed"}
    by = {a.name: a for a in diff.apps}
    assert by["moved"].moved and not by["moved"].changed
    assert by["web"].result is not None
    assert by["web"].result.counts() == {"added": 1, "changed": 2, "removed": 0,
                                         "unchanged": 0}
    assert by["new"].result is not None and by["new"].result.counts()["added"] == 2
    assert by["gone"].result is not None and by["gone"].result.counts()["removed"] == 1
    assert diff.exit_code == 1
    same = [Spec("same", "apps/same")]
    quiet = diff_pairs(pair_apps(same, same), outcomes(same, {"same": [cm("s", "x")]}),
                       outcomes(same, {"same": [cm("s", "x")]}), policy=MaskPolicy())
    assert quiet.exit_code == 0 and not quiet.changed


def test_an_app_failing_on_one_side_names_side_and_app_and_the_rest_is_diffed() -> None:
    specs = [Spec("ok", "apps/ok"), Spec("bad", "apps/bad")]
    before = outcomes(specs, {"ok": [cm("o", "1")], "bad": [cm("b", "1")]})
    after = outcomes(specs, {"ok": [cm("o", "2")]},
                     failing={"bad": AppFailed(specs[1], RenderError(  # type: ignore[arg-type]
                         "helm failed", source="apps/bad/templates/x.yaml"))})
    diff = diff_pairs(pair_apps(specs, specs), before, after, policy=MaskPolicy(),
                      sides=("HEAD~1", "working tree"))
    by = {a.name: a for a in diff.apps}
    assert by["bad"].state == "failed"
    assert by["bad"].errors == ("apps/bad (Application bad) at working tree: "
                                "apps/bad/templates/x.yaml: helm failed",)
    assert by["ok"].state == "changed"
    assert diff.exit_code == 2
    text = render(diff, "text")
    assert "=== bad (apps/bad): failed" in text and "+  v: '2'" in text
    data = json.loads(render(diff, "json"))
    assert {a["name"]: a["state"] for a in data["apps"]} == {"bad": "failed", "ok": "changed"}
    assert data["apps"][0]["errors"] == list(by["bad"].errors)


def test_text_report_headers_diffs_and_summary_table() -> None:
    diff, values = _scenario()
    text = render(diff, "text")
    for value in values:
        assert value not in text
        assert base64.b64encode(value.encode()).decode() not in text
    lines = text.splitlines()
    assert "=== web (apps/web): changed" in lines
    assert "=== moved (old/moved -> new/moved): unchanged, path changed" in lines
    assert "--- main/ConfigMap/ns/web" in lines and "+++ desired/ConfigMap/ns/web" in lines
    assert "-  password: <masked, changed (before)>" in lines
    assert "=== same" not in text  # unchanged apps are only counted
    table = summary_table(diff).splitlines()
    assert re.split(r"\s+", table[0]) == ["APP", "PATH", "STATE", "ADDED", "CHANGED",
                                          "REMOVED", "UNCHANGED"]
    rows = {r.split()[0]: r.split() for r in table[1:-1]}
    assert rows["web"][-4:] == ["1", "2", "0", "0"]
    assert rows["new"][-4:] == ["2", "0", "0", "0"]
    assert rows["gone"][-4:] == ["0", "0", "1", "0"]
    assert set(rows) == {"web", "new", "gone", "moved"}
    assert table[-1] == "5 apps: 1 added, 1 changed, 1 removed, 2 unchanged, 0 failed"


def test_json_report_shape() -> None:
    diff, values = _scenario()
    out = render(diff, "json")
    assert not any(v in out for v in values)
    data = json.loads(out)
    assert data["against"] == "main" and data["base"] == "abc123" and data["changed"] is True
    apps = {a["name"]: a for a in data["apps"]}
    assert [a["name"] for a in data["apps"]] == sorted(apps)
    assert apps["web"]["path"] == "apps/web" and apps["web"]["changed"] is True
    objs = {o["ref"]: o for o in apps["web"]["objects"]}
    assert objs["Secret/ns/db"]["keys"] == {"password": "changed"}
    assert objs["ConfigMap/ns/extra"]["state"] == "added"
    assert apps["moved"]["pathBefore"] == "old/moved" and apps["moved"]["path"] == "new/moved"
    assert apps["same"]["changed"] is False
    assert [o["state"] for o in apps["same"]["objects"]] == ["unchanged"]
    assert data["summary"] == {"added": 1, "changed": 1, "removed": 1, "unchanged": 2,
                               "failed": 0}


def test_markdown_report_table_and_details() -> None:
    diff, values = _scenario()
    md = render(diff, "markdown", title="kiln diff --applications apps")
    assert not any(v in md for v in values)
    lines = md.splitlines()
    assert lines[0] == "### kiln diff --applications apps"
    rows = [line for line in lines if line.startswith("| ") and "---" not in line]
    cells = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]] for r in rows}
    assert cells["web"] == ["apps/web", "changed", "1", "2", "0", "0"]
    assert cells["moved"] == ["old/moved → new/moved", "unchanged (moved)", "0", "0", "0", "1"]
    assert "same" not in cells
    assert md.count("<details><summary>web (apps/web): changed</summary>") == 1
    assert md.count("<details>") == md.count("</details>")


def _many(count: int, size: int) -> ManyDiff:
    specs = [Spec(f"app{i:04d}", f"apps/app{i:04d}") for i in range(count)]
    before = outcomes(specs, {s.name: [cm("c", "a" * size)] for s in specs})
    after = outcomes(specs, {s.name: [cm("c", "b" * size)] for s in specs})
    return diff_pairs(pair_apps(specs, specs), before, after, policy=MaskPolicy())


def test_markdown_is_bounded_with_a_note() -> None:
    diff = _many(40, 4000)  # about 8 KB of diff per app: far over the limit
    md = render_markdown(diff)
    assert len(md) <= MARKDOWN_LIMIT
    blocks = md.count("<details><summary>app")
    assert 0 < blocks < 40
    assert md.count("<details>") == md.count("</details>")
    assert f"**{40 - blocks} app(s) left out**" in md
    assert len([r for r in md.splitlines() if r.startswith("| app0")]) == 40  # whole table
    small = render_markdown(_many(3, 10))
    assert "left out" not in small and small.count("<details><summary>app") == 3


def test_markdown_bounded_even_when_the_table_alone_is_too_long() -> None:
    diff = _many(2000, 1)
    md = render_markdown(diff)
    assert len(md) <= MARKDOWN_LIMIT
    assert "(summary table cut)" in md and "2000 app(s) left out" in md


def test_markdown_escapes_names() -> None:
    specs = [Spec("x|<b>evil</b>", "apps/`x`")]
    diff = diff_pairs(pair_apps([], specs), {}, outcomes(specs, {specs[0].name: [cm("c", "1")]}),
                      policy=MaskPolicy())
    md = render_markdown(diff)
    assert "<b>" not in md and "x\\|&lt;b&gt;evil&lt;/b&gt;" in md


def test_pair_path_of_a_removed_app() -> None:
    assert AppPair("x", Spec("x", "a"), None).path == "a"


def test_error_lines_are_redacted_in_every_report() -> None:
    from kiln.core.redact import Redactor

    redactor = Redactor()
    redactor.register("Resolved-Value-77")
    specs = [Spec("bad", "apps/bad")]
    after = outcomes(specs, {}, failing={"bad": RenderError(
        "template echoed Resolved-Value-77 and https://user:Cred-Pass-88@host/x",
        source="apps/bad")})
    diff = diff_pairs(pair_apps([], specs), {}, after, policy=MaskPolicy(redactor=redactor))
    assert diff.exit_code == 2
    for fmt in ("text", "json", "markdown"):
        out = render(diff, fmt)  # type: ignore[arg-type]
        assert "Resolved-Value-77" not in out and "Cred-Pass-88" not in out
    assert "template echoed" in diff.apps[0].errors[0]
    assert "Resolved-Value-77" not in diff.apps[0].errors[0]


def test_two_objects_of_one_identity_fail_that_app_only() -> None:
    specs = [Spec("dup", "apps/dup"), Spec("ok", "apps/ok")]
    before = outcomes(specs, {"dup": [cm("c", "1")], "ok": [cm("o", "1")]})
    after = outcomes(specs, {"dup": [cm("c", "1"), cm("c", "2")], "ok": [cm("o", "1")]})
    diff = diff_pairs(pair_apps(specs, specs), before, after, policy=MaskPolicy())
    by = {a.name: a for a in diff.apps}
    assert by["dup"].state == "failed" and by["ok"].state == "unchanged"
    assert by["dup"].errors[0].startswith("apps/dup (Application dup) at both sides: ")
    assert "ConfigMap/ns/c" in by["dup"].errors[0]
    assert diff.exit_code == 2
