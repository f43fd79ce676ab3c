"""Per-app parameter announcements for Argo CD's UI (``kiln cmp parameters``).

Argo CD runs ``parameters.dynamic`` in the app directory and shows the JSON list it prints
(a ``ParameterAnnouncement`` list) in the app's Parameters tab, before the static ones. kiln
announces what it can see in the files, without running any tool:

- Helm chart: the value files in the chart directory (``helm-values-files``), the chart's
  values flattened to ``--set`` paths (``helm-parameters``) and the release name.
- Kustomize: the kustomization's images, namespace, name prefix/suffix, components and labels.
- Jsonnet: the entry file (``jsonnet-main``).
- Plain directory: nothing beyond the static announcements.
- Any renderer: each parameter it declares with ``announce=True``
  (:class:`kiln.core.faces.Parameter`), with the app's current value of its option.

The kind is the engine's one detection (:func:`kiln.cmp.detect.detect`), the same answer
``kiln generate`` and ``kiln cmp discover`` get for the directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kiln.cmp.detect import detect
from kiln.cmp.environment import app_name
from kiln.cmp.parameters import ParamSpec, announcement, table_of
from kiln.core.faces import faces_of
from kiln.core.manifests import load_yaml_documents
from kiln.core.paths import confine, read_bytes_capped

MAX_FILE_BYTES = 4 << 20
MAX_VALUES = 1000
VALUES_EXTENSIONS = (".yaml", ".yml")
KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def announcements(app_dir: Path, env: Mapping[str, str]) -> list[dict[str, Any]]:
    """The dynamic announcements for the app in ``app_dir`` (``[]`` when there is nothing
    app-specific to say). Raises InputError/ConfigError on an unreadable or malformed file."""
    app_dir = Path(os.path.abspath(app_dir))
    if not app_dir.is_dir():
        return []
    found = detect(app_dir, env)
    rows = {row.name: row for row in table_of(found.engine.plugins)}
    kind = found.kind
    out: list[dict[str, Any]] = []
    if kind == "helm":
        out = _helm(app_dir, env, rows)
    elif kind == "kustomize":
        out = _kustomize(app_dir, rows)
    elif kind == "jsonnet":
        out = _jsonnet(app_dir, rows)
    said = {entry["name"] for entry in out}
    options = found.app.identity()["options"]
    for param in faces_of(found.renderer, found.engine.plugins.renderers).parameters:
        if param.announce and param.name not in said:
            out.append(_announce(param, _current(options, param)))
    return out


def _current(options: Mapping[str, Any], param: ParamSpec) -> Any:
    """The app's value of the parameter's option, as the parameter spells it ("" / [] / {}
    when unset)."""
    value: Any = options
    for part in param.path:
        value = value.get(part) if isinstance(value, dict) else None
    empty: dict[str, Any] = {"string": "", "array": [], "map": {}}
    if value is None:
        return empty[param.collection]
    if param.collection == "string":
        return _scalar(value)
    if param.collection == "array" and isinstance(value, list):
        return [_scalar(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _scalar(v) for k, v in value.items()}
    return empty[param.collection]


def kustomization_file(app_dir: Path) -> Path | None:
    """The kustomization file in ``app_dir``, if any (Argo CD's three accepted names)."""
    for name in KUSTOMIZATIONS:
        if (app_dir / name).is_file():
            return app_dir / name
    return None


def _announce(spec: ParamSpec, value: Any) -> dict[str, Any]:
    entry = announcement(spec)
    entry[entry["collectionType"]] = value
    return entry


# -- helm --------------------------------------------------------------------------------------

def _helm(app_dir: Path, env: Mapping[str, str],
          rows: Mapping[str, ParamSpec]) -> list[dict[str, Any]]:
    out = [_announce(rows["helm-release-name"], app_name(env.get("ARGOCD_APP_NAME", ""))
                     or app_dir.name)]
    value_files = sorted(
        entry.name for entry in app_dir.iterdir()
        if entry.is_file() and "values" in entry.name and entry.name.endswith(VALUES_EXTENSIONS)
    )
    if value_files:
        out.append(_announce(rows["helm-values-files"], value_files))
    values_path = app_dir / "values.yaml"
    if values_path.is_file():
        data = _load_mapping(values_path, app_dir)
        flat: dict[str, str] = {}
        _flatten(data, "", flat)
        out.append(_announce(rows["helm-parameters"], flat))
    return out


def _flatten(value: Any, prefix: str, out: dict[str, str]) -> None:
    """Flatten values into Helm ``--set`` paths (``a.b``, ``list[0]``; dots in keys escaped),
    scalars rendered as Helm reads them back, nulls left out; at most MAX_VALUES entries."""
    if len(out) >= MAX_VALUES:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            name = str(key).replace(".", "\\.")
            _flatten(item, f"{prefix}.{name}" if prefix else name, out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}[{index}]", out)
    elif prefix and value is not None:  # `--set a=null` deletes a key: not a default
        out[prefix] = _scalar(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- kustomize ---------------------------------------------------------------------------------

def _kustomize(app_dir: Path, rows: Mapping[str, ParamSpec]) -> list[dict[str, Any]]:
    path = kustomization_file(app_dir)
    if path is None:
        return []
    data = _load_mapping(path, app_dir)
    out: list[dict[str, Any]] = []
    images = [_image(item) for item in data.get("images") or [] if isinstance(item, dict)]
    images = [image for image in images if image]
    if images:
        out.append(_announce(rows["kustomize-images"], images))
    for param, key in (("kustomize-namespace", "namespace"),
                       ("kustomize-name-prefix", "namePrefix"),
                       ("kustomize-name-suffix", "nameSuffix")):
        if isinstance(data.get(key), str) and data[key]:
            out.append(_announce(rows[param], data[key]))
    for param, key in (("kustomize-common-labels", "commonLabels"),
                       ("kustomize-common-annotations", "commonAnnotations")):
        if isinstance(data.get(key), dict) and data[key]:
            out.append(_announce(rows[param], {str(k): _scalar(v)
                                               for k, v in data[key].items()}))
    components = [c for c in data.get("components") or [] if isinstance(c, str)]
    if components:
        out.append(_announce(rows["kustomize-components"], components))
    return out


def _image(item: Mapping[str, Any]) -> str:
    """A kustomization ``images`` entry in ``kustomize edit set image`` form
    (``name=newName:newTag``, ``name:newTag``, ``name@digest``...)."""
    name = item.get("name")
    if not isinstance(name, str) or not name:
        return ""
    new_name, tag, digest = item.get("newName"), item.get("newTag"), item.get("digest")
    text = f"{name}={new_name}" if new_name else name
    if digest:
        return f"{text}@{digest}"
    if tag is not None and tag != "":
        return f"{text}:{tag}"
    return text if new_name else ""


# -- jsonnet -----------------------------------------------------------------------------------

def _jsonnet_files(app_dir: Path) -> list[str]:
    return sorted(e.name for e in app_dir.iterdir() if e.is_file() and e.name.endswith(".jsonnet"))


def _jsonnet(app_dir: Path, rows: Mapping[str, ParamSpec]) -> list[dict[str, Any]]:
    files = _jsonnet_files(app_dir)
    if not files:
        return []
    main = "main.jsonnet" if "main.jsonnet" in files else files[0]
    return [_announce(rows["jsonnet-main"], main)]


# -- files -------------------------------------------------------------------------------------

def _load_mapping(path: Path, app_dir: Path) -> dict[str, Any]:
    """The first YAML document of ``path`` if it is a mapping, else {} (read capped and
    confined to the app directory)."""
    real = confine(path, app_dir)
    data = read_bytes_capped(real, MAX_FILE_BYTES)
    text = data.decode("utf-8", errors="replace")
    for doc in load_yaml_documents(text, str(path)):
        return doc if isinstance(doc, dict) else {}
    return {}
