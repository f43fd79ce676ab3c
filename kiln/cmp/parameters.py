"""The CMP parameter table: every Argo CD plugin parameter kiln accepts and the option it sets.

The rows are what kiln and the loaded plugins declare (:class:`kiln.core.faces.Parameter`): a
name (as written in ``spec.source.plugin.parameters``), a collection type (``string``,
``array`` or ``map``), the UI title and tooltip announced in ``plugin.yaml``, and the option
path it sets. The same rows drive the static announcements, the environment parser and the
documentation, so they cannot drift apart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from kiln.core.errors import ConfigError
from kiln.core.faces import Entry, Parameter

SOURCE = "ARGOCD_APP_PARAMETERS"

ParamSpec = Parameter
"""One row of the table (kept as a name for callers; see :class:`kiln.core.faces.Parameter`)."""


def table_of(plugins: Any) -> tuple[Parameter, ...]:
    """Every parameter kiln and the loaded plugins declare, in declaration order."""
    from kiln.core.faces import all_parameters, declared

    def build() -> tuple[Parameter, ...]:
        return tuple(all_parameters(declared(plugins)))

    memo = getattr(plugins, "memo", None)
    return memo("cmp-parameter-table", build) if callable(memo) else build()


def table(env: Mapping[str, str] | None = None) -> tuple[Parameter, ...]:
    """The parameter table of the plugins ``env`` loads (``KILN_DISABLE_PLUGINS`` honoured)."""
    from kiln.core.faces import load_plugins

    return table_of(load_plugins(os.environ if env is None else env))


def target(spec: Parameter) -> str:
    """Where the value lands, as written in kiln.yaml (``helm.valueFiles``)."""
    return spec.option


def announcement(spec: Parameter) -> dict[str, Any]:
    """The static ParameterAnnouncement for ``spec`` (no default value)."""
    return {
        "name": spec.name,
        "title": spec.title,
        "tooltip": spec.tooltip,
        "itemType": "boolean" if spec.shape == "bool" else "string",
        "collectionType": spec.collection,
    }


def spec_for(name: str, rows: Sequence[Parameter]) -> Parameter:
    """The row for parameter ``name`` in ``rows``; an unknown name is a ConfigError naming it."""
    spec = next((row for row in rows if row.name == name), None)
    if spec is None:
        raise ConfigError(
            f"unknown parameter {name!r} (`kiln cmp plugin-yaml` lists the known ones)",
            source=SOURCE,
        )
    return spec


def parse_bool(name: str, text: str) -> bool:
    """``"true"``/``"false"`` (any case, surrounding blanks ignored; also Go's ``1/t/0/f``, by
    kiln's one boolean parser) as a bool."""
    from kiln.core.trust import parse_bool as strict

    try:
        if text.strip():
            return strict(text, name=name)
    except ConfigError:
        pass
    raise ConfigError(f"parameter {name!r} must be 'true' or 'false', got {text!r}",
                      source=SOURCE)


def option_value(spec: Parameter, value: str | list[str] | dict[str, str]) -> Any:
    """Turn a raw parameter value (already checked against the collection) into the option."""
    from kiln.core.faces import entry_item

    if spec.shape == "str":
        return value
    if spec.shape == "bool":
        assert isinstance(value, str)
        return parse_bool(spec.name, value)
    if spec.shape == "int":
        assert isinstance(value, str)
        return _count(spec.name, None, value)
    if spec.shape == "list":
        return list(value)
    assert isinstance(value, dict)
    if spec.shape == "map":
        return dict(value)
    entry = spec.entry or Entry()
    return [entry_item(entry, k, _count(spec.name, k, v) if entry.integer else v)
            for k, v in value.items()]


def _count(param: str, name: str | None, text: str) -> int:
    try:
        count = int(text.strip())
    except ValueError:
        count = -1
    if count < 0:
        what = f"replica count for {name!r}" if name is not None else "the value"
        raise ConfigError(f"parameter {param!r}: {what} must be a non-negative integer, "
                          f"got {text!r}", source=SOURCE)
    return count


def static_announcements(rows: Sequence[Parameter]) -> list[dict[str, Any]]:
    """Every row of ``rows`` as a static ParameterAnnouncement, in table order."""
    return [announcement(spec) for spec in rows]
