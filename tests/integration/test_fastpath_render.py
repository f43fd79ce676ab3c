"""The start-up-free hit for a repeated ``kiln render PATH`` (kiln.cmp.fastpath via kiln.entry).

A stand-in ``click`` package that fails on import is put first on PYTHONPATH for the repeat
runs: when the memo answers, the output is identical and click is never imported; when it must
not answer (a changed input, a new file, a reference a resolver would look at, an unsupported
flag), the run falls through to the real CLI and breaks on the stand-in — which is how these
tests see which path ran. ``KILN_DEBUG_FASTPATH=1`` makes the fast path say why it refused,
and every refusal is asserted with its reason next to a served repeat.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.cmp.fastpath import Request, request_for
from tests.helpers import REPO

pytestmark = pytest.mark.integration

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\ndata:\n  v: '{}'\n"


def kiln(args: list[str], *, poisoned: Path | None = None,
         extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = f"{poisoned}{os.pathsep}{REPO}" if poisoned else str(REPO)
    env = {**os.environ, "PYTHONPATH": path, "KILN_DEBUG_FASTPATH": "1", **(extra or {})}
    env.pop("ARGOCD_APP_NAME", None)
    return subprocess.run([sys.executable, "-m", "kiln", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def decision(proc: subprocess.CompletedProcess[str]) -> str:
    """What the fast path said: ``hit`` or ``miss: <reason>`` (or "" when it was off)."""
    for line in proc.stderr.splitlines():
        if line.startswith("kiln: fastpath: ") and not line.startswith(
                ("kiln: fastpath: recorded", "kiln: fastpath: not recorded")):
            return line[len("kiln: fastpath: "):]
    return ""


def recorded(proc: subprocess.CompletedProcess[str]) -> str:
    """What the normal path said about the memo: ``recorded`` or ``not recorded: <reason>``."""
    for line in proc.stderr.splitlines():
        if line.startswith(("kiln: fastpath: recorded", "kiln: fastpath: not recorded")):
            return line[len("kiln: fastpath: "):]
    return ""


@pytest.fixture
def poison(tmp_path: Path) -> Path:
    path = tmp_path / "poison"
    (path / "click").mkdir(parents=True)
    (path / "click" / "__init__.py").write_text("raise ImportError('click was imported')\n")
    return path


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    (path / "a.yaml").write_text(CM.format("a", "1"))
    return path


def test_repeat_is_served_and_changes_are_not(app: Path, cache_dir: Path, poison: Path) -> None:
    args = ["render", str(app), "--cache-dir", str(cache_dir)]
    first = kiln(args)
    assert first.returncode == 0, first.stderr
    assert decision(first) == "miss: no memo for this request"
    assert recorded(first) == "recorded"
    served = kiln(args, poisoned=poison)
    assert served.returncode == 0, served.stderr
    assert served.stdout == first.stdout and decision(served) == "hit"
    (app / "a.yaml").write_text(CM.format("a", "2"))  # a changed input
    refused = kiln(args, poisoned=poison)
    assert refused.returncode != 0 and decision(refused) == "miss: input a.yaml changed"
    again = kiln(args)
    assert again.returncode == 0 and "v: '2'" in again.stdout
    assert kiln(args, poisoned=poison).stdout == again.stdout
    (app / "b.yaml").write_text(CM.format("b", "3"))  # a new file in the tree
    refused = kiln(args, poisoned=poison)
    assert refused.returncode != 0 and decision(refused).startswith(
        "miss: the source tree changed")
    assert "name: b" in kiln(args).stdout


def test_output_format_is_part_of_the_request(app: Path, cache_dir: Path,
                                              poison: Path) -> None:
    yaml_args = ["render", str(app), "--cache-dir", str(cache_dir)]
    json_args = [*yaml_args, "-o", "json"]
    kiln(yaml_args)
    assert decision(kiln(yaml_args)) == "hit"  # positive control
    refused = kiln(json_args, poisoned=poison)  # never answered with YAML
    assert refused.returncode != 0 and decision(refused) == "miss: no memo for this request"
    first = kiln(json_args)
    assert kiln(json_args, poisoned=poison).stdout == first.stdout
    assert first.stdout.lstrip().startswith("[")


def test_references_are_never_memoised(app: Path, cache_dir: Path, poison: Path) -> None:
    """A placeholder printed as-is (no backend configured) must not be served later, when a
    backend may have been configured: the memo is refused for anything a resolver looks at."""
    (app / "s.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s\n"
                                "data:\n  pw: <path:secret/data/app#pw>\n")
    args = ["render", str(app), "--cache-dir", str(cache_dir)]
    first = kiln(args)
    assert first.returncode == 0 and "<path:secret/data/app#pw>" in first.stdout
    assert recorded(first).startswith("not recorded: the output may hold references for ")
    refused = kiln(args, poisoned=poison)
    assert refused.returncode != 0 and decision(refused) == "miss: no memo for this request"
    (app / "s.yaml").unlink()  # positive control: without the reference it is memoised
    assert recorded(kiln(args)) == "recorded"
    assert decision(kiln(args, poisoned=poison)) == "hit"


def test_other_flags_and_switch_off_take_the_normal_path(app: Path, cache_dir: Path,
                                                        poison: Path) -> None:
    args = ["render", str(app), "--cache-dir", str(cache_dir), "--recurse"]
    assert kiln(args).returncode == 0
    refused = kiln(args, poisoned=poison)
    assert refused.returncode != 0 and decision(refused) == "miss: not a memoisable request"
    plain = ["render", str(app), "--cache-dir", str(cache_dir)]
    assert kiln(plain).returncode == 0
    assert decision(kiln(plain, poisoned=poison)) == "hit"  # positive control
    off = kiln(plain, poisoned=poison, extra={"KILN_CMP_FASTPATH": "0"})
    assert off.returncode != 0 and off.stdout == "" and decision(off) == ""


def test_request_shapes(tmp_path: Path) -> None:
    env = {"KILN_CACHE_DIR": str(tmp_path / "c")}
    req = request_for(["render", "app", "--cache-dir=x", "-o", "json"], env, cwd=tmp_path)
    assert req == Request(tmp_path / "app", ("render", "--output", "json"), tmp_path / "x")
    assert request_for(["render", "app"], env, cwd=tmp_path) == Request(
        tmp_path / "app", ("render",), tmp_path / "c")
    for args in (["render"], ["render", "-n", "x", "app"], ["render", "app", "--debug"],
                 ["render", "app", "--no-cache"], ["render", "app", "--cache-dir"],
                 ["generate", "."], ["generate", "app"], ["cache", "stats"]):
        assert request_for(args, env, cwd=tmp_path) is None, args
    cmp = request_for(["generate", "."], {**env, "ARGOCD_APP_NAME": "web"}, cwd=tmp_path)
    assert cmp == Request(tmp_path, ("generate", "."), tmp_path / "c")


def test_a_huge_source_tree_is_not_memoised(tmp_path: Path) -> None:
    """Walking a very large tree on every repeat would cost more than the memo saves."""
    from kiln.cmp.fastpath import TreeTooLarge, tree_digest

    for i in range(30):
        (tmp_path / f"f{i}").write_text("x")
    assert len(tree_digest(tmp_path, limit=100)) == 64
    with pytest.raises(TreeTooLarge):
        tree_digest(tmp_path, limit=10)


def test_an_empty_render_is_never_memoised(tmp_path: Path, cache_dir: Path) -> None:
    """An empty stream makes Argo CD prune the app: it is an error unless allowed, and even
    allowed it is never served from a memo (a later kiln.yaml without allowEmpty must fail)."""
    app = tmp_path / "empty"
    app.mkdir()
    (app / "kiln.yaml").write_text("allowEmpty: true\n")
    args = ["render", str(app), "--cache-dir", str(cache_dir)]
    first = kiln(args)
    assert first.returncode == 0 and first.stdout == "", first.stderr
    assert recorded(first) == "not recorded: the render has no object"
    assert decision(kiln(args)) == "miss: no memo for this request"
    (app / "a.yaml").write_text(CM.format("a", "1"))  # positive control: not empty
    assert recorded(kiln(args)) == "recorded"
    assert decision(kiln(args)) == "hit"
