"""The ``jsonnet:`` section of kiln.yaml: Argo CD's jsonnet fields plus kiln's evaluation limits."""

from __future__ import annotations

import msgspec

from kiln.core import argv
from kiln.core.app import Options
from kiln.core.errors import ConfigError

DEFAULT_MAX_STACK = 500
DEFAULT_MAX_MEMORY_BYTES = 1 << 30
DEFAULT_MAX_OUTPUT_BYTES = 64 << 20


class JsonnetVar(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One external variable or top-level argument: a string, or Jsonnet code when ``code``."""

    name: str
    value: str = ""
    code: bool = False


class JsonnetOptions(Options, frozen=True):
    """Options of a jsonnet app (Argo CD's ``directory.jsonnet`` fields, and ``main``).

    ``libs`` are JPATH directories relative to the source root, as in Argo CD. ``main`` names
    the entry file relative to the app directory. ``timeout`` (seconds, default: kiln's tool
    timeout), ``maxStack``, ``maxMemoryBytes`` and ``maxOutputBytes`` bound one evaluation.
    """

    ext_vars: tuple[JsonnetVar, ...] = ()
    tlas: tuple[JsonnetVar, ...] = ()
    libs: tuple[str, ...] = ()
    main: str = ""
    timeout: float = 0.0
    max_stack: int = DEFAULT_MAX_STACK
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES

    def __post_init__(self) -> None:
        """Check variable names: a TLA is a Jsonnet identifier, an external variable a letter
        or '_' then letters, digits, '_', '.', '-' (neither can ever be read as a flag).
        A bad name is a ValueError, which the loader reports naming the section."""
        checks = (("extVars", self.ext_vars, argv.jsonnet_ext_var),
                  ("tlas", self.tlas, argv.jsonnet_tla))
        for key, variables, check in checks:
            for index, var in enumerate(variables):
                if not var.name:
                    continue  # reported by the renderer: "a variable has no name"
                try:
                    check(var.name, f"{key}[{index}].name")
                except ConfigError as exc:
                    raise ValueError(exc.message) from None
