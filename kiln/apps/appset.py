"""ApplicationSets: the Applications that ``list`` and git ``directories`` generators produce.

Argo CD's ApplicationSet controller turns each generator's parameter sets into Applications by
substituting them into ``spec.template`` (``applicationset/generators/{list,git}.go``,
``applicationset/utils/utils.go``). kiln does the same for the local checkout:

- ``list``: ``elements`` (and ``elementsYaml``); without ``goTemplate`` every value must be a
  string, and a ``values`` mapping becomes ``values.<key>`` parameters.
- ``git`` with ``directories``: every directory of the checkout (hidden ones skipped, no
  symlinks followed) whose path matches an item's ``path`` (Go's ``path.Match``) and no item
  with ``exclude: true``; parameters ``path``, ``path.basename``,
  ``path.basenameNormalized`` and ``path[N]`` (``goTemplate``: ``.path.path``,
  ``.path.basename``, ``.path.basenameNormalized``, ``.path.segments``), under
  ``pathParamPrefix`` when set, plus ``values`` (templated with those parameters).
  ``repoURL`` must name the checkout; ``revision`` is ignored (the checkout is what is
  rendered).

Every other generator (clusters, scmProvider, pullRequest, matrix, merge, plugin,
clusterDecisionResource, git ``files``), a generator ``selector`` or ``template`` and
``templatePatch`` are errors naming the field. Substitution: :mod:`kiln.apps.templating`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kiln.apps.application import object_header, specs_of_application
from kiln.apps.fields import Fields
from kiln.apps.model import AppSpec
from kiln.apps.repourl import is_checkout
from kiln.apps.source import Checkout
from kiln.apps.templating import (
    TemplateError,
    check_options,
    render_tree,
    sanitize_name,
)
from kiln.core.errors import ConfigError, InputError

UNSUPPORTED_GENERATORS = {
    "clusters": "it lists the clusters registered in Argo CD",
    "clusterDecisionResource": "it reads a resource from the cluster",
    "scmProvider": "it asks an SCM provider's API",
    "pullRequest": "it asks an SCM provider's API",
    "plugin": "it calls a generator plugin service",
    "matrix": "combining generators is not implemented",
    "merge": "combining generators is not implemented",
}
IGNORED_SPEC = ("syncPolicy", "strategy", "preservedFields", "ignoreApplicationDifferences",
                "applyNestedSelectors")
"""ApplicationSetSpec fields that only concern how the controller applies Applications."""
MAX_APPLICATIONS = 10000
"""Most Applications one ApplicationSet may generate."""


def specs_of_application_set(doc: dict[str, Any], file: str, checkout: Checkout
                             ) -> list[AppSpec]:
    """The AppSpecs of every Application the ApplicationSet ``doc`` (read from ``file``)
    generates; ConfigError naming the file and the field for anything kiln cannot do."""
    set_name, spec = object_header(doc, file, "ApplicationSet")
    context = f" (ApplicationSet {set_name})"
    go = spec.boolean("goTemplate")
    options = spec.strings("goTemplateOptions")
    try:
        strict = check_options(options)
    except TemplateError as exc:
        raise spec.error("goTemplateOptions", str(exc).partition(": ")[2]) from None
    spec.refuse("templatePatch", "a Go-template patch of the generated Applications")
    spec.ignore(*IGNORED_SPEC)
    template = spec.raw("template")
    if not isinstance(template, dict):
        raise spec.error("template", "is required and must be a mapping")
    generators = list(spec.items("generators"))
    if not generators:
        raise spec.error("generators", "is required")
    spec.done()
    specs: list[AppSpec] = []
    for generator in generators:
        for params in _parameter_sets(generator, checkout, go=go, strict=strict):
            try:
                rendered = render_tree(template, params, go=go, strict=strict,
                                       where="spec.template")
            except TemplateError as exc:
                raise ConfigError(f"{exc}{context}", source=file) from None
            app = _application(rendered, spec)
            app_name = app["metadata"].get("name")
            specs.extend(specs_of_application(
                app, file, checkout, prefix="spec.template",
                origin=f"{file}: ApplicationSet {set_name}: Application {app_name}",
                context=f" (ApplicationSet {set_name}, Application {app_name})"))
            if len(specs) > MAX_APPLICATIONS:
                raise spec.error("generators", f"generates more than {MAX_APPLICATIONS} "
                                 "Applications")
    return specs


def _application(rendered: Any, spec: Fields) -> dict[str, Any]:
    """The generated Application object of a substituted template."""
    if not isinstance(rendered, dict):
        raise spec.error("template", "must be a mapping")
    meta = rendered.get("metadata")
    if not isinstance(meta, dict):
        raise spec.error("template.metadata", "is required and must be a mapping")
    body = {k: v for k, v in rendered.items() if k not in ("metadata", "spec")}
    if body:
        raise spec.error(f"template.{next(iter(body))}", "unknown field")
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": meta, "spec": rendered.get("spec")}


def _parameter_sets(generator: Fields, checkout: Checkout, *, go: bool, strict: bool
                    ) -> Iterator[dict[str, Any]]:
    for key, why in UNSUPPORTED_GENERATORS.items():
        generator.refuse(key, why)
    generator.refuse("selector", "post-filtering generated parameters by labels")
    present = [k for k in ("list", "git") if generator.has(k)]
    if len(present) != 1:
        generator.done()
        raise generator.error(None, "needs exactly one generator (kiln supports list and "
                              "git directories)")
    if present[0] == "list":
        section = generator.mapping("list")
        assert section is not None
        generator.done()
        yield from _list(section, go=go)
    else:
        section = generator.mapping("git")
        assert section is not None
        generator.done()
        yield from _git(section, checkout, go=go, strict=strict)


# -- list --------------------------------------------------------------------------------------

def _list(section: Fields, *, go: bool) -> Iterator[dict[str, Any]]:
    section.refuse("template", "a per-generator template")
    elements = section.raw("elements")
    if elements is None:
        elements = []
    if not isinstance(elements, list):
        raise section.error("elements", "must be a list")
    text = section.string("elementsYaml")
    section.done()
    for index, element in enumerate(elements):
        where = f"elements[{index}]"
        if not isinstance(element, dict):
            raise section.error(where, "must be a mapping")
        yield dict(element) if go else _flat_element(element, section, where)
    if text:
        from kiln.core.manifests import load_yaml_documents

        try:
            docs = list(load_yaml_documents(text, section.source))
        except InputError as exc:
            raise section.error("elementsYaml", exc.message) from None
        items = docs[0] if len(docs) == 1 else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise section.error("elementsYaml", "must be a YAML list of mappings")
        # Argo CD appends these without flattening, whatever the template mode
        yield from (dict(item) for item in items)


def _flat_element(element: dict[str, Any], section: Fields, where: str) -> dict[str, Any]:
    """A list element as fasttemplate parameters: string values, ``values.<key>``."""
    params: dict[str, Any] = {}
    for key, value in element.items():
        if key == "values":
            if not isinstance(value, dict):
                raise section.error(f"{where}.values", "must be a mapping")
            for name, item in value.items():
                if not isinstance(item, str):
                    raise section.error(f"{where}.values.{name}", "must be a string (set "
                                        "goTemplate: true for other values)")
                params[f"values.{name}"] = item
        elif isinstance(value, str):
            params[key] = value
        else:
            raise section.error(f"{where}.{key}", "must be a string (set goTemplate: true "
                                "for other values)")
    return params


# -- git directories ---------------------------------------------------------------------------

def _git(section: Fields, checkout: Checkout, *, go: bool, strict: bool
         ) -> Iterator[dict[str, Any]]:
    url = section.string("repoURL", required=True)
    section.string("revision")  # the checkout is what is rendered
    section.ignore("requeueAfterSeconds")
    section.refuse("files", "the git files generator")
    section.refuse("template", "a per-generator template")
    prefix = section.string("pathParamPrefix")
    values = section.string_map("values")
    items = []
    for item in section.items("directories"):
        pattern = item.string("path", required=True)
        try:
            matcher = go_path_match(pattern)
        except ValueError as exc:
            raise item.error("path", str(exc)) from None
        items.append((matcher, item.boolean("exclude")))
        item.done()
    if not items:
        raise section.error("directories", "is required (kiln supports the directories "
                            "generator)")
    section.done()
    if not is_checkout(url, checkout.repo_urls):
        raise section.error("repoURL", f"{url!r} is not the checkout being rendered (the "
                            f"checkout is {', '.join(checkout.repo_urls)})")
    for directory in checkout_directories(checkout.root):
        matched = [exclude for matcher, exclude in items if matcher(directory)]
        if matched and not any(matched):
            params = _directory_params(directory, prefix, go=go)
            try:
                _add_values(params, values, go=go, strict=strict)
            except TemplateError as exc:
                raise section.error("values", str(exc)) from None
            yield params


def _directory_params(directory: str, prefix: str, *, go: bool) -> dict[str, Any]:
    basename = directory.rpartition("/")[2]
    if go:
        path = {"path": directory, "basename": basename,
                "basenameNormalized": sanitize_name(basename),
                "segments": directory.split("/")}
        return {prefix: {"path": path}} if prefix else {"path": path}
    name = f"{prefix}.path" if prefix else "path"
    params: dict[str, Any] = {name: directory, f"{name}.basename": basename,
                              f"{name}.basenameNormalized": sanitize_name(basename)}
    for index, segment in enumerate(directory.split("/")):
        if segment:
            params[f"{name}[{index}]"] = segment
    return params


def _add_values(params: dict[str, Any], values: dict[str, str], *, go: bool,
                strict: bool) -> None:
    from kiln.apps.templating import render_fast, render_go

    rendered = {key: render_go(value, params, strict=strict) if go else
                render_fast(value, params) for key, value in values.items()}
    if go:
        if rendered:
            params["values"] = rendered
    else:
        params.update({f"values.{key}": value for key, value in rendered.items()})


def checkout_directories(root: Path) -> list[str]:
    """Every directory below ``root`` as a POSIX path relative to it, depth first in name
    order (Go's ``filepath.WalkDir``), hidden directories and symlinks skipped."""
    found: list[str] = []

    def walk(directory: Path, rel: str) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            child = f"{rel}/{entry.name}" if rel else entry.name
            found.append(child)
            walk(Path(entry.path), child)

    walk(root, "")
    return found


def go_path_match(pattern: str) -> Any:
    """A predicate for Go's ``path.Match(pattern, name)``: ``*`` any run of non-``/``
    characters, ``?`` one non-``/`` character, ``[...]`` a class (``^`` negates, ``a-z``
    ranges), ``\\`` escapes. A malformed pattern is a ValueError."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\":
            if i + 1 >= len(pattern):
                raise ValueError(f"{pattern!r}: syntax error in pattern (trailing '\\')")
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            end, body = _class(pattern, i)
            out.append(body)
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    regex = re.compile("".join(out), re.DOTALL)
    return lambda name: regex.fullmatch(name) is not None


def _class(pattern: str, start: int) -> tuple[int, str]:
    """Translate the class at ``pattern[start] == '['``; return (index of ']', regex)."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] == "^"
    if negate:
        i += 1
    parts: list[str] = []
    first = True
    while True:
        if i >= len(pattern):
            raise ValueError(f"{pattern!r}: syntax error in pattern (unclosed '[')")
        char = pattern[i]
        if char == "]" and not first:
            break
        first = False
        low, i = _class_char(pattern, i)
        if i < len(pattern) and pattern[i] == "-" and i + 1 < len(pattern) \
                and pattern[i + 1] != "]":
            high, i = _class_char(pattern, i + 1)
            if high < low:
                raise ValueError(f"{pattern!r}: syntax error in pattern (bad range)")
            parts.append(f"{re.escape(low)}-{re.escape(high)}")
        else:
            parts.append(re.escape(low))
    body = "".join(parts)
    return i, f"[^{body}]" if negate else f"[{body}]"


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    char = pattern[i]
    if char == "\\":
        if i + 1 >= len(pattern):
            raise ValueError(f"{pattern!r}: syntax error in pattern (trailing '\\')")
        return pattern[i + 1], i + 2
    if char in "-]":
        raise ValueError(f"{pattern!r}: syntax error in pattern ({char!r} in a class)")
    return char, i + 1
