"""The CMP calls answered by one warm engine, with no transport in sight.

:mod:`kiln.cmp.server` turns gRPC calls into calls of :class:`CmpService`; everything that
decides what the answer is lives here, and it is what ``kiln generate .``, ``kiln cmp
discover`` and ``kiln cmp parameters`` do (the same functions: :mod:`kiln.cmp.generate`,
:mod:`kiln.cmp.detect`, :mod:`kiln.cmp.announce`), for a repository held in memory.

Per request:

1. **Environment.** The request's variables (``metadata.env``: Argo CD's ``ARGOCD_APP_*``,
   ``ARGOCD_ENV_*``, ``KUBE_VERSION``/``KUBE_API_VERSIONS``, ``ARGOCD_APP_PARAMETERS`` and
   ``PARAM_*``) overlay the server's own environment in a fresh mapping
   (:meth:`kiln.core.engine.Engine.for_request`). Any other name is dropped: a request cannot
   set an operator variable (``KILN_*``, ``VAULT_*``, ``PATH``...). ``os.environ`` is never
   touched, so nothing of one request reaches another.
2. **A hit without extraction.** :class:`kiln.cmp.keymemo.KeyMemo` re-checks every part of the
   cache key an earlier render of this app recorded against the tree in memory; when all
   hold, the manifests come from the cache store by key. Only the app's ``kiln.yaml`` is
   written (to a private *skeleton* directory) so the app can be loaded for its secret
   settings; secrets are then resolved for this request, in memory.
3. **A miss** extracts the tree (``.git`` left empty) into a private directory, renders as
   ``kiln generate .`` does, records the key, and removes the directory. Identical concurrent
   requests (same stream, same app, same environment) share one render
   (:class:`kiln.server.singleflight.SingleFlight`); each still resolves its own secrets.
4. **Bounds.** Renders take a slot of a :class:`kiln.server.gate.Gate` (``--parallelism``),
   and everything runs under the request's :class:`kiln.core.deadline.Deadline` (the gRPC
   deadline minus a margin): a tool still running when it passes, or when the client cancels,
   is killed with its process group.

``kiln serve`` (:mod:`kiln.serve`) calls :meth:`CmpService.render` the same way, with a git
commit's tree for the stream and the request's kiln.yaml-shaped settings at application
level (part of the memo's request and of the single-flight key), and holds the server core's
cluster-wide lock (:attr:`kiln.server.lifecycle.ServerCore.distlock`, replicas sharing one
cache) around the lead of a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from kiln.core.errors import InputError

if TYPE_CHECKING:
    from kiln.cmp.generate import Generated
    from kiln.cmp.keymemo import Hit, KeyMemo
    from kiln.cmp.stream import Received
    from kiln.core.app import App
    from kiln.core.deadline import Deadline
    from kiln.core.engine import Engine
    from kiln.core.sourcetree import SourceTree
    from kiln.server.lifecycle import ServerCore

log = logging.getLogger("kiln.cmp.server")

REQUEST_PREFIXES = ("ARGOCD_APP_", "ARGOCD_ENV_", "PARAM_")
REQUEST_NAMES = frozenset({"KUBE_VERSION", "KUBE_API_VERSIONS"})
GIT_DIR = ".git"
KEEP_EXTRACTIONS = 2
"""Streams (by checksum) whose extracted tree is kept for the next miss."""
MAX_SKELETONS = 2048
"""App skeletons (a directory and a kiln.yaml each) kept for hits."""
ANSWER_CACHE_ENTRIES = 4096
"""Discovery and parameter answers kept per (stream, app, environment)."""


def request_variables(env: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """The variables of a request's ``metadata.env`` a CMP command may see (Argo CD's build
    env, plugin env and parameters), and the names dropped (any other name: the request may
    not set the server's own variables). Later entries win, as in a process environment."""
    kept: dict[str, str] = {}
    dropped: list[str] = []
    for name, value in env:
        if name.startswith(REQUEST_PREFIXES) or name in REQUEST_NAMES:
            kept[name] = value
        else:
            dropped.append(name)
    return kept, dropped


@dataclass(frozen=True)
class _Rendered:
    """What a leader's render tells the identical requests that waited for it."""

    key: str | None
    renderer: str
    inputs: tuple[str, ...]
    verified: frozenset[str]


@dataclass
class _Answers:
    """A small, thread-safe LRU of discovery and parameter answers (each costs an
    extraction), by stream checksum, app path and environment."""

    entries: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: str) -> Any:
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
            return self.entries.get(key)

    def put(self, key: str, value: Any) -> None:
        with self.lock:
            self.entries[key] = value
            self.entries.move_to_end(key)
            while len(self.entries) > ANSWER_CACHE_ENTRIES:
                self.entries.popitem(last=False)


