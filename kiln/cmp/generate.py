"""What ``kiln generate .`` does for an app directory, as one function both faces call.

The ``kiln generate`` command and the CMP server (:mod:`kiln.cmp.server`) load the app under
Argo CD's plugin environment (application level) overlaid with operator settings, render it
(cache, then secrets in memory), refuse a stream with references left unresolved, and hand the
objects out. :func:`generate` is that sequence; :func:`finish` is its second half, for a server
that already knows the cache key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.core.deadline import Deadline
    from kiln.core.engine import Engine, RenderResult


@dataclass
class Generated:
    """The outcome: the engine's result, and either ``text`` (the stored YAML, printable as it
    is) or ``objects`` (decoded: they held references, were stripped, or JSON was asked)."""

    app: App
    result: RenderResult
    text: str | None
    objects: list[dict[str, Any]] | None


def load(engine: Engine, path: Path | str, env: Mapping[str, str], *,
         settings: Mapping[str, Any] | None = None,
         source_root: Path | str | None = None) -> App:
    """The app at ``path`` as ``kiln generate`` loads it: kiln.yaml, overlaid with what Argo
    CD's environment ``env`` says (application level), overlaid with ``settings`` (operator
    level). Raises ConfigError/InputError/TrustError like :meth:`Engine.load_app`."""
    from kiln.cmp.environment import settings_from_environment
    from kiln.cmp.parameters import table_of

    cmp = settings_from_environment(env, app_dir=os.path.abspath(path),
                                    rows=table_of(engine.plugins))
    return engine.load_app(path, settings, app_settings=cmp.settings,
                           source_root=source_root or cmp.source_root,
                           build_env=cmp.build_env)


def generate(engine: Engine, path: Path | str, env: Mapping[str, str], *,
             settings: Mapping[str, Any] | None = None,
             source_root: Path | str | None = None, deadline: Deadline | None = None,
             strip_annotations: bool = False, want_objects: bool = False) -> Generated:
    """Load (see :func:`load`) and render the app at ``path``, then :func:`finish`."""
    app = load(engine, path, env, settings=settings, source_root=source_root)
    result = engine.render(app, secrets=True, deadline=deadline)
    return finish(app, result, strip_annotations=strip_annotations, want_objects=want_objects)


def finish(app: App, result: RenderResult, *, strip_annotations: bool = False,
           want_objects: bool = False) -> Generated:
    """Check a rendered, resolved result as ``kiln generate`` does before printing.

    Raises SecretErrors naming every reference no resolver filled in. The stored text of a
    cache hit is kept as it is unless it may hold references (then the objects are decoded
    and checked), ``strip_annotations`` drops the ``avp.kubernetes.io/*`` annotations, or
    ``want_objects``.
    """
    from kiln.core import placeholders
    from kiln.core.errors import SecretErrors

    text = result.to_yaml()
    if not (placeholders.may_hold_references(text) or strip_annotations or want_objects):
        return Generated(app, result, text, None)
    objects = result.objects
    leftover = result.unresolved()
    if leftover:
        raise SecretErrors(leftover)
    if strip_annotations:
        objects = placeholders.strip_avp_annotations(objects)
    return Generated(app, result, None, objects)


__all__ = ["Generated", "finish", "generate", "load"]
