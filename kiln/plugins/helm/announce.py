"""What ``kiln cmp parameters`` announces for a Helm chart, read from its files (no tool runs):
the release name, the value files in the chart directory and the chart's values flattened to
``--set`` paths."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kiln.core.faces import parameter_text
from kiln.core.manifests import read_yaml_mapping

MAX_VALUES = 1000
VALUES_EXTENSIONS = (".yaml", ".yml")


def announce(app_dir: Path, release: str) -> dict[str, Any]:
    """``{parameter name: current value}`` for the chart in ``app_dir``."""
    out: dict[str, Any] = {"helm-release-name": release}
    value_files = sorted(
        entry.name for entry in app_dir.iterdir()
        if entry.is_file() and "values" in entry.name and entry.name.endswith(VALUES_EXTENSIONS)
    )
    if value_files:
        out["helm-values-files"] = value_files
    values_path = app_dir / "values.yaml"
    if values_path.is_file():
        flat: dict[str, str] = {}
        _flatten(read_yaml_mapping(values_path, app_dir), "", flat)
        out["helm-parameters"] = flat
    return out


def _flatten(value: Any, prefix: str, out: dict[str, str]) -> None:
    """Flatten values into Helm ``--set`` paths (``a.b``, ``list[0]``; dots in keys escaped),
    scalars rendered as Helm reads them back, nulls left out; at most MAX_VALUES entries."""
    if len(out) >= MAX_VALUES:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = str(key).replace(".", "\\.")
            _flatten(item, f"{prefix}.{name}" if prefix else name, out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}[{index}]", out)
    elif prefix and value is not None:  # `--set a=null` deletes a key: not a default
        out[prefix] = parameter_text(value)
