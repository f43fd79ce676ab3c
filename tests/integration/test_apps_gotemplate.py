"""kiln's Go-template subset against Go's own text/template and Sprig, as helm runs them.

Helm evaluates templates with Go's text/template and the Sprig functions Argo CD's
ApplicationSet controller also uses; its ``tpl`` function renders a template string over a
given value. A chart whose ConfigMap holds ``tpl`` of many generated templates over the same
parameters is therefore an oracle independent of kiln. (Helm prints a missing key as '' where
Argo CD prints ``<no value>``; the generated templates reference existing keys only.)
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest
import yaml

from kiln.apps.templating import TemplateError, render_go
from tests.fixtures.helm.servers import helm_env
from tests.helpers import tool

pytestmark = pytest.mark.integration

PARAMS = {"a": "Xy", "n": 3, "f": 1.5, "big": 12.0, "t": True, "w": " a-b-c ",
          "path": {"path": "apps/team-a/web", "basename": "web",
                   "segments": ["apps", "team-a", "web"]},
          "values": {"env": "prod"}}
OPERANDS = [".a", ".n", ".f", ".big", ".t", ".w", ".path.path", ".path.basename",
            ".values.env", "(index .path.segments 0)", "(index .path.segments 2)",
            '(index .values "env")', '"lit-Eral"', "7"]
FUNCTIONS = ["lower", "upper", "trim", 'replace "-" "_"', "trunc 4", "trunc -2",
             'trimPrefix " a"', 'trimSuffix "c "', 'default "dflt"', 'printf "<%s>"']
CHART = """apiVersion: v1
kind: ConfigMap
metadata: {name: oracle}
data:
{{- range $i, $t := .Values.templates }}
  t{{ $i }}: {{ tpl $t $.Values.params | toJson }}
{{- end }}
"""


def generated(count: int, seed: int = 16) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.3:
                parts.append(rng.choice(["x", " ", "-", "a b", "\n"]))
                continue
            pipeline = rng.choice(OPERANDS)
            for _ in range(rng.randint(0, 2)):
                function = rng.choice(FUNCTIONS)
                pipeline = (f"{function} {pipeline}" if rng.random() < 0.5
                            else f"{pipeline} | {function}")
            left = rng.choice(["{{ ", "{{- ", "{{"])
            right = rng.choice([" }}", " -}}", "}}"])
            parts.append(f"{left}{pipeline}{right}")
        out.append("".join(parts))
    return out


def helm_tpl(tmp_path: Path, templates: list[str]) -> subprocess.CompletedProcess[str]:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: oracle\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(CHART)
    values = tmp_path / "values.json"
    values.write_text(json.dumps({"params": PARAMS, "templates": templates}))
    return subprocess.run([tool("helm"), "template", "oracle", str(chart), "-f", str(values)],
                          capture_output=True, text=True, env=helm_env(tmp_path / "home"),
                          check=False)


def test_go_template_subset_matches_go(tmp_path: Path) -> None:
    accepted: dict[str, str] = {}
    for text in generated(400):
        try:
            accepted[text] = render_go(text, PARAMS)
        except TemplateError:
            continue  # refused: kiln does not guess; Go may or may not accept it
    assert len(accepted) >= 150  # the generator mostly stays inside the subset
    templates = list(accepted)
    proc = helm_tpl(tmp_path, templates)
    # every template kiln evaluates, Go evaluates too (else helm names the first it refused)
    assert proc.returncode == 0, proc.stderr
    expected = yaml.safe_load(proc.stdout)["data"]
    for index, text in enumerate(templates):
        assert accepted[text] == expected[f"t{index}"], text


def test_go_refuses_what_kiln_refuses_for_types(tmp_path: Path) -> None:
    """String functions of a number or a boolean: Go's error, and kiln's."""
    for text in ("{{ lower .n }}", "{{ .t | upper }}", '{{ replace "-" "_" .f }}'):
        with pytest.raises(TemplateError):
            render_go(text, PARAMS)
        assert helm_tpl(tmp_path, [text]).returncode != 0, text
    # printf %s of a number: Go prints its own error text, which kiln refuses to imitate
    with pytest.raises(TemplateError):
        render_go('{{ printf "%s" .n }}', PARAMS)
    proc = helm_tpl(tmp_path, ['{{ printf "%s" .n }}'])
    assert yaml.safe_load(proc.stdout)["data"]["t0"] == "%!s(float64=3)"
