"""``kiln diff --applications DIR --against REV``: a pull request's diff of every Argo CD
Application of a repository, with no cluster.

The Applications are read twice — from ``DIR`` in the working tree, and from the same path in
a private detached worktree at the base (:func:`base_commit`: by default the merge base of
``HEAD`` and ``REV``, the commit GitHub's pull-request diff starts from) — and paired by
Application name (:func:`pair_apps`). Both sides are rendered by one engine
(:func:`kiln.many.runner.render_many`): the working tree first, while git checks the base out
in a thread, then the base. An app whose inputs did not change between the two revisions has
the same content-addressed cache key on both sides: on the base side it is a cache hit. Each
pair is then diffed with :func:`kiln.diff.objects.diff_objects` and masked by the caller's
:class:`kiln.diff.mask.MaskPolicy`, as the single-app ``--against`` diff does (secrets
resolved in memory on both sides, unless the caller asks for references as stored).

An app added by the pull request has every object ``added``, a removed one every object
``removed``; an app whose ``path`` changed is reported as moved (its objects compared
as usual). An app that fails on either side is reported with its errors (naming the side and
the app) and the other apps are still diffed.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from kiln.core.errors import ConfigError, InputError, KilnError

if TYPE_CHECKING:
    from kiln.core.engine import Engine
    from kiln.diff.mask import MaskPolicy
    from kiln.diff.objects import DiffResult

log = logging.getLogger("kiln.diff")

AppState = Literal["added", "removed", "changed", "unchanged", "failed"]
APP_STATES: tuple[AppState, ...] = ("added", "removed", "changed", "unchanged", "failed")
WORKING_TREE = "working tree"
"""How errors name the side of the working tree."""
AFTER_LABEL = "desired"
"""The label of the working tree's side in diff headers (as the single-app diff)."""


class Spec(Protocol):
    """What pairing needs of a :class:`kiln.apps.model.AppSpec`."""

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def origin(self) -> str: ...


class Outcome(Protocol):
    """What diffing needs of a :class:`kiln.many.runner.AppOutcome`."""

    @property
    def spec(self) -> Any: ...
    @property
    def result(self) -> Any: ...
    @property
    def error(self) -> KilnError | None: ...


@dataclass(frozen=True)
class AppPair:
    """One Application on both sides (None: not there)."""

    name: str
    before: Spec | None
    after: Spec | None

    @property
    def path(self) -> str:
        """The app's path in the working tree (at the base for a removed app)."""
        spec = self.after if self.after is not None else self.before
        assert spec is not None
        return spec.path

    @property
    def moved(self) -> bool:
        """True when the Application is on both sides with different paths."""
        return (self.before is not None and self.after is not None
                and self.before.path != self.after.path)


def pair_apps(before: Iterable[Spec], after: Iterable[Spec]) -> list[AppPair]:
    """The Applications of both sides paired by name, sorted by name. Raises ConfigError
    naming both declarations when one side declares one name twice (Argo CD would hold
    only one of them)."""
    old = _by_name(before)
    new = _by_name(after)
    return [AppPair(name, old.get(name), new.get(name)) for name in sorted({*old, *new})]


def _by_name(specs: Iterable[Spec]) -> dict[str, Spec]:
    found: dict[str, Spec] = {}
    for spec in specs:
        if spec.name in found:
            raise ConfigError(f"two Applications named {spec.name!r} (also "
                              f"{found[spec.name].origin})", source=spec.origin)
        found[spec.name] = spec
    return found


@dataclass(frozen=True)
class AppDiff:
    """One Application's difference: its objects' (``result``; None when it failed on a
    side) and the one-line errors of the sides it failed on."""

    name: str
    path: str
    before_path: str | None
    after_path: str | None
    result: DiffResult | None
    errors: tuple[str, ...] = ()

    @property
    def moved(self) -> bool:
        """True when the Application's path differs between the two sides."""
        return (self.before_path is not None and self.after_path is not None
                and self.before_path != self.after_path)

    @property
    def state(self) -> AppState:
        """``failed`` (on either side), ``added``, ``removed``, ``changed`` (an object
        differs) or ``unchanged`` (a move alone changes no object: ``unchanged``)."""
        if self.errors or self.result is None:
            return "failed"
        if self.before_path is None:
            return "added"
        if self.after_path is None:
            return "removed"
        return "changed" if self.result.changed else "unchanged"

    @property
    def changed(self) -> bool:
        """True when an object of the app is added, removed or changed."""
        return self.result is not None and self.result.changed


