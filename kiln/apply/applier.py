"""The apply itself: staged, drift-first server-side apply into an ApplySet, then prune.

:class:`Applier` takes objects someone rendered (secrets resolved) and, for each stage of
:func:`kiln.apply.staging.plan`:

1. reads each object (GET) and asks the server what applying it would give (server-side
   apply with ``dryRun=All``), several at a time;
2. applies, one after the other, only the objects whose dry-run differs from the live object
   (status and server-set metadata ignored), so an unchanged object keeps its
   ``resourceVersion``; a change to an immutable field is recreated (delete, wait until gone,
   apply) only with ``force``, else it is a one-line error naming the field;
3. waits for the stage to be Current by the kstatus rules when asked (always for the first
   stage of a wave: CRDs, Namespaces, ClusterRoles), then refreshes discovery when CRDs were
   applied, so the kinds they define resolve.

With an :class:`~kiln.apply.applyset.ApplySet`, every object is labelled as its member, and
the parent is written (only when it changes) twice: before the first write, listing the
superset of the previous and the new members, so an interrupted apply leaks nothing; and at
the end, listing exactly what is on the cluster (uids included). ``prune`` then deletes the
previous members that left the render, if they still carry the ``part-of`` label and are not
annotated to be kept (:data:`PRUNE_KEEP`), in the reverse apply order, in the background,
with a uid precondition; a delete that fails keeps its member in the inventory.

``dry_run`` sends only reads and ``dryRun=All`` requests: the cluster is left unchanged.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kiln.apply import kstatus
from kiln.apply.api import Api, ImmutableFieldError, comparable
from kiln.apply.applyset import PART_OF_LABEL, ApplySet, Member
from kiln.apply.live import place
from kiln.apply.staging import Stage, delete_order, group_of, plan, ref_of
from kiln.core.errors import ApplyError, KilnError
from kiln.core.redact import Redactor

if TYPE_CHECKING:
    from kiln.apply.cluster import Cluster
    from kiln.apply.progress import Progress

log = logging.getLogger("kiln.apply")

PRUNE_ANNOTATION = "kiln.dev/prune"
"""``kiln.dev/prune: disabled`` keeps an object on the cluster when it leaves the render."""

PRUNE_KEEP: tuple[tuple[str, str], ...] = (
    (PRUNE_ANNOTATION, "disabled"),
    ("kustomize.toolkit.fluxcd.io/prune", "disabled"),
)
"""Annotations (key, value; the value compared case-insensitively) that keep an object from
being pruned; Argo CD's ``argocd.argoproj.io/sync-options`` containing ``Prune=false`` too."""

ARGO_SYNC_OPTIONS = "argocd.argoproj.io/sync-options"

LIST_AT_LEAST = 3
"""Previous members of one kind and namespace read by one LIST instead of GETs from this many."""


@dataclass(frozen=True)
class ApplyOptions:
    """How to apply: the field manager, ``dry_run`` (server-side only), ``prune``,
    ``force`` (recreate on an immutable change), ``force_conflicts`` (take fields over from
    other managers), ``wait`` (for every stage to be Current) within ``timeout`` seconds,
    ``concurrency`` (reads and dry-runs in flight), ``poll`` (seconds between status reads)."""

    field_manager: str = "kiln"
    dry_run: bool = False
    prune: bool = False
    force: bool = False
    force_conflicts: bool = False
    wait: bool = False
    timeout: float = 300.0
    concurrency: int = 4
    poll: float = 1.0


