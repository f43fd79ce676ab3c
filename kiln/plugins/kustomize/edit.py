"""Argo CD's ``kustomize edit`` steps, applied to a parsed kustomization instead of the checkout.

Argo CD runs ``kustomize edit set nameprefix|namesuffix|image|replicas``, ``edit add
label|annotation``, ``edit set namespace``, appends ``patches`` and runs ``edit add component``
inside the app directory, in that order, then builds. :func:`apply_edits` makes the same changes,
with the same merge rules and the same refusals, to a copy of the kustomization held in memory;
the caller writes it into kiln's private build tree, never into the app.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kiln.core import argv
from kiln.core.envsubst import envsubst
from kiln.core.errors import ConfigError, InputError
from kiln.core.manifests import load_yaml_documents
from kiln.plugins.kustomize.options import KustomizeOptions, Patch

PRESERVE = "*"


def apply_edits(data: dict[str, Any], opts: KustomizeOptions, env: Mapping[str, str],
                app_dir: Path, kfile_name: str) -> dict[str, Any]:
    """Return ``data`` changed as Argo CD's ``kustomize edit`` commands would change the file.

    ``env`` is the build environment for substitution (images, labels, and annotations when
    ``commonAnnotationsEnvsubst``); ``app_dir`` is where component globs are matched. Invalid
    option values raise ConfigError, as the edit command would fail.
    """
    out = dict(data)
    if opts.name_prefix:
        out["namePrefix"] = opts.name_prefix
    if opts.name_suffix:
        out["nameSuffix"] = opts.name_suffix
    if opts.images:
        images = [argv.image(envsubst(i, env), f"kustomize.images[{n}]")
                  for n, i in enumerate(opts.images)]
        out["images"] = merge_images(_list(out, "images") + _list(out, "imageTags"), images)
        out.pop("imageTags", None)
    if opts.replicas:
        out["replicas"] = merge_replicas(_list(out, "replicas"), opts)
    if opts.common_labels:
        values = {k: envsubst(v, env) for k, v in opts.common_labels.items()}
        _add_labels(out, values, opts)
    if opts.common_annotations:
        values = dict(opts.common_annotations)
        if opts.common_annotations_envsubst:
            values = {k: envsubst(v, env) for k, v in values.items()}
        pairs = _as_edit_args(values, "annotation")
        for key in pairs:
            argv.qualified_name(key, "kustomize.commonAnnotations key")
        target = _mapping(out, "commonAnnotations")
        _write(target, pairs, opts.force_common_annotations, "annotation")
        out["commonAnnotations"] = target
    if opts.namespace:
        out["namespace"] = argv.dns_label(opts.namespace, "kustomize.namespace")
    if opts.patches:
        existing = out.get("patches")
        if existing is not None and not isinstance(existing, list):
            raise ConfigError("expected 'patches' in the kustomization to be a list")
        added = [_patch_dict(p, i) for i, p in enumerate(opts.patches)]
        out["patches"] = [*(existing or []), *added]
    if opts.components:
        _add_components(out, opts, app_dir, kfile_name)
    return out


def split_image(image: str) -> tuple[str, str, str]:
    """Split ``name[:tag][@digest]`` like kustomize (a ``:`` before the first ``/`` is a port)."""
    slash = image.find("/")
    offset = slash if slash > 0 else 0
    search = image[offset:]
    at, colon = search.find("@"), search.find(":")
    if colon < 0 and at < 0:
        return image, "", ""
    if at >= 0 and (at < colon or colon < 0):
        return image[:at + offset], "", image[at + offset + 1:]
    if at >= 0 and colon >= 0:
        return image[:colon + offset], image[colon + offset + 1:at + offset], \
            image[at + offset + 1:]
    return image[:colon + offset], image[colon + offset + 1:], ""


def parse_image_arg(arg: str) -> dict[str, str]:
    """Parse one ``edit set image`` argument into a kustomize ``images`` entry."""
    key, sep, value = arg.partition("=")
    if not sep:
        key, value = "", arg
    name, tag, digest = split_image(value)
    if name == arg:
        raise ConfigError(f"kustomize.images: invalid image {arg!r} (use NAME:TAG, NAME@DIGEST, "
                          "NAME=NEWNAME[:TAG][@DIGEST])")
    entry = {"name": name} if not key else {"name": key, "newName": name}
    if tag:
        entry["newTag"] = tag
    if digest:
        entry["digest"] = digest
    return entry


def merge_images(existing: list[Any], args: list[str]) -> list[dict[str, Any]]:
    """Merge ``args`` into ``existing`` images like ``edit set image`` (``*`` keeps a field)."""
    wanted: dict[str, dict[str, Any]] = {}
    for arg in args:
        entry = parse_image_arg(arg)
        wanted[entry["name"]] = entry
    for old in existing:
        if not isinstance(old, dict) or "name" not in old:
            continue
        new = wanted.get(old["name"])
        if new is None:
            wanted[old["name"]] = dict(old)
            continue
        for field in ("newName", "newTag", "digest"):
            if new.get(field) == PRESERVE:
                _set_or_drop(new, field, old.get(field))
    result = []
    for entry in wanted.values():
        for field in ("newName", "newTag", "digest"):
            if entry.get(field) == PRESERVE:
                entry.pop(field)
        result.append(entry)
    return sorted(result, key=lambda e: str(e["name"]))


def merge_replicas(existing: list[Any], opts: KustomizeOptions) -> list[dict[str, Any]]:
    """Merge the option's replicas into ``existing`` like ``edit set replicas``, sorted by name."""
    wanted: dict[str, dict[str, Any]] = {}
    for rep in opts.replicas:
        count = rep.count
        if isinstance(count, str):
            try:
                count = int(count.strip())
            except ValueError:
                raise ConfigError(f"kustomize.replicas: count {rep.count!r} of {rep.name!r} is "
                                  "not an integer") from None
        wanted[rep.name] = {"name": rep.name, "count": count}
    for old in existing:
        if isinstance(old, dict) and old.get("name") not in wanted:
            wanted[str(old.get("name"))] = old
    return sorted(wanted.values(), key=lambda e: str(e["name"]))


