"""Helm values with Argo CD's semantics: value files, inline values, parameters, file parameters.

Order of application (later wins): the chart's ``values.yaml``, ``valueFiles`` in order,
``values`` or ``valuesObject`` (the object replaces the string when both are set), then
``parameters``/``fileParameters`` as ``--set``/``--set-string``/``--set-file``. Value-file paths
and parameter values are environment-substituted like Argo CD does (``$ARGOCD_APP_NAME``...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.core import argv
from kiln.core.envsubst import envsubst
from kiln.core.errors import InputError
from kiln.core.paths import confine, read_bytes_capped
from kiln.plugins.helm.command import escape_set_value

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.plugins.helm.options import HelmOptions

HCL_SUFFIXES = (".hcl", ".tfvars")
VALUE_FILE_MAX_BYTES = 64 << 20
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Values:
    """Resolved values: ``files`` in application order, ``sets`` as (flag, assignment) pairs,
    ``inputs`` every file read (value files and ``--set-file`` files)."""

    files: tuple[Path, ...]
    sets: tuple[tuple[str, str], ...]
    inputs: tuple[Path, ...]


def _resolve(app: App, raw: str, what: str) -> Path:
    option = "helm.valueFiles" if what == "value file" else "helm.fileParameters"
    text = argv.no_control(envsubst(raw, app.env), option, source=str(app.path))
    if "://" in text:
        raise InputError(f"remote {what}s are not supported: {text}", source=str(app.path))
    if not text:
        raise InputError(f"empty {what} path", source=str(app.path))
    # An absolute path means "from the top of the source root", as in Argo CD.
    base = app.root if os.path.isabs(text) else app.path
    return base / text.lstrip("/")


def value_files(app: App, opts: HelmOptions) -> list[Path]:
    """Value files in application order: globs expanded lexically, each confined to the root.

    A missing file (or a glob matching nothing) is an InputError unless
    ``ignoreMissingValueFiles``; a file outside the source root is always refused.
    """
    found: list[Path] = []
    for raw in opts.value_files:
        path = _resolve(app, raw, "value file")
        if GLOB_CHARS & set(str(path)):
            import glob

            matches = sorted(glob.glob(str(path), recursive=True))
            if not matches and not opts.ignore_missing_value_files:
                raise InputError(f"value file pattern {raw!r} matches no file",
                                 source=str(app.path))
            found.extend(confine(m, app.root, what="value file") for m in matches)
            continue
        real = confine(path, app.root, what="value file")
        if not real.is_file():
            if opts.ignore_missing_value_files:
                continue
            raise InputError("value file not found", source=str(path))
        found.append(real)
    return found


def set_flags(app: App, opts: HelmOptions) -> tuple[list[tuple[str, str]], list[Path]]:
    """``--set``/``--set-string``/``--set-file`` pairs, and the files ``--set-file`` reads."""
    sets: list[tuple[str, str]] = []
    files: list[Path] = []
    where = str(app.path)
    for index, param in enumerate(opts.parameters):
        argv.set_key(param.name, f"helm.parameters[{index}].name", source=where)
        value = param.value
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        text = argv.set_value(envsubst(text, app.env), f"helm.parameters[{index}].value",
                              source=where)
        text = escape_set_value(text)
        flag = "--set-string" if param.force_string else "--set"
        sets.append((flag, f"{param.name}={text}"))
    for index, fparam in enumerate(opts.file_parameters):
        argv.set_key(fparam.name, f"helm.fileParameters[{index}].name", source=where)
        path = confine(_resolve(app, fparam.path, "file parameter"), app.root,
                       what="file parameter")
        if not path.is_file():
            raise InputError(f"file parameter {fparam.name!r}: no such file", source=str(path))
        files.append(path)
        sets.append(("--set-file", f"{fparam.name}={path}"))
    return sets, files


def resolve_values(app: App, opts: HelmOptions) -> Values:
    """Resolve every values source of ``opts`` (no file is written)."""
    files = value_files(app, opts)
    sets, set_files = set_flags(app, opts)
    return Values(tuple(files), tuple(sets), tuple(files) + tuple(set_files))


def hcl_to_json(path: Path) -> str:
    """Convert an HCL / tfvars file to JSON text Helm reads as values (InputError if malformed)."""
    import hcl2

    text = read_bytes_capped(path, VALUE_FILE_MAX_BYTES).decode("utf-8", "replace")
    options = hcl2.SerializationOptions(
        with_comments=False, explicit_blocks=False, preserve_heredocs=False,
        strip_string_quotes=True,
    )
    try:
        data = hcl2.loads(text, serialization_options=options)
    except Exception as exc:  # noqa: BLE001 - the parser raises lark errors of many kinds
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"malformed HCL value file: {first}", source=str(path)) from None
    return json.dumps(data)


def materialise(values: Values, opts: HelmOptions, workdir: Callable[[], Path]) -> list[str]:
    """Write what Helm cannot read directly into ``workdir()``; return the ``--values`` paths.

    HCL files become JSON, ``values``/``valuesObject`` become one file applied after every
    value file. ``workdir()`` returns (creating it on first call) a private temporary
    directory the caller deletes; it is not called when nothing needs writing.
    """
    paths: list[str] = []
    for index, path in enumerate(values.files):
        if path.name.endswith(HCL_SUFFIXES):
            out = workdir() / f"hcl-{index}.json"
            out.write_text(hcl_to_json(path), encoding="utf-8")
            paths.append(str(out))
        else:
            paths.append(str(path))
    inline: str | None = None
    if opts.values_object is not None:
        inline = json.dumps(opts.values_object)
    elif opts.values.strip():
        inline = opts.values
    if inline is not None:
        out = workdir() / "inline-values.yaml"
        out.write_text(inline, encoding="utf-8")
        paths.append(str(out))
    return paths