@dataclass
class ApplyReport:
    """What an apply did, by ``Kind/namespace/name``: ``applied`` (with ``actions[ref]`` one of
    ``created``, ``configured``, ``recreated``), ``unchanged``, ``pruned``, ``kept`` (left by
    prune: annotated to be kept, or no longer labelled as a member), ``failed``; ``dry_run``
    tells that nothing was changed."""

    dry_run: bool = False
    applied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    actions: dict[str, str] = field(default_factory=dict)
    applyset: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``-o json`` summary (names only: never a field value)."""
        return {"dryRun": self.dry_run, "applyset": self.applyset,
                "applied": [{"ref": r, "action": self.actions.get(r, "configured")}
                            for r in self.applied],
                "unchanged": list(self.unchanged), "pruned": list(self.pruned),
                "kept": list(self.kept), "failed": list(self.failed)}


class PruneError(ApplyError):
    """Some deletes failed; each failure is a detail line, and their members stay listed."""

    def __init__(self, refs: list[str], errors: list[str], *, source: str | None) -> None:
        super().__init__(f"{len(refs)} object(s) could not be pruned and stay in the "
                         f"inventory (first: {refs[0]})", source=source)
        self.errors = list(errors)

    def details(self) -> list[str]:
        return self.errors


@dataclass
class _Check:
    obj: dict[str, Any]
    ref: str
    live: dict[str, Any] | None = None
    desired: dict[str, Any] | None = None
    error: KilnError | None = None
    prefetched: bool = False


def secret_values(objects: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every value of every Secret's ``data`` (decoded and as sent) and ``stringData``."""
    values: list[str] = []
    for obj in objects:
        if obj.get("kind") != "Secret":
            continue
        for value in (obj.get("stringData") or {}).values():
            values.append(str(value))
        for value in (obj.get("data") or {}).values():
            values.append(str(value))
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                values.append(base64.b64decode(str(value), validate=True).decode("utf-8"))
    return values


