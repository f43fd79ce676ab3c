"""What ``kiln cmp parameters`` announces for a kustomization, read from the file (no tool
runs): images, namespace, name prefix/suffix, common labels/annotations and components."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kiln.core.faces import parameter_text
from kiln.core.manifests import read_yaml_mapping

KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def announce(app_dir: Path) -> dict[str, Any]:
    """``{parameter name: current value}`` for the kustomization in ``app_dir``."""
    path = next((app_dir / n for n in KUSTOMIZATIONS if (app_dir / n).is_file()), None)
    if path is None:
        return {}
    data = read_yaml_mapping(path, app_dir)
    out: dict[str, Any] = {}
    images = [_image(item) for item in data.get("images") or [] if isinstance(item, dict)]
    images = [image for image in images if image]
    if images:
        out["kustomize-images"] = images
    for param, key in (("kustomize-namespace", "namespace"),
                       ("kustomize-name-prefix", "namePrefix"),
                       ("kustomize-name-suffix", "nameSuffix")):
        if isinstance(data.get(key), str) and data[key]:
            out[param] = data[key]
    for param, key in (("kustomize-common-labels", "commonLabels"),
                       ("kustomize-common-annotations", "commonAnnotations")):
        if isinstance(data.get(key), dict) and data[key]:
            out[param] = {str(k): parameter_text(v) for k, v in data[key].items()}
    components = [c for c in data.get("components") or [] if isinstance(c, str)]
    if components:
        out["kustomize-components"] = components
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
