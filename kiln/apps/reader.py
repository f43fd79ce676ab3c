"""Find the Argo CD objects in a file or a directory tree.

A directory is walked recursively (hidden directories such as ``.git`` skipped, and the
``templates/`` directory of a Helm chart: those files are Go templates, not manifests) for
``*.yaml``, ``*.yml`` and ``*.json`` files, in sorted order, so the result is deterministic.
A file whose text does not mention ``argoproj.io`` cannot hold an Argo CD object and is not
parsed (so a directory may hold any other files). Every YAML document (or the JSON document)
of the others is looked at; ``kind: List`` (and
``ApplicationList``/``ApplicationSetList``) items count as documents. Only ``Application`` and
``ApplicationSet`` objects of ``argoproj.io/v1alpha1`` are returned: other kinds in the same
files are ignored. A file that is not valid YAML/JSON is an InputError naming it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.core.errors import InputError

API_VERSION = "argoproj.io/v1alpha1"
KINDS = ("Application", "ApplicationSet")
LIST_KINDS = ("List", "ApplicationList", "ApplicationSetList")
EXTENSIONS = (".yaml", ".yml", ".json")
MARKER = "argoproj.io"
"""Text every file holding an Argo CD object contains (its apiVersion)."""
MAX_FILE_BYTES = 16 << 20
"""Largest manifest file read (16 MiB)."""


@dataclass(frozen=True)
class Found:
    """One Application or ApplicationSet object and the file it is in."""

    kind: str
    doc: dict[str, Any]
    file: str


def manifest_files(target: Path) -> list[Path]:
    """``target`` itself when it is a file, else every manifest file below it, sorted by
    their path relative to ``target``. A missing target is an InputError."""
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise InputError("no such file or directory", source=str(target))
    found: list[Path] = []
    for directory, subdirs, files in os.walk(target):
        chart = "Chart.yaml" in files
        subdirs[:] = sorted(d for d in subdirs
                            if not d.startswith(".") and not (chart and d == "templates"))
        found.extend(Path(directory) / f for f in files if f.endswith(EXTENSIONS))
    return sorted(found, key=lambda p: p.relative_to(target).as_posix())


def argo_objects(target: Path) -> Iterator[Found]:
    """Every Application and ApplicationSet in ``target`` (see the module docstring)."""
    for path in manifest_files(target):
        for doc in _documents(path):
            yield from _objects(doc, str(path))


def _documents(path: Path) -> list[Any]:
    from kiln.core.manifests import load_json, load_yaml_documents

    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(f"larger than {MAX_FILE_BYTES} bytes", source=source)
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=source) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", source=source) from None
    if MARKER not in text:
        return []
    if path.suffix == ".json":
        return [load_json(text, source)]
    return list(load_yaml_documents(text, source))


def _objects(doc: Any, file: str) -> Iterator[Found]:
    if not isinstance(doc, dict):
        return
    kind = doc.get("kind")
    if kind in LIST_KINDS and isinstance(doc.get("items"), list):
        for item in doc["items"]:
            yield from _objects(item, file)
        return
    if kind in KINDS and doc.get("apiVersion") == API_VERSION:
        yield Found(str(kind), doc, file)