class CmpService:
    """The four CMP calls for one warm ``engine``.

    ``operator_env`` is the server's own environment (what every request starts from);
    ``workdir`` a directory of this server's own (made mode 0700) for extractions;
    ``core`` holds the shared server parts (gate, flights, metrics:
    :class:`kiln.server.lifecycle.ServerCore`), ``memo`` the recorded keys.
    """

    def __init__(self, engine: Engine, *, operator_env: Mapping[str, str], workdir: Path,
                 core: ServerCore, memo: KeyMemo) -> None:
        self.engine = engine
        self.operator_env = dict(operator_env)
        self.workdir = workdir
        self.core = core
        self.gate = core.gate
        self.flights = core.flights
        self.memo = memo
        self.metrics = core.metrics
        self._answers = _Answers()
        self._skeleton_lock = threading.Lock()
        self._skeletons: OrderedDict[tuple[str, str | None, bool], Path] = OrderedDict()
        self._retired: list[Path] = []
        self._extractions = _Extractions(self)
        workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(workdir, 0o700)

    # -- the calls ---------------------------------------------------------------------------

    def generate(self, received: Received, deadline: Deadline) -> list[str]:
        """The manifests ``kiln generate .`` prints for the app, one JSON document per object
        (as argocd-cmp-server hands them to the repo-server). Raises KilnError."""
        return _json_documents(self.render(received, deadline))

    def render(self, received: Received, deadline: Deadline, *,
               settings: Mapping[str, Any] | None = None) -> Generated:
        """What :meth:`generate` answers, as the :class:`Generated` it came from (its result
        tells the cache key and whether it was a hit). ``settings`` (kiln.yaml-shaped) are
        *application* level, named "request settings" in errors: a guarded setting among
        them (where credentials go) raises TrustError unless the operator allows it. They are
        part of the key memo's request and of the single-flight key, so requests that differ
        only in settings never share a render. Raises KilnError."""
        settings = settings or None
        env = self.environment(received)
        engine = self.engine.for_request(env)
        done = self._from_memo(engine, received, env, deadline, settings)
        if done is None:
            done = self._render_once(engine, received, env, deadline, settings)
        return done

    def match(self, received: Received, deadline: Deadline) -> bool:
        """Whether ``kiln cmp discover`` claims the app (MatchRepository's isSupported)."""
        from kiln.cmp.detect import discover

        env = self.environment(received)
        answer_key = self._answer_key("match", received, env)
        found = self._answers.get(answer_key)
        if found is not None:
            return bool(found)
        engine = self.engine.for_request(env)
        with self.gate.slot(deadline), self._extracted(received, deadline) as root:
            deadline.check("discovering the app")
            kind = discover(root / received.metadata.app_rel_path, env, engine)
        self._answers.put(answer_key, kind is not None)
        return kind is not None

    def parameters(self, received: Received, deadline: Deadline) -> list[dict[str, Any]]:
        """What argocd-cmp-server answers GetParametersAnnouncement with: the dynamic
        announcements (``kiln cmp parameters``) first, then the static ones of plugin.yaml."""
        from kiln.cmp.announce import announcements
        from kiln.cmp.parameters import static_announcements, table_of

        env = self.environment(received)
        answer_key = self._answer_key("parameters", received, env)
        found = self._answers.get(answer_key)
        if found is not None:
            return json.loads(found)  # type: ignore[no-any-return]
        engine = self.engine.for_request(env)
        with self.gate.slot(deadline), self._extracted(received, deadline) as root:
            deadline.check("reading the app's parameters")
            dynamic = announcements(root / received.metadata.app_rel_path, env, engine)
        out = [*dynamic, *static_announcements(table_of(engine.plugins))]
        self._answers.put(answer_key, json.dumps(out))
        return out

    # -- environment -------------------------------------------------------------------------

    def environment(self, received: Received) -> dict[str, str]:
        """The environment this request renders under: the server's, overlaid with the
        request's own variables (:func:`request_variables`)."""
        kept, dropped = request_variables(received.metadata.env)
        if dropped:
            log.debug("request variables not passed on: %s", ", ".join(sorted(set(dropped))))
        return {**self.operator_env, **kept}

    # -- generate: memo hit ------------------------------------------------------------------

    def _from_memo(self, engine: Engine, received: Received, env: Mapping[str, str],
                   deadline: Deadline, settings: Mapping[str, Any] | None = None
                   ) -> Generated | None:
        hit = self.memo.find(received.tree, received.metadata.app_rel_path,
                             _memo_request(env, settings))
        if hit is None:
            return None
        done = self._from_key(engine, received, env, deadline, hit, settings)
        if done is not None and self.metrics is not None:
            self.metrics.count_render("hit")
            self.metrics.add_extraction_avoided_bytes(received.tree.nbytes)
        return done

    def _from_key(self, engine: Engine, received: Received, env: Mapping[str, str],
                  deadline: Deadline, hit: Hit | _Rendered,
                  settings: Mapping[str, Any] | None = None) -> Generated | None:
        """Complete a request whose cache key is known: load the app from a skeleton holding
        only its kiln.yaml, read the cache, resolve this request's secrets."""
        from kiln.cmp.generate import finish

        if hit.key is None:
            return None
        with self.gate.slot(deadline):
            app = load_for_request(engine, self._skeleton(received), env, settings)
            result = engine.render_cached(app, hit.key, renderer=hit.renderer,
                                          inputs=hit.inputs, verified=hit.verified,
                                          deadline=deadline)
            if result is None:
                return None  # evicted from the store since: render again
            return finish(app, result)

    # -- generate: a miss, once for identical requests --------------------------------------

    def _render_once(self, engine: Engine, received: Received, env: Mapping[str, str],
                     deadline: Deadline, settings: Mapping[str, Any] | None = None
                     ) -> Generated:
        mine: list[Generated] = []

        def lead() -> _Rendered:
            with self._cluster_lock(received, settings, deadline):
                done = self._render(engine, received, env, deadline, settings)
            mine.append(done)
            recipe = done.result.recipe
            return _Rendered(recipe.key if recipe is not None else None, done.result.renderer,
                             done.result.inputs, done.result.verified)

        flight = ("generate", self._answer_key("generate", received, env, settings))
        rendered, shared = self.flights.do(flight, lead, deadline)
        if not shared:
            return mine[0]
        done = self._from_key(engine, received, env, deadline, rendered, settings)
        if done is not None:
            if self.metrics is not None:
                self.metrics.count_render("hit")
            return done
        return self._render(engine, received, env, deadline, settings)

    def _cluster_lock(self, received: Received, settings: Mapping[str, Any] | None,
                      deadline: Deadline) -> contextlib.AbstractContextManager[object]:
        """The server core's cluster-wide lock (:attr:`ServerCore.distlock`, replicas sharing
        one cache) around the lead of a miss, keyed by what every replica agrees on: the
        stream checksum, the app path, the request's own variables and settings (not the
        replica's environment). No lock configured: nothing."""
        lock = self.core.distlock
        if lock is None:
            return contextlib.nullcontext()
        kept, _dropped = request_variables(received.metadata.env)
        body = json.dumps(["generate", received.metadata.checksum,
                           received.metadata.app_rel_path, sorted(kept.items()),
                           canonical_settings(settings)])
        return lock.hold("kiln:render:" + hashlib.sha256(body.encode()).hexdigest(), deadline)

    def _render(self, engine: Engine, received: Received, env: Mapping[str, str],
                deadline: Deadline, settings: Mapping[str, Any] | None = None) -> Generated:
        with self.gate.slot(deadline), self._extracted(received, deadline) as root:
            app_dir = root / received.metadata.app_rel_path
            done = generate_for_request(engine, app_dir, env, settings, deadline=deadline)
            if self.metrics is not None:
                hit = done.result.cache_hit
                self.metrics.count_render("hit" if hit else (
                    "render" if done.result.key else "uncached"))
            self.memo.record(engine, done.app, done.result, tree_root=root,
                             request=_memo_request(env, settings), tree=received.tree)
        return done

    # -- private directories -----------------------------------------------------------------

    @contextlib.contextmanager
    def _extracted(self, received: Received, deadline: Deadline) -> Iterator[Path]:
        """The stream's tree on disk (``.git`` as an empty directory: kiln finds the work
        tree's top by it and reads nothing in it): written once per stream checksum and
        shared by the requests of that stream (kiln's renderers never write into the source:
        helm builds dependencies and kustomize builds in private copies), removed once
        newer streams replaced it and no request uses it."""
        with self._extractions.use(received, deadline) as root:
            yield root

    def extract(self, tree: SourceTree, root: Path) -> int:
        """Write ``tree`` under ``root`` (see :meth:`_extracted`); the bytes written."""
        written = tree.extract(root, only=_outside_git)
        if tree.kind(GIT_DIR) == "d":
            (root / GIT_DIR).mkdir(exist_ok=True)
        if self.metrics is not None:
            self.metrics.add_extracted_bytes(written)
        return written

    def _skeleton(self, received: Received) -> Path:
        """A directory holding the app's directory and its kiln.yaml only (and an empty
        ``.git`` where the tree has one), the app loaded from it on a hit: one per app path,
        kiln.yaml content and ``.git`` presence, kept for reuse (nothing writes there)."""
        from kiln.core.app import APP_FILE

        tree = received.tree
        rel = received.metadata.app_rel_path
        app_file = tree.realpath(str(PurePosixPath(rel) / APP_FILE).removeprefix("./"))
        digest = tree.file_digest(app_file) if app_file is not None else None
        has_git = tree.kind(GIT_DIR) == "d"
        key = (rel, digest, has_git)
        with self._skeleton_lock:
            found = self._skeletons.get(key)
            if found is not None:
                self._skeletons.move_to_end(key)
                return found / rel
        root = Path(tempfile.mkdtemp(prefix="app-", dir=self.workdir))
        (root / rel).mkdir(parents=True, exist_ok=True)
        if has_git:
            (root / GIT_DIR).mkdir(exist_ok=True)
        if app_file is not None and digest is not None:
            (root / rel / APP_FILE).write_bytes(tree.read(app_file))
        with self._skeleton_lock:
            kept = self._skeletons.setdefault(key, root)
            self._skeletons.move_to_end(key)
            if kept is not root:
                self._retired.append(root)
            while len(self._skeletons) > MAX_SKELETONS:
                self._retired.append(self._skeletons.popitem(last=False)[1])
            # Removed only long after they left the map: a request that took one just
            # before is long done with it.
            doomed = self._retired[:-MAX_SKELETONS] if len(self._retired) > MAX_SKELETONS \
                else []
            del self._retired[:len(doomed)]
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
        return kept / rel

    @staticmethod
    def _answer_key(call: str, received: Received, env: Mapping[str, str],
                    settings: Mapping[str, Any] | None = None) -> str:
        parts: list[Any] = [call, received.metadata.checksum, received.metadata.app_rel_path,
                            sorted(env.items())]
        if settings:
            parts.append(canonical_settings(settings))
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


