"""What a YAML text means to Argo CD, told by helm: an oracle independent of kiln's parser.

Argo CD reads manifests with sigs.k8s.io/yaml; helm's ``fromYaml`` is that same function. A
throw-away chart whose template prints ``{{ .Files.Get "docs/<name>.yaml" | fromYaml | toJson }}``
for every document therefore gives each document's meaning as JSON, or ``{"Error": ...}`` where
Argo CD would refuse it. helm's own output is a ConfigMap of base64 strings, so reading it with
plain PyYAML involves no ambiguous scalar.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.helm.servers import helm_env
from tests.helpers import tool

TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: oracle
data:
{{- range $path, $_ := .Files.Glob "docs/*.yaml" }}
  {{ base $path | trimSuffix ".yaml" }}: {{ $.Files.Get $path | fromYaml | toJson | b64enc
     | quote }}
{{- end }}
"""
SEPARATOR = re.compile(r"^---[ \t]*(?:#.*)?$", re.MULTILINE)
"""A document separator line, as Kubernetes' YAML reader splits a stream."""


def argo_read(texts: dict[str, str], work: Path | None = None) -> dict[str, Any]:
    """Each text's meaning to Argo CD, by name (names sort the way they were given), from one
    helm run."""
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        chart = Path(tmp) / "oracle"
        (chart / "templates").mkdir(parents=True)
        (chart / "docs").mkdir()
        (chart / "Chart.yaml").write_text("apiVersion: v2\nname: oracle\nversion: 0.1.0\n")
        (chart / "templates" / "oracle.yaml").write_text(TEMPLATE)
        for name, text in texts.items():
            (chart / "docs" / f"{name}.yaml").write_text(text, encoding="utf-8")
        out = subprocess.run([tool("helm"), "template", "oracle", str(chart)], check=True,
                             capture_output=True, text=True,
                             env=helm_env(Path(tmp) / "home")).stdout
    data = yaml.safe_load(out)["data"] or {}
    assert set(data) == set(texts)
    return {name: json.loads(base64.b64decode(data[name])) for name in texts}


def argo_objects(stream: str) -> list[dict[str, Any]]:
    """The objects Argo CD reads from a multi-document stream (empty documents dropped); fails
    the test if Argo CD would refuse a document."""
    docs = {f"d{i:05d}": doc for i, doc in enumerate(SEPARATOR.split(stream))}
    meaning = argo_read(docs)
    objects = [obj for obj in meaning.values() if obj]
    refused = [obj for obj in objects if set(obj) == {"Error"}]
    assert refused == [], refused
    return objects