@dataclass(frozen=True)
class ManyDiff:
    """Every Application's difference, sorted by name; ``labels`` name the two sides,
    ``base`` is the commit the base side was rendered at."""

    apps: tuple[AppDiff, ...]
    labels: tuple[str, str] = ("base", AFTER_LABEL)
    base: str = ""

    @property
    def changed(self) -> bool:
        """True when any app's objects changed."""
        return any(app.changed for app in self.apps)

    @property
    def failed(self) -> bool:
        """True when any app failed on a side."""
        return any(app.state == "failed" for app in self.apps)

    def counts(self) -> dict[str, int]:
        """How many apps are in each state (every state present, zeros included)."""
        counts: dict[str, int] = dict.fromkeys(APP_STATES, 0)
        for app in self.apps:
            counts[app.state] += 1
        return counts

    @property
    def exit_code(self) -> int:
        """2 when an app failed, else 1 when anything changed, else 0."""
        return 2 if self.failed else 1 if self.changed else 0


def _error_line(spec: Spec, side: str, error: KilnError | None) -> str:
    """``<app> at <side>: <the app's own error>`` (the app named as ``kiln render`` names
    it: ``<path> (Application <name>)``)."""
    from kiln.many.runner import app_label

    cause = getattr(error, "cause", error)
    text = cause.one_line() if isinstance(cause, KilnError) else "failed"
    return f"{app_label(spec)} at {side}: {text}"  # type: ignore[arg-type]


def diff_pairs(pairs: Sequence[AppPair], before: Mapping[str, Outcome],
               after: Mapping[str, Outcome], *, policy: MaskPolicy,
               labels: tuple[str, str] = ("base", AFTER_LABEL), context: int = 3,
               sides: tuple[str, str] = ("base", WORKING_TREE), base: str = "") -> ManyDiff:
    """Diff every pair from the outcomes of its two sides (by Application name), masked by
    ``policy``. A side with no spec holds no objects; a side whose outcome failed makes the
    app ``failed`` with one error line naming the app and the side (``sides``):
    ``<path> (Application <name>) at <side>: <error>``, redacted by the policy's redactor
    (every value resolved on either side, credential shapes)."""
    from kiln.core.redact import Redactor
    from kiln.diff.objects import diff_objects

    redact = (policy.redactor or Redactor()).redact  # run after every value was resolved
    apps = []
    for pair in pairs:
        objects: list[list[dict[str, Any]]] = []
        errors: list[str] = []
        for spec, outcomes, side in ((pair.before, before, sides[0]),
                                     (pair.after, after, sides[1])):
            if spec is None:
                objects.append([])
                continue
            outcome = outcomes.get(pair.name)
            if outcome is None or outcome.result is None:
                errors.append(_error_line(spec, side,
                                          outcome.error if outcome is not None else None))
                continue
            objects.append(outcome.result.objects)
        result = None
        if not errors:
            try:
                result = diff_objects(objects[0], objects[1], policy=policy, labels=labels,
                                      context=context)
            except KilnError as exc:  # two objects of one identity on a side
                either = pair.after if pair.after is not None else pair.before
                assert either is not None
                errors.append(_error_line(either, "both sides", exc))
        apps.append(AppDiff(pair.name, pair.path,
                            pair.before.path if pair.before is not None else None,
                            pair.after.path if pair.after is not None else None,
                            result, tuple(redact(e) for e in errors)))
    return ManyDiff(tuple(apps), labels, base)


# -- the git side ---------------------------------------------------------------------------


def base_commit(repo: Path, commit: str, *, merge_base: bool, source: str) -> str:
    """The commit the base side is rendered at: ``commit`` itself, or with ``merge_base`` the
    merge base of ``HEAD`` and ``commit`` (``git merge-base HEAD REV``, as GitHub's
    pull-request diff). Raises ConfigError naming ``source`` when they share no history."""
    if not merge_base:
        return commit
    from kiln.diff.against import run_git

    proc = run_git(["merge-base", "HEAD", commit], repo, source)
    found = proc.stdout.strip()
    if proc.returncode != 0 or not found:
        raise ConfigError("HEAD and the revision have no common ancestor (use "
                          "--no-merge-base to diff against the revision itself)", source=source)
    return found


def _inside(path: Path, root: Path) -> bool:
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root


@dataclass(frozen=True)
class Options:
    """How both sides are rendered: operator settings (flags), secrets resolved or not, the
    number of threads, repository URLs meaning this checkout besides the remotes', the merge
    base or the revision itself, lines of context."""

    settings: Mapping[str, Any] | None = None
    secrets: bool = True
    jobs: int | None = None
    repo_urls: tuple[str, ...] = ()
    merge_base: bool = True
    context: int = 3


ProgressFactory = Callable[[int, str], Any]
"""``(total, label) -> context manager yielding a Progress or None``."""


