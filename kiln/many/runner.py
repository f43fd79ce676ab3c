"""Render many apps of one checkout in one process: one warm engine, a pool of threads.

:func:`render_many` is what ``kiln render PATH...`` and ``kiln render --applications`` run (and
what the pull-request diff and hydrate build on). Every app is loaded by :func:`load_spec` the
way ``kiln generate`` loads an app inside Argo CD's sidecar: its kiln.yaml (repository level),
then what the Application says (its settings and the plugin environment Argo CD would give it:
application level), then the command line (operator level). Each app renders through its own
view of the engine (:meth:`kiln.core.engine.Engine.for_request`: the same plugins, cache store,
tool versions and chart store, the app's own environment), concurrently, exactly as the CMP
server renders concurrent requests.

A failing app never stops the others: its :class:`~kiln.core.errors.KilnError` is kept in its
:class:`AppOutcome` (as :class:`AppFailed`, whose one line names the app). An interrupt
(SIGTERM/SIGINT, :mod:`kiln.core.interrupt`) stops everything: every app's deadline is cancelled,
which kills every running tool's process group, the workers unwind (their private trees are
removed by their own ``finally`` blocks) and the interrupt is raised again once they have.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from kiln.core.errors import ConfigError, KilnError

if TYPE_CHECKING:
    from kiln.apps.model import AppSpec
    from kiln.core.app import App
    from kiln.core.deadline import Deadline
    from kiln.core.engine import Engine, RenderResult
    from kiln.many.progress import Progress

INTERRUPTED = "interrupted"
"""The reason the deadlines are cancelled with when the batch is interrupted."""


@dataclass
class AppOutcome:
    """One app's outcome: ``result`` when it rendered, else ``error`` (an :class:`AppFailed`
    whose ``one_line()`` names the app); ``seconds`` the wall-clock time it took."""

    spec: AppSpec
    result: RenderResult | None
    error: KilnError | None
    seconds: float

    @property
    def ok(self) -> bool:
        """True when the app rendered."""
        return self.error is None


class AppFailed(KilnError):
    """An app of a batch failed: ``cause`` is the app's own error; the one line is
    ``<app>: <cause's one line>`` and the details and exit code are the cause's."""

    def __init__(self, spec: AppSpec, cause: KilnError) -> None:
        super().__init__(cause.one_line(), source=app_label(spec))
        self.cause = cause
        self.exit_code = cause.exit_code

    def details(self) -> list[str]:
        """The cause's details (e.g. every failed secret reference)."""
        return self.cause.details()


def app_label(spec: AppSpec) -> str:
    """How error lines name an app: a PATH argument (its origin is its name) as given, an
    Application as ``<path> (Application <name>)``."""
    if spec.origin == spec.name:
        return spec.name
    return f"{spec.path} (Application {spec.name})"


def app_directory(root: Path, spec: AppSpec) -> Path:
    """``root / spec.path``, refused with a ConfigError naming ``spec.origin`` when the path
    is absolute or leaves ``root`` (by ``..`` or through a symbolic link)."""
    if "\x00" in spec.path:
        raise ConfigError(f"path {spec.path!r} holds a NUL byte", source=spec.origin)
    rel = PurePosixPath(spec.path or ".")
    root = Path(os.path.abspath(root))
    if rel.is_absolute() or ".." in rel.parts:
        raise ConfigError(f"path {spec.path!r} leaves the repository", source=spec.origin)
    app_dir = Path(os.path.normpath(root / rel))
    real_root = os.path.realpath(root)
    real_dir = os.path.realpath(app_dir)
    if real_dir != real_root and not real_dir.startswith(real_root.rstrip(os.sep) + os.sep):
        raise ConfigError(f"path {spec.path!r} leaves the repository (through a symbolic "
                          "link)", source=spec.origin)
    return app_dir


def _checked_env(spec: AppSpec) -> dict[str, str]:
    """``spec.env``, refused when it names a variable Argo CD would not give a plugin
    (application input may never set an operator variable: ``KILN_*``, ``PATH``...)."""
    from kiln.cmp.service import request_variables

    kept, dropped = request_variables(spec.env.items())
    if dropped:
        raise ConfigError(f"variable {sorted(dropped)[0]!r} is not one Argo CD gives a plugin",
                          source=spec.origin)
    return kept


def app_engine(engine: Engine, spec: AppSpec) -> Engine:
    """The engine view ``spec`` renders with: ``engine``'s environment without any Argo CD
    request variable of its own (a shell's stray ``ARGOCD_ENV_*`` is no app's), overlaid with
    the app's, and ``engine``'s own redactor (one batch is one output: a value any app
    resolved is hidden in every line the batch prints)."""
    from kiln.cmp.service import request_variables

    ours, _ = request_variables(engine.env.items())
    base = {k: v for k, v in engine.env.items() if k not in ours}
    view = engine.for_request({**base, **_checked_env(spec)})
    view.redactor = engine.redactor
    return view


