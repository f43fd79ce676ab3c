"""Per-app parameter announcements for Argo CD's UI (``kiln cmp parameters``).

Argo CD runs ``parameters.dynamic`` in the app directory and shows the JSON list it prints
(a ``ParameterAnnouncement`` list) in the app's Parameters tab, before the static ones. kiln
announces, for the renderer the engine's one detection picks (:func:`kiln.cmp.detect.detect`,
the answer ``kiln generate`` and ``kiln cmp discover`` get too):

- what the renderer reads from the app's files (its ``announce`` capability: Helm's release
  name, value files and values as ``--set`` paths; a kustomization's images, namespace,
  prefix/suffix, labels and components; Jsonnet's entry file), without running any tool;
- each parameter it declares with ``announce=True`` (:class:`kiln.core.faces.Parameter`),
  with the app's current value of its option.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.cmp.detect import detect
from kiln.cmp.parameters import ParamSpec, announcement, table_of
from kiln.core.errors import PluginError
from kiln.core.faces import faces_of, parameter_text

if TYPE_CHECKING:
    from kiln.core.engine import Engine


def announcements(app_dir: Path, env: Mapping[str, str],
                  engine: Engine | None = None) -> list[dict[str, Any]]:
    """The dynamic announcements for the app in ``app_dir`` (``[]`` when there is nothing
    app-specific to say), asked of ``engine`` (default: a new one for ``env``). Raises
    InputError/ConfigError on an unreadable or malformed file."""
    app_dir = Path(os.path.abspath(app_dir))
    if not app_dir.is_dir():
        return []
    found = detect(app_dir, env, engine)
    rows = {row.name: row for row in table_of(found.engine.plugins)}
    renderers = found.engine.plugins.renderers
    read = renderers.member(found.renderer, "current_parameters")(
        found.app, found.engine.render_context(secrets=False))
    out: list[dict[str, Any]] = []
    for name, value in read.items():
        if name not in rows:
            raise PluginError(f"renderer {found.kind!r} announces {name!r}, a parameter no "
                              "plugin declares")
        out.append(_announce(rows[name], value))
    said = {entry["name"] for entry in out}
    options = found.app.identity()["options"]
    for param in faces_of(found.renderer, renderers).parameters:
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
        return parameter_text(value)
    if param.collection == "array" and isinstance(value, list):
        return [parameter_text(v) for v in value]
    if isinstance(value, dict):
        return {str(k): parameter_text(v) for k, v in value.items()}
    return empty[param.collection]


def _announce(spec: ParamSpec, value: Any) -> dict[str, Any]:
    entry = announcement(spec)
    entry[entry["collectionType"]] = value
    return entry