REQUEST_SETTINGS = "request settings"
"""How errors name a request's ``settings`` (application level)."""
_MEMO_SETTINGS = "PARAM_\x00request-settings"
"""The entry a request's settings take in the key memo's request mapping: under a prefix the
memo's request digest covers, with a NUL no environment variable's name can hold (so no real
variable collides with it). It exists only in the mapping handed to the memo."""


def canonical_settings(settings: Mapping[str, Any] | None) -> str:
    """``settings`` as one canonical JSON text ("" for none)."""
    if not settings:
        return ""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)


def _memo_request(env: Mapping[str, str], settings: Mapping[str, Any] | None
                  ) -> Mapping[str, str]:
    """The request mapping the key memo records and looks up under: ``env``, plus the
    settings when there are any (so two settings never share a recorded key)."""
    if not settings:
        return env
    return {**env, _MEMO_SETTINGS: canonical_settings(settings)}


def load_for_request(engine: Engine, path: Path | str, env: Mapping[str, str],
                     settings: Mapping[str, Any] | None = None, *,
                     source_root: Path | str | None = None) -> App:
    """The app at ``path`` as ``kiln generate`` loads it under ``env``
    (:func:`kiln.cmp.generate.load`), with a request's kiln.yaml-shaped ``settings`` overlaid
    at *application* level (over what ``env`` says, under nothing the operator set): errors
    name them "request settings". ``source_root`` overrides the one ``env`` implies. Raises
    ConfigError/InputError/TrustError like :meth:`Engine.load_app`."""
    from kiln.cmp.generate import load

    if not settings:
        return load(engine, path, env, source_root=source_root)
    from kiln.cmp.environment import settings_from_environment
    from kiln.cmp.parameters import table_of
    from kiln.core.trust import Level, Origin, merge_layers

    cmp = settings_from_environment(env, app_dir=os.path.abspath(path),
                                    rows=table_of(engine.plugins))
    merged, _origins = merge_layers([(Origin(Level.APPLICATION, "the request environment"),
                                      cmp.settings),
                                     (Origin(Level.APPLICATION, REQUEST_SETTINGS), settings)])
    return engine.load_app(path, app_settings=merged, app_source=REQUEST_SETTINGS,
                           source_root=source_root or cmp.source_root,
                           build_env=cmp.build_env)


