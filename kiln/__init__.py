"""kiln: a manifest rendering and secrets engine for GitOps.

The library API::

    from kiln import Engine, App
    result = Engine(cache_dir="/tmp/kiln").render(App(path="apps/guestbook"))
    print(result.to_yaml())

Names are imported lazily, so ``import kiln`` (and ``kiln --version``) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kiln._version import __version__

_EXPORTS = {
    "App": "kiln.core.app",
    "Options": "kiln.core.app",
    "Engine": "kiln.core.engine",
    "RenderResult": "kiln.core.engine",
    "Inputs": "kiln.core.registry",
    "hookimpl": "kiln.core.hookspecs",
    "KilnError": "kiln.core.errors",
    "ConfigError": "kiln.core.errors",
    "InputError": "kiln.core.errors",
    "PluginError": "kiln.core.errors",
    "RenderError": "kiln.core.errors",
    "ToolError": "kiln.core.errors",
    "SecretError": "kiln.core.errors",
    "SecretNotFound": "kiln.core.errors",
    "SecretBackendUnavailable": "kiln.core.errors",
    "CacheError": "kiln.core.errors",
    "ApplyError": "kiln.core.errors",
}

__all__ = [
    "App",
    "ApplyError",
    "CacheError",
    "ConfigError",
    "Engine",
    "InputError",
    "Inputs",
    "KilnError",
    "Options",
    "PluginError",
    "RenderError",
    "RenderResult",
    "SecretBackendUnavailable",
    "SecretError",
    "SecretNotFound",
    "ToolError",
    "__version__",
    "hookimpl",
]

if TYPE_CHECKING:
    from kiln.core.app import App, Options
    from kiln.core.engine import Engine, RenderResult
    from kiln.core.errors import (
        ApplyError,
        CacheError,
        ConfigError,
        InputError,
        KilnError,
        PluginError,
        RenderError,
        SecretBackendUnavailable,
        SecretError,
        SecretNotFound,
        ToolError,
    )
    from kiln.core.hookspecs import hookimpl
    from kiln.core.registry import Inputs


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kiln' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