def load_spec(engine: Engine, root: Path, spec: AppSpec, *,
              settings: Mapping[str, Any] | None = None) -> App:
    """The App `spec` names under the checkout `root`: its kiln.yaml (repository level), the
    spec's app_settings and env (application level), `settings` (operator level: flags).

    ``spec.env`` is read as Argo CD's plugin environment (:mod:`kiln.cmp.environment`:
    ``ARGOCD_APP_NAME``, ``ARGOCD_APP_NAMESPACE``, ``KUBE_*``, plugin parameters) and
    ``spec.app_settings`` is merged over what it says; the source root is ``root``. Raises
    ConfigError naming ``spec.origin`` for a path leaving ``root`` or a variable Argo CD
    would not set, else like :meth:`Engine.load_app`.
    """
    from kiln.cmp.environment import settings_from_environment
    from kiln.cmp.parameters import table_of
    from kiln.core.trust import Level, Origin, merge_layers

    app_dir = app_directory(root, spec)
    env = _checked_env(spec)
    try:
        cmp = settings_from_environment(env, app_dir=app_dir, rows=table_of(engine.plugins))
    except ConfigError as exc:
        raise ConfigError(exc.one_line(), source=spec.origin) from None
    where = Origin(Level.APPLICATION, spec.origin)
    app_settings, _ = merge_layers([(where, cmp.settings), (where, spec.app_settings)])
    return engine.load_app(app_dir, settings, source_root=root, build_env=cmp.build_env,
                           app_settings=app_settings, app_source=spec.origin)


def render_many(engine: Engine, root: Path, specs: Sequence[AppSpec], *,
                settings: Mapping[str, Any] | None = None, secrets: bool = True,
                jobs: int | None = None, progress: Progress | None = None,
                deadline: Deadline | None = None) -> list[AppOutcome]:
    """Render every spec concurrently (`jobs` threads, default the CPU count) with one warm
    engine; outcomes in the order of `specs`; a failing app never stops the others.

    An app's KilnError is kept in its outcome; an interrupt (:class:`Interrupted`,
    KeyboardInterrupt) or an unexpected exception cancels every app's deadline (every running
    tool is killed), waits for the other workers to unwind and is raised again. ``progress``
    is told of every start and finish, from the worker threads. ``deadline`` bounds the whole
    batch; without one each app has the deadline a single render has (``KILN_TIMEOUT`` of its
    environment, none when unset).
    """
    from kiln.core.deadline import Deadline

    batch = deadline or Deadline(None, source="the batch")
    _warm(engine)
    workers = max(1, min(jobs or os.cpu_count() or 1, len(specs) or 1))

    def one(spec: AppSpec) -> AppOutcome:
        if progress is not None:
            progress.started(spec)
        started = time.perf_counter()
        unlink = None
        try:
            view = app_engine(engine, spec)
            mine = deadline
            if mine is None:
                mine = Deadline.from_env(view.env)
                unlink = batch.on_cancel(lambda: mine.cancel(INTERRUPTED))
            app = load_spec(view, root, spec, settings=settings)
            result = view.render(app, secrets=secrets, deadline=mine)
            outcome = AppOutcome(spec, result, None, time.perf_counter() - started)
        except KilnError as exc:
            outcome = AppOutcome(spec, None, AppFailed(spec, exc), time.perf_counter() - started)
        finally:
            if unlink is not None:
                unlink()
        if progress is not None:
            progress.finished(outcome)
        return outcome

    if workers == 1:
        # In the calling thread: a signal raises right where the work is, and a single app
        # keeps what a one-thread process may do (jsonnet forks its worker).
        try:
            return [one(spec) for spec in specs]
        except BaseException:
            batch.cancel(INTERRUPTED)
            raise
    return _in_pool(one, specs, workers, batch)


def _in_pool(one: Callable[[AppSpec], AppOutcome], specs: Sequence[AppSpec], workers: int,
             deadline: Deadline) -> list[AppOutcome]:
    """``one(spec)`` for every spec on ``workers`` threads, results in order; on any exception
    in this thread or a worker: cancel ``deadline``, drop what has not started, wait for the
    running ones, raise."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kiln-app")
    try:
        futures = [pool.submit(one, spec) for spec in specs]
        outcomes = [future.result() for future in futures]
    except BaseException:
        deadline.cancel(INTERRUPTED)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return outcomes


def _warm(engine: Engine) -> None:
    """Build the engine's lazily made registries in this thread, before any worker asks."""
    from kiln.cmp.parameters import table_of

    engine.plugins.renderers  # noqa: B018 - built on first access
    engine.plugins.resolvers  # noqa: B018
    table_of(engine.plugins)


__all__ = ["AppFailed", "AppOutcome", "app_directory", "app_engine", "app_label", "load_spec",
           "render_many"]