def diff_applications(engine: Engine, target: Path | str, against: str, *,
                      policy: MaskPolicy, options: Options = Options(),
                      progress: ProgressFactory | None = None) -> ManyDiff:
    """Diff every Application in ``target`` (a file or directory of the working tree) with
    the same path at ``against`` (its merge base with HEAD unless ``options.merge_base`` is
    False), rendering both sides with ``engine`` and masking with ``policy``.

    Raises (a KilnError naming ``--applications`` or ``--against``) when ``target`` is
    missing or outside a git repository, the revision names no commit, or the Applications
    of either side cannot be read; an app failing to render is reported in its AppDiff.
    """
    from kiln.diff.against import _relabel, repository_of, resolve_revision

    source = f"--against {against}"
    here = Path(os.path.abspath(target))
    if not here.exists():
        raise InputError("no such file or directory", source=str(target))
    repo = repository_of(here if here.is_dir() else here.parent, source)
    if not _inside(here, repo):
        raise ConfigError(f"outside the git repository {repo}", source=str(target))
    rel = Path(os.path.relpath(os.path.realpath(here), os.path.realpath(repo)))
    commit = resolve_revision(repo, against, source)
    base = base_commit(repo, commit, merge_base=options.merge_base, source=source)
    urls = _repo_urls(repo, options.repo_urls)
    after_specs = _load(here, repo, urls)
    with _checked_out(repo, base, source) as pending:
        # The working tree renders while git checks the base out (the checkout is I/O).
        after = _render_side(engine, repo, after_specs, options, progress, WORKING_TREE)
        tree = pending()
        prefix = f"{tree}{os.sep}"
        there = tree / rel
        if not _inside(there, tree):
            raise InputError(f"{rel} is a symlink leaving the repository at {against}",
                             source=source)
        try:
            before_specs = _load(there, tree, urls) if _declares(there) else []
        except KilnError as exc:
            _relabel(exc, prefix, f"{against}:")
            raise
        if not before_specs:
            log.warning("%s declared no Application at %s: every Application is new", rel,
                        against)
        pairs = pair_apps(before_specs, after_specs)
        before = _render_side(engine, tree, before_specs, options, progress, against)
        for outcome in before.values():
            for error in (outcome.error, getattr(outcome.error, "cause", None)):
                if isinstance(error, KilnError):
                    _relabel(error, prefix, f"{against}:")
    side = against if base == commit else f"{against} (merge base {base[:12]})"
    return diff_pairs(pairs, before, after, policy=policy, labels=(against, AFTER_LABEL),
                      context=options.context, sides=(side, WORKING_TREE), base=base)


def _declares(target: Path) -> bool:
    """Whether ``target`` exists and holds an Application or ApplicationSet (at the base, a
    directory the pull request creates or fills holds none: every app is new)."""
    from kiln.apps.reader import argo_objects

    return target.exists() and next(iter(argo_objects(target)), None) is not None


def _repo_urls(repo: Path, extra: Sequence[str]) -> list[str]:
    """The repoURLs meaning this checkout: every remote's URL (as ``kiln render
    --applications``) and ``extra``; none at all means every git source is this checkout."""
    from kiln.many.command import remote_urls

    return [*remote_urls(repo), *(u for u in extra if u)]


def _load(target: Path, root: Path, repo_urls: Sequence[str]) -> list[Any]:
    from kiln.apps import load_applications

    return list(load_applications(target, repo_root=root, repo_urls=repo_urls))


@contextlib.contextmanager
def _checked_out(repo: Path, commit: str, source: str) -> Iterator[Callable[[], Path]]:
    """Start checking ``commit`` out into a private worktree
    (:func:`kiln.diff.against.worktree`) in a thread; the block gets a function waiting for
    it and returning its path. However the block ends, the checkout is waited for and the
    worktree removed."""
    from concurrent.futures import ThreadPoolExecutor

    from kiln.diff.against import worktree

    checkout = worktree(repo, commit, source)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kiln-checkout")
    future = pool.submit(checkout.__enter__)
    try:
        yield future.result
    finally:
        pool.shutdown(wait=True)
        if future.exception() is None:
            checkout.__exit__(None, None, None)


def _render_side(engine: Engine, root: Path, specs: Sequence[Any], options: Options,
                 progress: ProgressFactory | None, label: str) -> Mapping[str, Outcome]:
    """Render one side's apps (a progress display of its own), outcomes by app name."""
    from kiln.many.runner import render_many

    display = progress(len(specs), label) if progress is not None else None
    with display if display is not None else contextlib.nullcontext() as shown:
        outcomes = render_many(engine, root, specs, settings=options.settings,
                               secrets=options.secrets, jobs=options.jobs, progress=shown)
    return {o.spec.name: o for o in outcomes}
