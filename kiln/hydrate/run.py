"""From rendered apps to hydrated apps: destinations, references-only output, the secret check.

Every app is rendered with ``secrets=False`` (:func:`kiln.many.runner.render_many`). An app in
External Secrets ``convert`` mode (``--external-secrets convert``, ``secrets.externalSecrets.
mode: convert``) then has its Secrets with references turned into ExternalSecrets by the
``externalSecrets`` resolver, the one resolver that reads no value; every other resolver stays
off. Each app's objects then pass :mod:`kiln.hydrate.guard` and become ``manifest.yaml`` bytes.

Any failing app fails the run before anything is written (Argo CD fails the whole group's
commit too: a partial hydration would make Argo CD prune the missing apps' resources).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.core.errors import ConfigError, KilnError
from kiln.hydrate import guard
from kiln.hydrate.commit import public_url
from kiln.hydrate.manifest import dump_manifests
from kiln.hydrate.writer import HydratedApp, check_path, check_unique
from kiln.many.runner import app_label

if TYPE_CHECKING:
    from kiln.apps.model import AppSpec
    from kiln.core.engine import Engine, RenderResult
    from kiln.many.runner import AppOutcome

log = logging.getLogger("kiln.hydrate")

MEMO_FORMAT = "kiln-hydrate-manifest/1"
"""Part of the key the manifest bytes of a render are remembered under (bumped when the
serialisation changes)."""
SECRET_KINDS = frozenset({"Secret", "ExternalSecret"})
"""Kinds the convert step may change: their apps are serialised every time."""

CONVERTER = "externalSecrets"
"""The resolver that turns Secrets with references into ExternalSecrets without reading one."""


class HydrateFailed(KilnError):
    """One or more apps failed to render or were refused: nothing was written."""

    def __init__(self, errors: Sequence[KilnError], total: int) -> None:
        first = errors[0].one_line()
        more = f" (and {len(errors) - 1} more app(s) failed)" if len(errors) > 1 else ""
        super().__init__(f"{first}{more}; {len(errors)} of {total} app(s) failed: nothing "
                         "written, nothing committed")
        self.errors = list(errors)

    def details(self) -> list[str]:
        """Every failed app's own line."""
        return [e.one_line() for e in self.errors] if len(self.errors) > 1 else []


def destination(spec: AppSpec, layout: str) -> str:
    """Where ``spec``'s manifests go under the output root: its source path (``path``) or
    its name (``name``). ConfigError naming the app for the root, ``..`` or ``.git``."""
    raw = spec.name if layout == "name" else spec.path
    return check_path(raw.strip("/") if raw not in (".", "./") else ".", app_label(spec))


def check_destinations(specs: Sequence[AppSpec], layout: str) -> None:
    """Before anything renders: every spec's destination is valid and no two share one
    (ConfigError naming the app, or both apps)."""
    check_unique([HydratedApp(name=app_label(s), path=destination(s, layout), manifest=b"")
                  for s in specs])


def _converted(engine: Engine, root: Path, spec: AppSpec, objects: list[dict[str, Any]],
               settings: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """``objects`` with Secrets holding references converted to ExternalSecrets when the app
    is in convert mode (ExternalSecrets validated in keep mode); no value is ever read."""
    from kiln.core import secrets
    from kiln.many.runner import app_engine, load_spec

    view = app_engine(engine, spec)
    try:
        resolver = view.plugins.resolvers.get(CONVERTER)
    except ConfigError:
        return objects  # the external_secrets plugin is disabled
    app = load_spec(view, root, spec, settings=settings)
    ctx = view.secret_context(app)
    if not resolver.wants(objects, ctx):
        return objects
    out: list[dict[str, Any]] = secrets.plain(resolver.resolve(objects, ctx))
    return out


def _memo_key(engine: Engine, result: RenderResult) -> str | None:
    """Where the ``manifest.yaml`` bytes of a render are remembered in the cache store (None
    when they may not be: no cache, no render key, post-render hooks that may change them)."""
    if not engine.use_cache or not result.key or engine.plugins.has_post_render():
        return None
    import hashlib

    return hashlib.sha256(f"{MEMO_FORMAT}\0{result.key}".encode()).hexdigest()


def _manifest(engine: Engine, root: Path, spec: AppSpec, result: RenderResult,
              settings: Mapping[str, Any] | None) -> bytes:
    """The app's ``manifest.yaml`` bytes: its objects (Secrets converted in convert mode)
    serialised, or the bytes the same render gave before (an app with no Secret or
    ExternalSecret: then nothing but the render decides them)."""
    objects = result.objects
    if any(o.get("kind") in SECRET_KINDS for o in objects):
        converted = _converted(engine, root, spec, objects, settings)
        guard.check_objects(app_label(spec), converted, redactor=engine.redactor,
                            resolved=False)
        return dump_manifests(converted)
    memo = _memo_key(engine, result)
    if memo is not None:
        remembered = engine.store.get(memo)
        if remembered is not None:
            return remembered
    manifest = dump_manifests(objects)
    if memo is not None:
        engine.store.put(memo, manifest)
    return manifest


def hydrated_apps(engine: Engine, root: Path, outcomes: Sequence[AppOutcome], *,
                  layout: str = "path", repo_url: str = "", commands: Sequence[str] = (),
                  settings: Mapping[str, Any] | None = None) -> list[HydratedApp]:
    """Each outcome as a HydratedApp (in the outcomes' order). Raises HydrateFailed listing
    every app that failed to render, was refused by the secret check or has a bad
    destination, and ConfigError when two apps share a destination."""
    errors: list[KilnError] = []
    apps: list[HydratedApp] = []
    for outcome in outcomes:
        spec = outcome.spec
        label = app_label(spec)
        try:
            if outcome.error is not None or outcome.result is None:
                raise outcome.error or KilnError("rendered nothing", source=label)
            path = destination(spec, layout)
            result = outcome.result
            guard.check_objects(label, result.objects, redactor=engine.redactor,
                                resolved=result.secrets_resolved)
            manifest = _manifest(engine, root, spec, result, settings)
            guard.check_bytes(label, f"{path}/manifest.yaml", manifest,
                              redactor=engine.redactor)
        except KilnError as exc:
            errors.append(exc)
            continue
        app_url = public_url(spec.env.get("ARGOCD_APP_SOURCE_REPO_URL") or repo_url)
        apps.append(HydratedApp(name=label, path=path, manifest=manifest,
                                commands=tuple(commands), repo_url=app_url))
    if errors:
        raise HydrateFailed(errors, len(outcomes))
    check_unique(apps)
    return apps
