"""Read an Argo CD object field by field: every field is either read, ignored on purpose, or an
error naming it (``spec.sources[1].helm.fileParameters: unknown field``).

:class:`Fields` wraps one mapping of a manifest with the dotted path that leads to it. Each
accessor checks the value's type the way Argo CD's JSON decoding would (a string field holding
a number is an error, ``null`` is the field's zero value; a NUL character in a string is an
error too) and marks the key as read;
:meth:`Fields.done` then refuses every key nobody read, so no field is ever dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kiln.core.errors import ConfigError


class Fields:
    """One mapping of a manifest, read key by key (see the module docstring).

    ``path`` is the dotted path of the mapping (``spec.source.helm``; ``""`` for the top),
    ``source`` the file errors name, ``context`` a short suffix naming the object
    (`` (Application web)``) appended to every message.
    """

    def __init__(self, data: Any, path: str, source: str, context: str = "") -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'document'}: must be a mapping, got {_kind(data)}"
                              f"{context}", source=source)
        self.data: dict[str, Any] = data
        self.path = path
        self.source = source
        self.context = context
        self._read: set[str] = set()

    # -- errors ------------------------------------------------------------------------------

    def at(self, key: str) -> str:
        """The dotted path of ``key`` in this mapping."""
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str | None, problem: str) -> ConfigError:
        """A ConfigError ``<path of key>: <problem>`` naming this mapping's file."""
        where = self.at(key) if key is not None else (self.path or "document")
        return ConfigError(f"{where}: {problem}{self.context}", source=self.source)

    # -- accessors ---------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        """True when ``key`` is present with a value other than null (does not mark it read)."""
        return self.data.get(key) is not None

    def raw(self, key: str) -> Any:
        """The value of ``key`` as it is (None when absent), marked as read."""
        self._read.add(key)
        return self.data.get(key)

    def string(self, key: str, *, required: bool = False) -> str:
        """The string ``key`` ('' when absent or null); another type is an error."""
        value = self.raw(key)
        if value is None:
            if required:
                raise self.error(key, "is required")
            return ""
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {_kind(value)}")
        _no_nul(self, key, value)
        return value

    def boolean(self, key: str) -> bool:
        """The boolean ``key`` (False when absent or null); another type is an error."""
        value = self.raw(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {_kind(value)}")
        return value

    def strings(self, key: str) -> list[str]:
        """The list of strings ``key`` ([] when absent or null)."""
        value = self.raw(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(key, f"must be a list of strings, got {_kind(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"{key}[{index}]", f"must be a string, got {_kind(item)}")
            _no_nul(self, f"{key}[{index}]", item)
        return list(value)

    def string_map(self, key: str) -> dict[str, str]:
        """The mapping of strings to strings ``key`` ({} when absent or null)."""
        value = self.raw(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(key, f"must be a mapping of strings, got {_kind(value)}")
        for name, item in value.items():
            if not isinstance(item, str):
                raise self.error(f"{key}.{name}", f"must be a string, got {_kind(item)}")
            _no_nul(self, f"{key}.{name}", f"{name}{item}")
        return dict(value)

    def mapping(self, key: str) -> Fields | None:
        """The nested mapping ``key`` as Fields (None when absent or null)."""
        value = self.raw(key)
        if value is None:
            return None
        return Fields(value, self.at(key), self.source, self.context)

    def items(self, key: str) -> Iterator[Fields]:
        """Each mapping of the list ``key`` as Fields (none when absent or null)."""
        value = self.raw(key)
        if value is None:
            return
        if not isinstance(value, list):
            raise self.error(key, f"must be a list, got {_kind(value)}")
        for index, item in enumerate(value):
            yield Fields(item, f"{self.at(key)}[{index}]", self.source, self.context)

    # -- policy ------------------------------------------------------------------------------

    def ignore(self, *keys: str) -> None:
        """Mark ``keys`` as read: fields that do not change what is rendered."""
        self._read.update(keys)

    def refuse(self, key: str, why: str) -> None:
        """An error when ``key`` holds a value other than its zero value: kiln cannot honour
        it (``<path>: not supported by kiln (<why>)``)."""
        self._read.add(key)
        if _set(self.data.get(key)):
            raise self.error(key, f"not supported by kiln ({why})")

    def done(self) -> None:
        """Refuse every key of the mapping that was neither read nor ignored."""
        for key in self.data:
            if key not in self._read:
                raise self.error(str(key), "unknown field")


def _no_nul(fields: Fields, key: str, value: str) -> None:
    """Refuse a NUL character: no file name, flag value or environment variable can hold one."""
    if "\x00" in value:
        raise fields.error(key, "must not hold a NUL character")


def _set(value: Any) -> bool:
    """True for a value other than Go's zero value (null, false, '', 0, [] and {} are unset)."""
    return value is not None and value is not False and value != "" and value != 0 \
        and value != [] and value != {}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
