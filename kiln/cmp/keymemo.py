"""The CMP server's in-process key memo: a request's cache key without extracting its tree.

``kiln cmp serve`` holds each request's repository in memory (a :class:`TreeView`). When an
earlier request of the same app rendered the same inputs, :meth:`KeyMemo.lookup` gives the
engine's cache key from that tree alone, and the server reads the manifests from the cache
store by key; otherwise the server extracts the tree into a private directory, renders, and
calls :meth:`KeyMemo.record`. Like the CLI memo (:mod:`kiln.cmp.fastpath`) it has no notion
of "unchanged" of its own: it records, for every part of the engine's key
(:class:`kiln.core.digest.KeyRecipe`), what can be re-checked against the request, and the
same re-check functions run against the in-memory tree as against the disk:

- the input files: the path the renderer declared, where it resolves in the tree and the
  sha256 of its content;
- the shape of the app's source-root subtree (every path and symlink target), which stands
  for whatever else the renderer derived from the tree (``Inputs.portable``), and whether a
  ``.git`` sits in the app directory or any directory above it in the tree (what locates the
  source root when Argo CD's source path does not);
- the tools the renderer asked for their version and every tool a loaded plugin declares as
  installed beside this Python (path, size, mtime: one ``os.stat`` each on lookup);
- the request: Argo CD's app variables and parameters (``REQUEST_VARS``, ``PARAM_*``), the
  ``KILN_*`` settings and the digest of the app's kiln.yaml, taken as
  :func:`kiln.cmp.fastpath.request_key` takes them; Argo CD's per-commit
  ``ARGOCD_APP_REVISION*`` stay out, so a new commit of unchanged files is still a hit,
  unless the options reference them (the build-env variables the options reference, as
  ``App.identity()["env"]`` lists them, are re-checked by value).

What the CLI memo stamps and this one does not: the code of kiln and of third-party plugins
(code cannot change under a running process) and the app's location (a render that depends
on it, ``recipe.location``, depends on the server's temporary directory and is never
recorded).

Secrets. The CLI memo holds printed output, so it refuses every render that resolved a
secret or may hold a reference. This memo holds only a cache key, never output: the server
reads the cache (which only holds placeholders and ciphertext) and resolves secrets per
request afterwards, so renders whose output holds secret references may be recorded. Nothing
it holds is a secret value either: the request and the referenced variables are kept only as
HMAC-SHA256 digests under a random key made per memo (a credential among the ``KILN_*``
settings, e.g. ``KILN_HELM_PASSWORD``, shapes the digest but cannot be read back from it,
not even by guessing), alongside variable names, repository paths, file digests and tool
stamps. The build environment options may reference is ``ARGOCD_APP_*``, ``ARGOCD_ENV_*``
and ``KUBE_*``: application data Argo CD shows in the Application, not credentials; it is
digested all the same.

The memo is bounded (``max_entries`` recorded renders, least recently used first out) and
thread-safe: records and lookups may run from any number of threads.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.cmp.environment import BUILD_ENV_PREFIXES, KUBE_VARS, PARAM_PREFIX, build_env
from kiln.cmp.fastpath import (
    NOT_REQUEST_VARS,
    REQUEST_VARS,
    _declared_tools,
    recheck_inputs,
    recheck_tools,
)
from kiln.core.app import APP_FILE
from kiln.core.disktree import DiskTree
from kiln.core.treeview import MAX_TREE_ENTRIES, TreeTooLarge, TreeView

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.core.engine import Engine, RenderResult

log = logging.getLogger("kiln.cmp.keymemo")

FORMAT = 1
MAX_ENTRIES = 4096
"""Default bound on recorded renders (a few hundred bytes each plus their input lists)."""
PER_SLOT = 4
"""Default number of recorded renders kept per (app, request): e.g. two branches of one app."""
GIT_MARK = ".git"

Slot = tuple[str, str]


@dataclass(frozen=True)
class Hit:
    """What :meth:`KeyMemo.find` gives for a request it can answer: the cache ``key`` and
    what the recorded render's result carried besides (its ``renderer``, its input files
    relative to the app directory, the ``verified`` files), as
    :meth:`kiln.core.engine.Engine.render_cached` takes them."""

    key: str
    renderer: str
    inputs: tuple[str, ...]
    verified: frozenset[str]


@dataclass(frozen=True)
class _Memo:
    """One recorded render: its key and what re-checks it (paths relative to the tree root).

    ``files`` are ``(declared rel to the app dir, declared rel to the tree root, real rel to
    the tree root, sha256)``; ``tools`` ``(path, size, mtime_ns)`` (size None: absent);
    ``env`` the names of the referenced build-env variables and ``env_digest`` the keyed
    digest of their values; ``git`` whether each directory from the app up to the tree
    root holds a ``.git``.
    """

    hit: Hit
    app_rel: str
    root_rel: str
    files: tuple[tuple[str, str, str, str], ...]
    shape: str
    tools: tuple[tuple[str, int | None, int | None], ...]
    env: tuple[str, ...]
    env_digest: str
    git: tuple[tuple[str, bool], ...]


class KeyMemo:
    """Cache keys of earlier renders, re-checked against each new request's tree.

    ``max_entries`` bounds the recorded renders (least recently used evicted first),
    ``per_slot`` the renders kept for one app and request (newest first tried),
    ``tree_limit`` the paths of a source tree worth recording (its shape is re-checked).
    One memo serves one engine (its plugins, operator settings and environment): keys
    recorded under another configuration would not be that engine's keys.
    """

    def __init__(self, max_entries: int = MAX_ENTRIES, per_slot: int = PER_SLOT,
                 tree_limit: int = MAX_TREE_ENTRIES) -> None:
        if max_entries < 1 or per_slot < 1:
            raise ValueError("max_entries and per_slot must be at least 1")
        self.max_entries = max_entries
        self.per_slot = per_slot
        self.tree_limit = tree_limit
        self._secret = os.urandom(32)
        self._lock = threading.Lock()
        self._slots: OrderedDict[Slot, tuple[_Memo, ...]] = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        """The number of recorded renders held."""
        with self._lock:
            return self._count

    # -- recording -----------------------------------------------------------------------

    def record(self, engine: Engine, app: App, result: RenderResult, *, tree_root: Path,
               request: Mapping[str, str], tree: TreeView | None = None) -> bool:
        """Remember the key of ``result``, a successful render of ``app`` extracted under
        ``tree_root`` for the request environment ``request``; True when recorded.

        ``tree`` is the view the request's repository came as (default: the extracted
        directory, :class:`DiskTree` over ``tree_root``); the record re-checks against it
        before it is kept, so a view that disagrees with what the engine read is never
        recorded, nor is an app whose build environment is not ``request``'s. Refused
        (False, the reason logged at debug level) when the render has no
        cache key, depends on its location or on more than its files (``recipe.portable``),
        reads outside ``tree_root``, or its tree is too large to take the shape of.
        """
        try:
            memo, slot, problem = self._build(engine, app, result, Path(tree_root), request,
                                              tree)
        except (OSError, ValueError) as exc:
            memo, slot, problem = None, None, f"cannot read the tree ({type(exc).__name__})"
        if memo is None or slot is None:
            log.debug("key memo: not recorded for %s: %s", app.path, problem)
            return False
        self._keep(slot, memo)
        log.debug("key memo: recorded %s for %s", memo.hit.key[:12], memo.app_rel or ".")
        return True

    def _build(self, engine: Engine, app: App, result: RenderResult, tree_root: Path,
               request: Mapping[str, str], tree: TreeView | None
               ) -> tuple[_Memo | None, Slot | None, str]:
        recipe = result.recipe
        if recipe is None or recipe.key is None or result.key != recipe.key:
            return None, None, "the render has no cache key (uncacheable or no cache)"
        if recipe.location is not None:
            return None, None, "the render depends on the app's location"
        if not recipe.portable:
            return None, None, f"{recipe.renderer}'s key depends on more than the files"
        if dict(app.env) != build_env(request):
            return None, None, "the app was not loaded from this request's environment"
        root = os.path.abspath(tree_root)
        real_root = os.path.realpath(root)
        app_rel = _inside(os.path.relpath(app.path, root))
        root_rel = _inside(os.path.relpath(app.root, root))
        if app_rel is None or root_rel is None:
            return None, None, "the app or its source root is outside the tree"
        if root_rel and app_rel != root_rel and not app_rel.startswith(root_rel + "/"):
            return None, None, "the app is outside its source root"
        view = tree if tree is not None else DiskTree(root)
        files: list[tuple[str, str, str, str]] = []
        for f in recipe.inputs:
            declared = os.path.relpath(f.declared, app.path)
            declared_rel = _inside(os.path.join(app_rel, declared))
            real_rel = _inside(os.path.relpath(f.real, real_root))
            if declared_rel is None or real_rel is None:
                return None, None, f"input {declared} is outside the tree"
            files.append((declared, declared_rel, real_rel, f.sha256))
        try:
            shape = view.shape_digest(root_rel, self.tree_limit)
        except TreeTooLarge:
            return None, None, "the source tree is too large"
        identity_env = app.identity().get("env", {})
        names = tuple(sorted(identity_env))
        memo = _Memo(
            hit=Hit(recipe.key, result.renderer, tuple(result.inputs),
                    result.verified),
            app_rel=app_rel,
            root_rel=root_rel,
            files=tuple(files),
            shape=shape,
            tools=tuple((t.path, t.size, t.mtime_ns) for t in recipe.tools)
            + tuple((p, s, m) for p, s, m in _declared_tools(engine)),
            env=names,
            env_digest=self._digest([[n, str(identity_env[n])] for n in names]),
            git=tuple((d, view.realpath(_join(d, GIT_MARK)) is not None)
                      for d in _ancestors(app_rel)),
        )
        slot = (app_rel, self._request_digest(view, app_rel, request))
        problem = self._problem(memo, view, request, {root_rel: shape})
        if problem:
            return None, None, f"the tree does not re-check as the engine read it: {problem}"
        return memo, slot, ""

    def _keep(self, slot: Slot, memo: _Memo) -> None:
        with self._lock:
            held = self._slots.pop(slot, ())
            kept = tuple(m for m in held if m != memo)
            kept = (*kept, memo)[-self.per_slot:]
            self._count += len(kept) - len(held)
            self._slots[slot] = kept
            while self._count > self.max_entries:
                oldest, candidates = next(iter(self._slots.items()))
                if len(candidates) > 1:
                    self._slots[oldest] = candidates[1:]
                else:
                    del self._slots[oldest]
                self._count -= 1

    # -- lookup --------------------------------------------------------------------------

    def lookup(self, tree: TreeView, app_rel: str, request: Mapping[str, str]) -> str | None:
        """The cache key of :meth:`find`'s hit, or None."""
        hit = self.find(tree, app_rel, request)
        return None if hit is None else hit.key

    def find(self, tree: TreeView, app_rel: str, request: Mapping[str, str]) -> Hit | None:
        """The cache key the engine would compute for the app at ``app_rel`` in ``tree``
        under the request environment ``request``, when a recorded render's every part
        re-checks against them (with what the recorded result carried, see :class:`Hit`);
        None otherwise (the caller extracts and renders).

        Reads nothing from disk but an ``os.stat`` of each recorded tool; the work is a few
        dictionary look-ups per input file (plus the tree's shape, which the view computes).
        """
        rel = _inside(app_rel)
        if rel is None:
            return None
        try:
            slot = (rel, self._request_digest(tree, rel, request))
        except (OSError, ValueError, KeyError):
            return None
        with self._lock:
            candidates = self._slots.get(slot, ())
        shapes: dict[str, str] = {}
        for memo in reversed(candidates):
            try:
                problem = self._problem(memo, tree, request, shapes)
            except (OSError, ValueError, KeyError) as exc:
                problem = f"the tree cannot be read ({type(exc).__name__})"
            if not problem:
                self._touch(slot, memo)
                return memo.hit
            log.debug("key memo: candidate %s for %s: %s", memo.hit.key[:12], rel or ".",
                      problem)
        if not candidates:
            log.debug("key memo: nothing recorded for %s and this request", rel or ".")
        return None

    def _touch(self, slot: Slot, memo: _Memo) -> None:
        with self._lock:
            held = self._slots.get(slot)
            if held is None or memo not in held:
                return
            self._slots[slot] = (*(m for m in held if m != memo), memo)
            self._slots.move_to_end(slot)

    def _problem(self, memo: _Memo, tree: TreeView, request: Mapping[str, str],
                 shapes: dict[str, str]) -> str:
        """The first recorded part that does not re-check against ``tree`` ("" if none)."""
        if self._digest([[n, _build_value(request, n)] for n in memo.env]) != memo.env_digest:
            return "a build-env variable the options reference changed"
        problem = recheck_tools(memo.tools)
        if problem:
            return problem
        if tree.realpath(memo.app_rel) != memo.app_rel:
            return "the app directory is gone or reached through a symlink"
        if memo.root_rel != memo.app_rel and tree.realpath(memo.root_rel) != memo.root_rel:
            return "the source root is gone or reached through a symlink"
        for directory, marked in memo.git:
            if (tree.realpath(_join(directory, GIT_MARK)) is not None) != marked:
                return f"a {GIT_MARK} appeared or went in {directory or 'the tree root'}"
        problem = recheck_inputs(tree, memo.files)
        if problem:
            return problem
        shape = shapes.get(memo.root_rel)
        if shape is None:
            try:
                shape = shapes[memo.root_rel] = tree.shape_digest(memo.root_rel,
                                                                  self.tree_limit)
            except TreeTooLarge:
                return "the source tree grew too large"
            except (OSError, KeyError, ValueError):
                return "the source root is gone"
        if shape != memo.shape:
            return "the source tree changed (a path added, removed, renamed or retargeted)"
        return ""

    # -- digests -------------------------------------------------------------------------

    def _digest(self, data: object) -> str:
        body = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self._secret, body, hashlib.sha256).hexdigest()

    def _request_digest(self, tree: TreeView, app_rel: str, request: Mapping[str, str]) -> str:
        """The keyed digest of what shapes the request besides the files (see the module
        docstring), the app's kiln.yaml digest included."""
        variables: dict[str, str | None] = {k: request.get(k) for k in REQUEST_VARS}
        variables.update({k: v for k, v in request.items()
                          if k.startswith((PARAM_PREFIX, "KILN_")) and k not in NOT_REQUEST_VARS})
        app_file = tree.realpath(_join(app_rel, APP_FILE))
        return self._digest({
            "format": FORMAT,
            "request": variables,
            "appFile": None if app_file is None else tree.file_digest(app_file),
        })


def _build_value(request: Mapping[str, str], name: str) -> str:
    """What ``App.env`` holds for ``name`` under ``request`` (see
    :func:`kiln.cmp.environment.build_env`): the value for a build-env variable, else ""."""
    if name.startswith(BUILD_ENV_PREFIXES) or name in KUBE_VARS:
        return request.get(name, "")
    return ""


def _inside(rel: str) -> str | None:
    """``rel`` as a normalised POSIX path inside the tree ("" for its root), or None when it
    is absolute or climbs out."""
    if os.path.isabs(rel):
        return None
    path = os.path.normpath(rel).replace(os.sep, "/")
    if path == ".":
        return ""
    if path == ".." or path.startswith(("../", "/")):
        return None
    return path


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def _ancestors(rel: str) -> list[str]:
    """``rel`` and every directory above it up to the root (``""``)."""
    found = [rel]
    while rel:
        rel = rel.rpartition("/")[0]
        found.append(rel)
    return found


__all__ = ["MAX_ENTRIES", "PER_SLOT", "Hit", "KeyMemo"]
