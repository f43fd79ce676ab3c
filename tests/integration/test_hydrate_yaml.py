"""``manifest.yaml`` read back by a Go YAML reader gives exactly the objects written.

The reader is Helm's ``fromYaml`` (sigs.k8s.io/yaml over go-yaml, what Argo CD and kubectl read
manifests with), run by the real ``helm template`` on a chart that splits the hydrated file
into documents and prints each one back as JSON; the objects are generated (hypothesis: any
keys, strings with quotes, colons, newlines, leading spaces, unicode, control characters, look-
alikes of numbers, booleans and dates, nested lists and maps, integers and floats).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kiln.hydrate.manifest import dump_manifests
from tests.fixtures.helm.servers import helm_env
from tests.helpers import tool, write_tree

pytestmark = pytest.mark.integration

TEMPLATE = """\
{{- range $i, $doc := regexSplit "(?m)^---\\n" (.Files.Get "m.yaml") -1 }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: doc-{{ $i }}
data:
  json: {{ $doc | fromYaml | toJson | quote }}
{{- end }}
"""

TRICKY = st.sampled_from(["yes", "no", "on", "off", "y", "n", "true", "null", "~", "", "1",
                          "0x1F", "017", "0o17", "1_000", "1e3", ".5", "-.inf", ".nan",
                          "2024-01-31", "2024-13-45", "12:30", "1:2:3", "<<", "=", "- a",
                          "a: b", "a #b", "#c", " lead", "trail ", "'q'", '"d"', "x\ny",
                          "x\n", "\n", "x\n\n", "  indented\nblock", "tab\there", "|", ">",
                          "{a}", "[b]", "@at", "`tick", "%p", "!bang", "&a", "*b", "?", ":",
                          "é", "\u2028", "\x07bell", "\ufeffbom"])
TEXT = st.one_of(TRICKY, st.text(st.characters(blacklist_categories=("Cs",)), max_size=30))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 62), 1 << 62),
                    st.floats(allow_nan=False, allow_infinity=False), TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=20)
OBJECTS = st.lists(st.dictionaries(TEXT, VALUES, min_size=1, max_size=6), min_size=1,
                   max_size=30)


def go_read(chart: Path, home: Path, data: bytes) -> list[Any]:
    (chart / "m.yaml").write_bytes(data)
    proc = subprocess.run([tool("helm"), "template", "t", str(chart)], capture_output=True,
                          text=True, env=helm_env(home), timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return [json.loads(d["data"]["json"]) for d in docs]


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reader")
    write_tree(root, {"Chart.yaml": "apiVersion: v2\nname: reader\nversion: 0.1.0\n"})
    (root / "templates").mkdir()
    (root / "templates/docs.yaml").write_text(TEMPLATE)
    return root


def numbers_as_floats(value: Any) -> Any:
    """``value`` with every number a float: Go's JSON writes an integral float as an integer,
    so 5.2e16 comes back as the integer 52295670668484230, equal as a float only."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [numbers_as_floats(v) for v in value]
    return {k: numbers_as_floats(v) for k, v in value.items()}


# no shrinking: each example is one helm run, and a failure prints its objects anyway
@settings(max_examples=8, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(objects=OBJECTS)
def test_go_reads_back_the_objects(objects: list[dict[str, Any]], chart: Path,
                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    data = dump_manifests(objects)
    back = go_read(chart, tmp_path_factory.mktemp("home"), data)
    assert numbers_as_floats(back) == numbers_as_floats(objects)