def generate_for_request(engine: Engine, path: Path | str, env: Mapping[str, str],
                         settings: Mapping[str, Any] | None = None, *,
                         source_root: Path | str | None = None,
                         deadline: Deadline | None = None) -> Generated:
    """:func:`load_for_request`, then render (cache, then secrets in memory) and
    :func:`kiln.cmp.generate.finish`, as ``kiln generate`` does."""
    from kiln.cmp.generate import finish

    app = load_for_request(engine, path, env, settings, source_root=source_root)
    result = engine.render(app, secrets=True, deadline=deadline)
    return finish(app, result)


@dataclass
class _Extraction:
    """One stream's tree on disk, and the requests using it."""

    root: Path
    users: int = 0
    ready: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class _Extractions:
    """Trees extracted once per stream checksum (same checksum, same bytes, same tree),
    kept while in use and for the :data:`KEEP_EXTRACTIONS` most recent streams."""

    def __init__(self, service: CmpService) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Extraction] = OrderedDict()

    @contextlib.contextmanager
    def use(self, received: Received, deadline: Deadline) -> Iterator[Path]:
        key = received.metadata.checksum
        with self._lock:
            entry = self._entries.get(key)
            builder = entry is None
            if entry is None:
                root = Path(tempfile.mkdtemp(prefix="tree-", dir=self.service.workdir))
                entry = self._entries[key] = _Extraction(root)
            entry.users += 1
            self._entries.move_to_end(key)
        try:
            if builder:
                try:
                    self.service.extract(received.tree, entry.root)
                except BaseException as exc:
                    entry.error = exc
                    with self._lock:
                        if self._entries.get(key) is entry:
                            del self._entries[key]
                    raise
                finally:
                    entry.ready.set()
            else:
                while not entry.ready.wait(deadline.wait_timeout() or 1.0):
                    deadline.check("waiting for the repository to be written out")
                if entry.error is not None:
                    raise InputError("the repository could not be written out "
                                     f"({type(entry.error).__name__})")
                if self.service.metrics is not None:
                    self.service.metrics.add_extraction_avoided_bytes(received.tree.nbytes)
            yield entry.root
        finally:
            self._release(entry)

    def _release(self, entry: _Extraction) -> None:
        doomed: list[Path] = []
        with self._lock:
            entry.users -= 1
            if entry.error is not None and entry.users == 0:
                doomed.append(entry.root)
            idle = [k for k, e in self._entries.items() if e.users == 0]
            while len(self._entries) > KEEP_EXTRACTIONS and idle:
                doomed.append(self._entries.pop(idle.pop(0)).root)
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)


def _outside_git(rel: str) -> bool:
    return rel != GIT_DIR and not rel.startswith(GIT_DIR + "/")


def _json_documents(done: Generated) -> list[str]:
    """One JSON text per object, as argocd-cmp-server re-encodes a command's stdout (the
    server never strips, so ``done.objects`` are the result's own)."""
    return done.result.json_documents()


def check_app_path(tree: SourceTree, rel: str) -> None:
    """Raise InputError unless ``rel`` names a directory of ``tree`` (the app must be in the
    stream the repo-server sent)."""
    real = tree.realpath("" if rel == "." else rel)
    if real is None or tree.kind(real) != "d":
        raise InputError(f"the app path {rel!r} is not a directory of the repository stream",
                         source="appRelPath")


__all__ = ["REQUEST_SETTINGS", "CmpService", "canonical_settings", "check_app_path",
           "generate_for_request", "load_for_request", "request_variables"]
