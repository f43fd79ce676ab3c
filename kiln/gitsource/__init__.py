"""Git sources for ``kiln serve``: bare mirrors per repository URL, revisions resolved to
commits, and a commit's tree read from the object database (never a working copy).

:class:`GitSources` is the whole interface (``docs/git-sources.md``):

- :meth:`GitSources.resolve` turns a branch, tag, ``HEAD``, full or abbreviated commit id
  into a full commit id. A full commit id already in the mirror costs one local ``git
  cat-file``; anything else asks the remote (``git ls-remote``, its answer kept
  :data:`REF_TTL` seconds so a burst of requests asks once) and fetches only when the commit
  is not in the mirror yet. Concurrent callers share one ``ls-remote`` and one fetch per
  repository (:class:`kiln.gitsource.shared.SharedWork`: run in the background, each caller
  waiting with its own deadline), fetches into one mirror run one at a time.
- :meth:`GitSources.tree` gives the commit's whole tree as a
  :class:`kiln.core.sourcetree.SourceTree`, cached per (URL, commit) in a
  :class:`~kiln.core.sourcetree.SourceTreeCache`; file sha256s come from a blob id -> sha256
  memo shared by every commit (a blob hashed once is never hashed again).
- :meth:`GitSources.health` and :meth:`GitSources.stats` for ``/readyz`` and metrics.

Security: URLs are normalised and matched against the operator's allow patterns
(:mod:`kiln.gitsource.urls`; credentials in a URL are refused), git runs with hooks off,
only five transports, no prompts, and the operator's environment only
(:mod:`kiln.gitsource.git`); a revision string never reaches git's command line.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.core.sourcetree import SourceTree, SourceTreeCache
from kiln.gitsource.errors import (
    GitPathError,
    GitRemoteError,
    GitRevisionError,
    GitSourceError,
    GitTimeout,
    GitTreeError,
    GitTreeTooLarge,
    GitURLRefused,
)
from kiln.gitsource.git import GitRunner
from kiln.gitsource.mirror import FULL_REFSPECS, Mirror, acquire, mirror_name
from kiln.gitsource.refs import (
    Refs,
    is_abbreviated_id,
    is_commit_id,
    revision_problem,
)
from kiln.gitsource.shared import SharedWork
from kiln.gitsource.trees import MAX_MEMO_ENTRIES, BlobMemo, TreeLimits, build_tree
from kiln.gitsource.urls import check_allowed, is_local, normalize_url, redact_url

if TYPE_CHECKING:
    from kiln.core.deadline import Deadline

log = logging.getLogger("kiln.gitsource")

REF_TTL = 3.0
"""Seconds a remote's advertised refs are reused: a burst of requests for a branch asks the
remote once; a push is seen at most this long after it happened."""
TREE_CACHE_BYTES = 256 << 20
"""Default memory for cached commit trees."""
KNOWN_REPOSITORIES = 8
"""Repositories whose last tree's blobs are kept for the next commit's tree."""
ALLOWED_ENV = "KILN_GIT_ALLOWED_URLS"
TIMEOUT_ENV = "KILN_GIT_TIMEOUT"
SHALLOW_ENV = "KILN_GIT_SHALLOW"
REF_TTL_ENV = "KILN_GIT_REF_TTL"
TREE_CACHE_ENV = "KILN_GIT_TREE_CACHE_BYTES"


class GitSources:
    """Bare mirrors of git repositories under ``cache_dir`` (see the module docstring).

    ``allowed``: URL patterns (:func:`fnmatch.fnmatchcase` on the normalised URL) the
    operator allows; empty: any (``file://`` included). ``timeout``: seconds one git command
    may take (a caller's deadline shortens it). ``shallow``: fetch only the asked ref, one
    commit deep. ``env``: the operator's environment git runs in (credentials come from it
    and git's own configuration only); default kiln's own. ``ref_ttl``: see
    :data:`REF_TTL`. ``limits``: caps on one commit's tree. Thread-safe.
    """

    def __init__(self, cache_dir: Path, *, allowed: Sequence[str] = (), timeout: float = 120.0,
                 shallow: bool = False, env: Mapping[str, str] | None = None,
                 ref_ttl: float = REF_TTL, limits: TreeLimits | None = None,
                 tree_cache_bytes: int = TREE_CACHE_BYTES,
                 memo_entries: int = MAX_MEMO_ENTRIES) -> None:
        self.cache_dir = Path(cache_dir)
        self.allowed = tuple(allowed)
        self.shallow = shallow
        self.ref_ttl = ref_ttl
        self.limits = limits or TreeLimits()
        self._runner = GitRunner(env, timeout)
        self._lock = threading.Lock()
        self._mirrors: dict[str, Mirror] = {}
        self._refs: dict[str, tuple[float, Refs]] = {}
        self._work: SharedWork[tuple[str, ...], Any] = SharedWork()
        self._trees = SourceTreeCache(tree_cache_bytes)
        self._memo = BlobMemo(memo_entries)
        self._known: OrderedDict[str, tuple[dict[str, bytes], int]] = OrderedDict()
        self._known_bytes = 0
        self._known_max = tree_cache_bytes
        self._counts = {"fetches": 0, "lsRemotes": 0, "treesBuilt": 0, "errors": 0}
        self._fetch_seconds = 0.0
        self._last_error: str | None = None
        self.on_fetch: Callable[[float], None] | None = None
        """Called with the seconds of each fetch (a metrics hook)."""

    @classmethod
    def from_env(cls, cache_dir: Path, env: Mapping[str, str], *,
                 limits: TreeLimits | None = None) -> GitSources:
        """GitSources configured by the operator's variables: ``KILN_GIT_ALLOWED_URLS``
        (patterns separated by commas or whitespace), ``KILN_GIT_TIMEOUT`` (seconds),
        ``KILN_GIT_SHALLOW`` (``1``/``true``), ``KILN_GIT_REF_TTL`` (seconds),
        ``KILN_GIT_TREE_CACHE_BYTES`` (a size); the tree limits, unless given, are the CMP
        stream's (``KILN_CMP_MAX_TREE_BYTES``, ``KILN_CMP_MAX_FILES``); ``env`` is also the
        environment git runs in. Raises ConfigError naming a bad variable."""
        from kiln.core.errors import ConfigError

        def seconds(name: str, default: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"must be a number of seconds, not {raw!r}",
                                  source=name) from None
            if not 0 <= value < float("inf"):
                raise ConfigError(f"must be a number of seconds, not {raw!r}", source=name)
            return value

        shallow_raw = env.get(SHALLOW_ENV, "").strip().lower()
        if shallow_raw not in ("", "0", "1", "true", "false", "yes", "no"):
            raise ConfigError(f"must be 1 or 0, not {shallow_raw!r}", source=SHALLOW_ENV)
        cache_raw = env.get(TREE_CACHE_ENV, "").strip()
        tree_bytes = TREE_CACHE_BYTES
        if cache_raw:
            from kiln.core.cache.size import parse_size

            tree_bytes = parse_size(cache_raw, source=TREE_CACHE_ENV)
        if limits is None:
            from kiln.cmp.stream import StreamLimits

            stream = StreamLimits.from_env(env)
            limits = TreeLimits(max_bytes=stream.max_bytes, max_files=stream.max_files)
        patterns = env.get(ALLOWED_ENV, "").replace(",", " ").split()
        timeout = seconds(TIMEOUT_ENV, 120.0) or 120.0
        return cls(cache_dir, allowed=patterns, timeout=timeout,
                   shallow=shallow_raw in ("1", "true", "yes"), env=env,
                   ref_ttl=seconds(REF_TTL_ENV, REF_TTL), limits=limits,
                   tree_cache_bytes=tree_bytes)

    # -- the interface -------------------------------------------------------------------

    def resolve(self, url: str, revision: str, deadline: Deadline) -> str:
        """The commit id ``revision`` (branch, tag, commit, HEAD) names in ``url``, fetching
        into the bare mirror on demand (one fetch at a time per repository; concurrent callers
        share it). Raises GitURLRefused (403), GitRevisionError (404: no such revision),
        GitRemoteError / GitTimeout (502 / 504: the remote is unreachable or slow), or the
        deadline's error."""
        try:
            return self._resolve(url, revision, deadline)
        except GitRemoteError as exc:
            self._failed(exc)
            raise

    def tree(self, url: str, commit: str, deadline: Deadline) -> SourceTree:
        """The commit's whole tree as a :class:`SourceTree`, cached per (URL, commit); file
        sha256s from a blob id -> sha256 memo shared across commits (a blob seen in any
        earlier commit is never hashed again). ``commit`` must be a full commit id (from
        :meth:`resolve`). Raises GitURLRefused, GitRevisionError (no such commit),
        GitTreeTooLarge / GitTreeError (a tree kiln refuses), GitRemoteError, or the
        deadline's error."""
        normalized = self._url(url)
        problem = revision_problem(commit)
        commit = commit.lower() if isinstance(commit, str) else commit
        if problem is not None or not is_commit_id(commit):
            raise GitRevisionError(f"{commit!r} is not a full commit id (resolve the "
                                   "revision first)"[:300], source=_source(normalized))
        key = f"{normalized}\0{commit}"
        tree = self._trees.get(key)
        if tree is not None:
            return tree

        def build() -> SourceTree:
            built = self._trees.get(key)  # built while this caller was on its way
            if built is None:
                built = self._build(normalized, commit)
                self._trees.put(key, built)
            return built

        try:
            tree, _ = self._work.do(("tree", key), build, deadline,
                                    "waiting for a git tree to be read")
        except GitRemoteError as exc:
            self._failed(exc)
            raise
        return tree  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop: every git process still running is killed (its process group), and git
        commands asked for afterwards fail with GitRemoteError. For a server's shutdown."""
        self._runner.close()

    def health(self) -> dict[str, Any]:
        """``{"ok": bool, "repositories": n, "lastError": str|None}`` for ``/readyz``: ok
        when git is installed and the cache directory is usable; ``repositories`` the
        mirrors on disk; ``lastError`` the last remote failure (one line, credentials
        masked), None when there was none. A remote failing is no reason to stop serving the
        others: it is reported, not counted against ``ok``."""
        ok = self._runner.binary is not None
        count = 0
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            ok = ok and os.access(self.cache_dir, os.W_OK | os.X_OK)
            with os.scandir(self.cache_dir) as entries:
                count = sum(1 for e in entries if not e.name.startswith(".") and e.is_dir())
        except OSError:
            ok = False
        return {"ok": ok, "repositories": count, "lastError": self._last_error}

    def stats(self) -> dict[str, float]:
        """Counters for metrics: ``fetches``, ``fetchSeconds``, ``lsRemotes``,
        ``treesBuilt``, ``errors`` (remote failures), ``gitCommands`` (git processes
        started), ``blobsHashed`` / ``blobsReused``
        (the blob memo's misses and hits), ``treeCacheBytes``."""
        with self._lock:
            out: dict[str, float] = dict(self._counts)
            out["fetchSeconds"] = self._fetch_seconds
        out["gitCommands"] = self._runner.started
        out["blobsHashed"] = self._memo.hashed
        out["blobsReused"] = self._memo.reused
        out["treeCacheBytes"] = self._trees.nbytes
        return out

    # -- resolving -----------------------------------------------------------------------

    def _url(self, url: str) -> str:
        normalized = normalize_url(url)
        check_allowed(normalized, self.allowed, raw=url)
        if is_local(normalized):
            own = os.path.realpath(self.cache_dir)
            path = normalized[len("file://"):]
            if path == own or path.startswith(own.rstrip("/") + "/"):
                raise GitURLRefused("a repository inside kiln's own mirror cache is refused",
                                    source=_source(normalized))
        return normalized

    def _mirror(self, url: str, deadline: Deadline | None) -> Mirror:
        with self._lock:
            mirror = self._mirrors.get(url)
            if mirror is None:
                mirror = self._mirrors[url] = Mirror(url, self.cache_dir / mirror_name(url),
                                                     self._runner)
        if not (mirror.path / "HEAD").is_file():
            acquire(mirror.lock, deadline, "waiting to create a git mirror")
            try:
                mirror.ensure(deadline)
            finally:
                mirror.lock.release()
        return mirror

    def _resolve(self, url: str, revision: str, deadline: Deadline) -> str:
        normalized = self._url(url)
        source = _source(normalized)
        problem = revision_problem(revision)
        if problem is not None:
            raise GitRevisionError(problem, source=source)
        mirror = self._mirror(normalized, deadline)
        lowered = revision.lower()
        if is_commit_id(lowered):
            if mirror.has_commit(lowered, deadline):
                return lowered
            self._fetch_commit(mirror, lowered, deadline)
            if mirror.has_commit(lowered, deadline):
                return lowered
            raise GitRevisionError(f"no commit {lowered} in the repository", source=source)
        refs = self._ls_remote(mirror, deadline)
        found = refs.lookup(revision)
        if found is None:
            if is_abbreviated_id(lowered) and not self.shallow:
                full = mirror.commit_of(lowered, deadline)
                if full is None:
                    self._fetch_all(mirror, None, deadline)
                    full = mirror.commit_of(lowered, deadline)
                if full is not None:
                    return full
            what = "HEAD" if revision in ("", "HEAD") else repr(revision)
            raise GitRevisionError(f"no branch, tag or commit {what} in the repository",
                                   source=source)
        ref, commit = found
        if mirror.has_commit(commit, deadline):
            return commit
        for _attempt in range(2):  # a second time when the shared fetch began before our ls-remote
            self._fetch_ref(mirror, ref, commit, deadline)
            if mirror.has_commit(commit, deadline):
                return commit
        # The ref moved (a force push) between ls-remote and the fetch: the fetched ref is the
        # remote's newer answer.
        with self._lock:
            self._refs.pop(normalized, None)
        local = mirror.commit_of(_local_ref(ref), deadline)
        if local is not None:
            return local
        raise GitRevisionError(f"{ref} no longer names a commit in the repository",
                               source=source)

    def _ls_remote(self, mirror: Mirror, deadline: Deadline) -> Refs:
        url = mirror.url
        with self._lock:
            known = self._refs.get(url)
        if known is not None and time.monotonic() - known[0] < self.ref_ttl:
            return known[1]

        def ask() -> Refs:
            refs = mirror.ls_remote(None)  # bounded by the operator's timeout, not a request
            with self._lock:
                self._counts["lsRemotes"] += 1
                self._refs[url] = (time.monotonic(), refs)
            return refs

        refs, _ = self._work.do(("ls-remote", url), ask, deadline,
                                "waiting for git ls-remote")
        return refs  # type: ignore[no-any-return]

    def _fetch_ref(self, mirror: Mirror, ref: str, commit: str, deadline: Deadline) -> None:
        if self.shallow:
            spec = f"+{ref}:{_local_ref(ref)}"
            self._fetch(mirror, ("shallow", spec), [spec], commit, deadline, depth=1,
                        prune=False)
        elif ref.startswith(("refs/heads/", "refs/tags/")):
            self._fetch_all(mirror, commit, deadline)
        else:
            spec = f"+{ref}:{_local_ref(ref)}"
            self._fetch(mirror, ("ref", spec), [spec], commit, deadline, prune=False)

    def _fetch_all(self, mirror: Mirror, commit: str | None, deadline: Deadline | None
                   ) -> None:
        self._fetch(mirror, ("all",), list(FULL_REFSPECS), commit, deadline)

    def _fetch_commit(self, mirror: Mirror, commit: str, deadline: Deadline | None) -> None:
        """Bring a commit id the remote may not advertise: every branch and tag first (not
        shallow), then the id itself (servers allowing it, e.g. protocol v2)."""
        if not self.shallow:
            self._fetch_all(mirror, commit, deadline)
            if mirror.has_commit(commit, deadline):
                return
        spec = f"+{commit}:refs/kiln/commits/{commit}"
        try:
            self._fetch(mirror, ("commit", commit), [spec], commit, deadline,
                        depth=1 if self.shallow else None, prune=False)
        except GitRemoteError as exc:
            if isinstance(exc, GitTimeout):
                raise
            log.debug("%s: fetching %s by id failed: %s", mirror.source, commit, exc.message)

    def _fetch(self, mirror: Mirror, what: tuple[str, ...], refspecs: list[str],
               commit: str | None, deadline: Deadline | None, *, depth: int | None = None,
               prune: bool = True) -> None:
        """One fetch of ``refspecs`` at a time per mirror; callers asking the same ``what``
        meanwhile share it; skipped when ``commit`` arrived meanwhile. The fetch runs in the
        background, bounded by the operator's timeout: a caller whose deadline passes stops
        waiting, the others still get it."""

        def run() -> None:
            with mirror.lock:
                if commit is not None and mirror.has_commit(commit, None):
                    return
                seconds = mirror.fetch(refspecs, None, depth=depth, prune=prune)
            with self._lock:
                self._counts["fetches"] += 1
                self._fetch_seconds += seconds
            if self.on_fetch is not None:
                self.on_fetch(seconds)
            log.debug("%s: fetched %s in %.3fs", mirror.source, " ".join(refspecs), seconds)

        self._work.do(("fetch", mirror.url, *what), run, deadline, "waiting for git fetch")

    # -- trees ---------------------------------------------------------------------------

    def _build(self, url: str, commit: str) -> SourceTree:
        """Read the tree (in the background: bounded by the operator's timeout per git
        command, whatever the callers' deadlines)."""
        mirror = self._mirror(url, None)
        if not mirror.has_commit(commit, None):
            self._fetch_commit(mirror, commit, None)
            if not mirror.has_commit(commit, None):
                raise GitRevisionError(f"no commit {commit} in the repository",
                                       source=mirror.source)
        with self._lock:
            entry = self._known.get(url)
        known = entry[0] if entry is not None else None
        tree, blobs = build_tree(self._runner, mirror.path, commit, source=mirror.source,
                                 deadline=None, limits=self.limits, memo=self._memo,
                                 known=known)
        with self._lock:
            # Pinned bytes: bounded like the tree cache (the trees themselves share them).
            old = self._known.pop(url, None)
            if old is not None:
                self._known_bytes -= old[1]
            if tree.nbytes <= self._known_max:
                self._known[url] = (blobs, tree.nbytes)
                self._known_bytes += tree.nbytes
            while self._known and (len(self._known) > KNOWN_REPOSITORIES
                                   or self._known_bytes > self._known_max):
                self._known_bytes -= self._known.popitem(last=False)[1][1]
            self._counts["treesBuilt"] += 1
        return tree

    def _failed(self, exc: GitSourceError) -> None:
        with self._lock:
            self._counts["errors"] += 1
            self._last_error = exc.one_line()


def _source(url: str) -> str:
    return f"repository {redact_url(url)!r}"


def _local_ref(ref: str) -> str:
    """Where a fetched ref is kept in the mirror: branches and tags as themselves, any other
    ref (``HEAD``, ``refs/pull/7/head``) under ``refs/kiln/``."""
    if ref.startswith(("refs/heads/", "refs/tags/")):
        return ref
    return "refs/kiln/" + (ref[5:] if ref.startswith("refs/") else ref)


def check_directory(tree: SourceTree, path: str, url: str) -> str:
    """``path`` normalised, when it is a directory of ``tree`` (symlinks followed, never out
    of it); else GitPathError (404) naming it and the repository."""
    from kiln.core.sourcetree import SourceTreeError, normalize_path

    try:
        rel = normalize_path(path)
    except SourceTreeError as exc:
        raise GitPathError(f"path {path[:200]!r}: {exc.problem}", source=_source(url)) from None
    real = tree.realpath(rel)
    if real is None or tree.kind(real) != "d":
        raise GitPathError(f"path {rel or '.'!r} is not a directory of the commit",
                           source=_source(url))
    return rel or "."


__all__ = ["REF_TTL", "BlobMemo", "GitPathError", "GitRemoteError", "GitRevisionError",
           "GitSourceError", "GitSources", "GitTimeout", "GitTreeError", "GitTreeTooLarge",
           "GitURLRefused", "TreeLimits", "check_directory", "normalize_url", "redact_url"]
