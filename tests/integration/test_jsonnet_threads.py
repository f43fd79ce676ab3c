"""Jsonnet apps rendered by several threads at once (``kiln render A B -j 2``): the worker is
then spawned, not forked, and must find kiln however it was installed — including an editable
install, whose import hook ``python -S`` leaves out. The kiln process here gets no PYTHONPATH,
so it imports kiln the way a user's shell would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_tree

pytestmark = pytest.mark.integration


def test_jsonnet_apps_render_on_several_threads_without_pythonpath(tmp_path: Path) -> None:
    names = [f"j{i}" for i in range(4)]
    for name in names:
        write_tree(tmp_path / "repo" / name, {
            "kiln.yaml": "type: jsonnet\n",
            "main.jsonnet": "{apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: '"
                            + name + "'}, data: {n: std.toString(6 * 7)}}\n",
        })
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-m", "kiln", "render", *names, "-j", "2", "-o", "json",
         "--source-root", str(tmp_path / "repo"), "--cache-dir", str(tmp_path / "cache")],
        cwd=tmp_path / "repo", env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    apps = json.loads(proc.stdout)["apps"]
    got = {app["path"]: app["objects"] for app in apps}
    assert got == {name: [{"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": name}, "data": {"n": "42"}}]
                   for name in names}