def _add_labels(out: dict[str, Any], values: dict[str, str], opts: KustomizeOptions) -> None:
    if opts.label_include_templates and not opts.label_without_selector:
        raise ConfigError("kustomize.labelIncludeTemplates needs labelWithoutSelector")
    pairs = _as_edit_args(values, "label")
    for key, value in pairs.items():
        argv.qualified_name(key, "kustomize.commonLabels key")
        argv.label_value(value, f"kustomize.commonLabels[{key}]")
    if not opts.label_without_selector:
        target = _mapping(out, "commonLabels")
        _write(target, pairs, opts.force_common_labels, "label")
        out["commonLabels"] = target
        return
    labels = [dict(e) if isinstance(e, dict) else e for e in _list(out, "labels")]
    for entry in labels:
        if isinstance(entry, dict) and isinstance(entry.get("pairs"), dict):
            entry["pairs"] = dict(entry["pairs"])

    def matches(entry: Any) -> bool:
        return (isinstance(entry, dict) and not entry.get("includeSelectors", False)
                and bool(entry.get("includeTemplates", False)) == opts.label_include_templates)

    for key, value in pairs.items():
        group = next((e for e in labels if matches(e)), None)
        if group is None:
            group = {"pairs": {}}
            if opts.label_include_templates:
                group["includeTemplates"] = True
            labels.append(group)
        group_pairs = group.setdefault("pairs", {})
        _write(group_pairs, {key: value}, opts.force_common_labels, "label")
    out["labels"] = labels


def _as_edit_args(values: Mapping[str, str], kind: str) -> dict[str, str]:
    """Mimic passing ``k:v`` through kustomize's argument parsing (first ``:`` splits)."""
    result: dict[str, str] = {}
    for name, value in values.items():
        arg = f"{name}:{value}"
        cut = arg.find(":")
        if cut == 0:
            raise ConfigError(f"invalid {kind}: {arg!r} (need k:v pair)")
        key, val = arg[:cut], arg[cut + 1:]
        if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
            val = val[1:-1]
        result[key] = val
    return result


def _write(target: dict[str, Any], pairs: Mapping[str, str], force: bool, kind: str) -> None:
    for key, value in pairs.items():
        if key in target and not force:
            option = "forceCommonLabels" if kind == "label" else "forceCommonAnnotations"
            raise ConfigError(f"kustomize: {kind} {key!r} is already set in the app's "
                              f"kustomization (set {option} to override it)")
        target[key] = value


def _patch_dict(patch: Patch, index: int) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if patch.path is not None:
        entry["path"] = patch.path
    if patch.patch is not None:
        try:
            list(load_yaml_documents(patch.patch, f"kustomize.patches[{index}].patch"))
        except InputError as exc:
            raise ConfigError(exc.message, source=exc.source) from None
        entry["patch"] = patch.patch
    if patch.target is not None:
        fields = {"group": patch.target.group, "version": patch.target.version,
                  "kind": patch.target.kind, "name": patch.target.name,
                  "namespace": patch.target.namespace,
                  "labelSelector": patch.target.label_selector,
                  "annotationSelector": patch.target.annotation_selector}
        entry["target"] = {k: v for k, v in fields.items() if v}
    if patch.options:
        entry["options"] = dict(patch.options)
    if "path" not in entry and "patch" not in entry:
        raise ConfigError("kustomize.patches: each patch needs 'path' or 'patch'")
    return entry


def _add_components(out: dict[str, Any], opts: KustomizeOptions, app_dir: Path,
                    kfile_name: str) -> None:
    current = [c for c in _list(out, "components") if isinstance(c, str)]
    for pattern in opts.components:
        if opts.ignore_missing_components and not os.path.exists(app_dir / pattern):
            continue
        matches = sorted(glob.glob(pattern, root_dir=app_dir)) if glob.has_magic(pattern) else []
        if not matches:
            matches = [pattern]
        for component in matches:
            if component == kfile_name or component in current:
                continue
            current.append(component)
    out["components"] = current


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"expected '{key}' in the kustomization to be a list")
    return list(value)


def _mapping(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"expected '{key}' in the kustomization to be a mapping")
    return dict(value)


def _set_or_drop(entry: dict[str, Any], field: str, value: Any) -> None:
    if value:
        entry[field] = value
    else:
        entry.pop(field, None)