def _keeps(obj: Mapping[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if any(str(annotations.get(k, "")).lower() == v for k, v in PRUNE_KEEP):
        return True
    options = str(annotations.get(ARGO_SYNC_OPTIONS, ""))
    return "prune=false" in [o.strip().lower() for o in options.split(",")]


def _member_object(member: Member) -> dict[str, Any]:
    meta = {"name": member.name, **({"namespace": member.namespace} if member.namespace else {})}
    return {"apiVersion": member.api_version, "kind": member.kind, "metadata": meta}


def _crd_kinds(objects: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], bool]:
    """(group, kind) -> namespaced, for every kind the batch's CRDs define."""
    kinds = {}
    for obj in objects:
        if obj.get("kind") == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            names = spec.get("names") or {}
            if spec.get("group") and names.get("kind"):
                kinds[(str(spec["group"]), str(names["kind"]))] = spec.get("scope") != "Cluster"
    return kinds


class Applier:
    """Apply objects to one cluster (see the module docstring); reusable for many applies.

    ``applyset`` (None: no parent, labels, inventory or prune); ``redactor`` masks every
    Secret value of the batch in error text; ``progress`` is told of each step; objects that
    name no namespace go to ``namespace`` (default: the context's).
    """

    def __init__(self, cluster: Cluster, options: ApplyOptions | None = None, *,
                 applyset: ApplySet | None = None, redactor: Redactor | None = None,
                 progress: Progress | None = None, namespace: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.options = options or ApplyOptions()
        self.redactor = redactor or Redactor()
        self.api = Api(cluster, self.options.field_manager, self.redactor)
        self.cluster = cluster
        self.applyset = applyset
        self.progress = progress
        self.namespace = namespace or cluster.namespace
        self._clock = clock
        self._sleep = sleep
        self._crds: dict[tuple[str, str], bool] = {}
        self._prune_errors: list[str] = []

    # -- the whole apply ------------------------------------------------------------------

    def apply(self, objects: list[dict[str, Any]]) -> ApplyReport:
        """Apply ``objects`` (not modified); the report of what changed. Raises ApplyError
        (naming the object, and what was applied before it) on the first failure."""
        opts = self.options
        self.redactor.register_many(secret_values(objects))
        report = ApplyReport(dry_run=opts.dry_run,
                             applyset=self.applyset.id if self.applyset else None)
        desired = self._prepare(objects)
        members: dict[tuple[str, str, str, str], Member] = {}
        state = _SetState(self)
        state.load(desired)
        try:
            for stage in plan(desired, wait=opts.wait):
                self._run_stage(stage, report, members, state)
            if opts.prune and self.applyset is not None:
                self._prune(state, {Member.of(o).key for o in desired}, report)
        except ApplyError as exc:
            state.finish(members, failed=True)
            raise self._midway(exc, report) from None
        state.finish(members, failed=False)  # a failed delete's member is still listed
        if report.failed:
            raise PruneError(report.failed, self._prune_errors,
                             source=self.applyset.ref if self.applyset else None)
        if self.progress is not None:
            self.progress.finished(report)
        return report

    def _midway(self, exc: ApplyError, report: ApplyReport) -> ApplyError:
        if not report.applied and not report.pruned:
            return exc
        done = ", ".join(report.applied[:3]) + (" ..." if len(report.applied) > 3 else "")
        message = (f"{exc.message} (after applying {len(report.applied)} object(s)"
                   f"{': ' + done if done else ''}; the inventory lists them)")
        return ApplyError(message, source=exc.source)

    def _prepare(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Place each object in a namespace, label it as a member, refuse duplicates and
        unknown kinds before anything is written."""
        crd_kinds = self._crds = _crd_kinds(objects)
        prepared: list[dict[str, Any]] = []
        seen: set[tuple[str, str, str, str]] = set()
        for obj in objects:
            if not isinstance(obj, dict) or not obj.get("kind") or not obj.get("apiVersion"):
                raise ApplyError("an object without apiVersion or kind", source=ref_of(
                    obj if isinstance(obj, dict) else {}))
            if not (obj.get("metadata") or {}).get("name"):
                raise ApplyError("an object without metadata.name", source=ref_of(obj))
            scope = crd_kinds.get((group_of(obj), str(obj["kind"])))
            placed = _place_by_scope(obj, scope, self.namespace) if scope is not None \
                else place(self.api, obj, self.namespace)
            if self.applyset is not None:
                placed = self.applyset.label(placed)
            key = Member.of(placed).key
            if key in seen:
                raise ApplyError("the same object appears twice in the render",
                                 source=ref_of(placed))
            seen.add(key)
            prepared.append(placed)
        return prepared

    # -- one stage ------------------------------------------------------------------------

    def _run_stage(self, stage: Stage, report: ApplyReport,
                   members: dict[tuple[str, str, str, str], Member], state: _SetState) -> None:
        opts = self.options
        if self.progress is not None:
            self.progress.stage(stage)
        checks = self._check_all(stage.objects, state)
        for check in checks:
            if check.error is not None and not isinstance(check.error, ImmutableFieldError):
                raise check.error
        for check in checks:
            action, result = self._settle(check, state)
            if action == "unchanged":
                report.unchanged.append(check.ref)
            else:
                report.applied.append(check.ref)
                report.actions[check.ref] = action
            member = Member.of(result or check.obj)
            members[member.key] = member
            state.applied(member)
            if self.progress is not None:
                self.progress.object(check.ref, action)
        if opts.dry_run:
            return
        if stage.wait:
            self._wait([c.obj for c in checks])
        if any(o.get("kind") == "CustomResourceDefinition" for o in stage.objects):
            self.api.forget_resources()

    def _check_all(self, objects: Iterable[dict[str, Any]], state: _SetState
                   ) -> list[_Check]:
        checks = [_Check(obj, ref_of(obj)) for obj in objects]
        for check in checks:  # discovery is not thread-safe: resolve kinds first
            try:
                self.api.resource(str(check.obj["apiVersion"]), str(check.obj["kind"]),
                                  check.ref)
            except ApplyError:
                if not (self.options.dry_run and self._new_kind(check.obj)):
                    raise
                check.desired = check.obj  # a new CRD's kind in a dry run: nothing to ask
        pending = [c for c in checks if c.desired is None]
        self._prefetch(pending, state)
        workers = max(1, min(self.options.concurrency, len(pending)))
        if workers == 1:
            for check in pending:
                self._check(check)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(self._check, pending))
        return checks

    def _new_kind(self, obj: Mapping[str, Any]) -> bool:
        return (group_of(dict(obj)), str(obj.get("kind"))) in self._crds

    def _prefetch(self, checks: list[_Check], state: _SetState) -> None:
        """Read the live state of previous members with one LIST per kind and namespace
        (label ``part-of``) instead of one GET each; what the LIST misses is read by GET."""
        if self.applyset is None:
            return
        previous = {m.key for m in state.previous}
        groups: dict[tuple[str, str, str], list[_Check]] = {}
        for check in checks:
            member = Member.of(check.obj)
            if member.key in previous:
                groups.setdefault((member.api_version, member.kind, member.namespace),
                                  []).append(check)
        selector = f"{PART_OF_LABEL}={self.applyset.id}"
        for (_, _, namespace), group in groups.items():
            if len(group) < LIST_AT_LEAST:
                continue
            found = {Member.of(item).key: item for item in self.api.list(
                group[0].obj, namespace or None, selector, group[0].ref)}
            for check in group:
                live = found.get(Member.of(check.obj).key)
                if live is not None:
                    check.live, check.prefetched = live, True

    def _check(self, check: _Check) -> None:
        try:
            if not check.prefetched:
                check.live = self.api.get(check.obj, check.ref)
            check.desired = self.api.apply(check.obj, check.ref, dry_run=True,
                                           force=self.options.force_conflicts)
        except KilnError as exc:
            check.error = exc

    def _settle(self, check: _Check, state: _SetState) -> tuple[str, dict[str, Any] | None]:
        """Apply one checked object if it drifted: (action, the object the server holds)."""
        opts = self.options
        if isinstance(check.error, ImmutableFieldError):
            if not opts.force:
                raise check.error
            if opts.dry_run:
                return "recreated", check.live
            state.before_write()
            self._recreate(check)
            return "recreated", self.api.apply(check.obj, check.ref,
                                               force=opts.force_conflicts)
        if check.live is not None and comparable(check.desired) == comparable(check.live):
            return "unchanged", check.live
        action = "created" if check.live is None else "configured"
        if opts.dry_run:
            return action, check.live
        state.before_write()
        try:
            result = self.api.apply(check.obj, check.ref, force=opts.force_conflicts)
        except ImmutableFieldError:
            if not opts.force:
                raise
            self._recreate(check)
            return "recreated", self.api.apply(check.obj, check.ref, force=opts.force_conflicts)
        log.debug("%s %s", check.ref, action)
        return action, result

    def _recreate(self, check: _Check) -> None:
        uid = ((check.live or {}).get("metadata") or {}).get("uid")
        self.api.delete(check.obj, check.ref, str(uid) if uid else None)
        deadline = self._clock() + self.options.timeout
        while self.api.get(check.obj, check.ref) is not None:
            if self._clock() > deadline:
                raise ApplyError("timed out waiting for the old object to be deleted",
                                 source=check.ref)
            self._sleep(self.options.poll)

    # -- waiting --------------------------------------------------------------------------

    def _wait(self, objects: list[dict[str, Any]]) -> None:
        """Poll until every object is Current; Failed or the timeout is an ApplyError."""
        pending = {ref_of(o): o for o in objects}
        deadline = self._clock() + self.options.timeout
        while True:
            states: dict[str, kstatus.Status] = {}
            for ref, obj in list(pending.items()):
                found = kstatus.status_of(self.api.get(obj, ref))
                if found.status == kstatus.CURRENT:
                    del pending[ref]
                elif found.status == kstatus.FAILED:
                    raise ApplyError(f"failed: {found.message}", source=ref)
                else:
                    states[ref] = found
            if not pending:
                return
            if self.progress is not None:
                self.progress.waiting(sorted(pending))
            if self._clock() >= deadline:
                first = sorted(states)[0]
                raise ApplyError(
                    f"timed out after {self.options.timeout:g}s waiting for {len(pending)} "
                    f"object(s) to be Current (first: {first}: {states[first].status}, "
                    f"{states[first].message})", source=first)
            self._sleep(self.options.poll)

    # -- prune ----------------------------------------------------------------------------

    def _prune(self, state: _SetState, keep: set[tuple[str, str, str, str]],
               report: ApplyReport) -> None:
        assert self.applyset is not None
        stale = [m for m in state.previous if m.key not in keep]
        by_key = {m.key: m for m in stale}
        for obj in delete_order([_member_object(m) for m in stale]):
            member = by_key[Member.of(obj).key]
            ref = ref_of(obj)
            try:
                live = self.api.get(obj, ref)
                labels = ((live or {}).get("metadata") or {}).get("labels") or {}
                if live is None:
                    state.gone(member)
                    continue
                if labels.get(PART_OF_LABEL) != self.applyset.id:
                    state.gone(member)  # no longer ours: left alone, and out of the set
                    report.kept.append(ref)
                    continue
                if _keeps(live):
                    report.kept.append(ref)
                    continue
                uid = str((live.get("metadata") or {}).get("uid") or "") or None
                if not self.options.dry_run:
                    self.api.delete(obj, ref, uid)
                    state.gone(member)
                report.pruned.append(ref)
                if self.progress is not None:
                    self.progress.object(ref, "pruned")
            except ApplyError as exc:
                report.failed.append(ref)
                self._prune_errors.append(exc.one_line())


def _place_by_scope(obj: dict[str, Any], namespaced: bool, namespace: str) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    if namespaced and not meta.get("namespace"):
        return {**obj, "metadata": {**meta, "namespace": namespace}}
    if not namespaced and "namespace" in meta:
        return {**obj, "metadata": {k: v for k, v in meta.items() if k != "namespace"}}
    return obj


class _SetState:
    """The ApplySet parent across one apply: the previous members, the superset written
    before the first change, and the exact set written at the end."""

    def __init__(self, applier: Applier) -> None:
        self.applier = applier
        self.previous: list[Member] = []
        self.live_parent: dict[str, Any] | None = None
        self._members: dict[tuple[str, str, str, str], Member] = {}
        self._desired: list[Member] = []
        self._objects: list[dict[str, Any]] = []
        self._superset_written = False

    @property
    def _set(self) -> ApplySet | None:
        return self.applier.applyset

    def load(self, desired: list[dict[str, Any]]) -> None:
        """Read the live parent and its inventory (refusing another tool's set)."""
        applyset = self._set
        if applyset is None:
            return
        self._objects = desired
        parent = applyset.parent([])
        self.live_parent = self.applier.api.get(parent, applyset.ref)
        applyset.check_parent(self.live_parent)
        self.previous = applyset.inventory(self.live_parent)
        self._members = {m.key: m for m in self.previous}
        previous = dict(self._members)
        for obj in desired:
            member = Member.of(obj)
            known = previous.get(member.key)
            self._desired.append(Member(member.api_version, member.kind, member.namespace,
                                        member.name, known.uid if known else ""))

    def applied(self, member: Member) -> None:
        """Note the member as the server now holds it (its uid)."""
        if self._set is not None:
            self._members[member.key] = member

    def gone(self, member: Member) -> None:
        """Note a previous member as deleted (or no longer a member)."""
        self._members.pop(member.key, None)

    def before_write(self) -> None:
        """Before the first change: the parent lists the old and new members together."""
        applyset = self._set
        if applyset is None or self._superset_written or self.applier.options.dry_run:
            return
        superset = {m.key: m for m in self.previous}
        for member in self._desired:
            superset.setdefault(member.key, member)
        try:
            self._write(list(superset.values()))
        except ApplyError as exc:
            # The parent's namespace may be one this apply creates: create it first.
            namespace = self._namespace_object(applyset.namespace)
            if namespace is None or "does not exist" not in exc.message:
                raise
            self.applier.api.apply(namespace, ref_of(namespace),
                                   force=self.applier.options.force_conflicts)
            self._write(list(superset.values()))
        self._superset_written = True

    def _namespace_object(self, name: str) -> dict[str, Any] | None:
        for obj in self._objects:
            if obj.get("kind") == "Namespace" and group_of(obj) == "" and \
                    (obj.get("metadata") or {}).get("name") == name:
                return obj
        return None

    def finish(self, members: Mapping[tuple[str, str, str, str], Member], *,
               failed: bool) -> None:
        """Write the final inventory: every member still on the cluster (uids updated).

        After a failure the superset stays, with the uids learnt so far; a failure to write
        the parent then is only logged (the first error is the one reported)."""
        applyset = self._set
        if applyset is None or self.applier.options.dry_run:
            return
        if failed and not self._superset_written:
            return  # nothing was written: the parent stays as it was
        current = dict(self._members)
        if failed:
            for member in self._desired:
                current.setdefault(member.key, member)
        current.update({k: m for k, m in members.items()})
        try:
            self._write(list(current.values()))
        except ApplyError as exc:
            if not failed:
                raise
            log.warning("the ApplySet parent could not be updated: %s", exc.one_line())

    def _write(self, members: list[Member]) -> None:
        applyset = self._set
        assert applyset is not None
        parent = applyset.parent(members)
        if self.live_parent is not None and _same_parent(parent, self.live_parent):
            return
        self.live_parent = self.applier.api.apply(parent, applyset.ref, force=True)


def _same_parent(desired: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    want, have = desired.get("metadata") or {}, live.get("metadata") or {}
    for key in ("labels", "annotations"):
        mine = want.get(key) or {}
        theirs = have.get(key) or {}
        if any(theirs.get(k) != v for k, v in mine.items()):
            return False
    return (desired.get("data") or {}) == {k: v for k, v in (live.get("data") or {}).items()
                                           if k in (desired.get("data") or {})}


def parse_applyset(text: str | None, default: str, namespace: str) -> ApplySet:
    """The parent ``--applyset`` names: ``NAME``, ``secret/NAME`` or ``configmap/NAME``
    (plural forms too) in ``namespace``; ``default`` names it when ``text`` is None."""
    kinds = {"secret": "Secret", "secrets": "Secret", "configmap": "ConfigMap",
             "configmaps": "ConfigMap"}
    if not text:
        return ApplySet(default, namespace)
    resource, sep, name = text.partition("/")
    if not sep:
        return ApplySet(text, namespace)
    kind = kinds.get(resource.lower())
    if kind is None:
        raise ApplyError("an ApplySet parent is a secret or a configmap ([secret|configmap/]"
                         "NAME)", source=f"--applyset {text!r}")
    return ApplySet(name, namespace, kind)


def resolved_objects(engine: Any, app: Any) -> list[dict[str, Any]]:
    """Render ``app`` with secrets resolved (a reference left unresolved is an error: it
    would reach the cluster as text) and run the ``kiln_before_apply`` hooks on the objects."""
    from kiln.core.errors import SecretErrors

    result = engine.render(app, secrets=True)
    leftover = result.unresolved()
    if leftover:
        raise SecretErrors(leftover)
    objects: list[dict[str, Any]] = result.objects
    engine.plugins.before_apply(app, objects)
    return objects


def apply_app(engine: Any, app: Any, objects: list[dict[str, Any]] | None = None, *,
              cluster: Any = None, options: ApplyOptions | None = None,
              applyset: str | None = None, progress: Progress | None = None) -> ApplyReport:
    """What :meth:`kiln.core.engine.Engine.apply` does: render ``app`` (or take ``objects``
    rendered elsewhere, which then only go through ``kiln_before_apply``), connect as
    ``cluster`` (a :class:`~kiln.apply.cluster.ClusterOptions`; default: kubectl's rules)
    and apply into the ApplySet ``applyset`` (default ``kiln-<app name>``, in the app's
    namespace, else the context's)."""
    from kiln.apply.applyset import default_name
    from kiln.apply.cluster import ClusterOptions, connect

    if objects is None:
        objects = resolved_objects(engine, app)
    else:
        engine.plugins.before_apply(app, objects)
    with connect(cluster or ClusterOptions(), engine.env) as conn:
        namespace = app.namespace or conn.namespace
        target = parse_applyset(applyset, default_name(app.display_name), namespace)
        applier = Applier(conn, options, applyset=target, redactor=engine.redactor,
                          progress=progress, namespace=namespace)
        return applier.apply(objects)
