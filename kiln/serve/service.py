"""A ``kiln serve`` request, turned into a render through the CMP server's core.

Two kinds of source:

- **git** (``{"git": {"repoURL", "revision", "path"}}``): the revision is resolved to a commit
  in the operator's bare mirror (:class:`kiln.gitsource.GitSources`), and the commit's tree,
  read from the object database and never checked out, becomes a
  :class:`kiln.cmp.stream.Received` whose checksum is ``sha256("git\\0" + url + "\\0" +
  commit)``. :meth:`kiln.cmp.service.CmpService.render` then does what it does for an Argo CD
  stream: a hit from the key memo without writing a file, else one render for identical
  concurrent requests in a private extraction shared by the requests of that commit. The
  request environment carries what Argo CD's would about the source
  (``ARGOCD_APP_SOURCE_PATH``, which makes the tree's root the source root, and
  ``ARGOCD_APP_REVISION``/``_SHORT``/``_SHORT_8``), nothing else.
- **path** (``{"path": P}``): a directory under one of the operator's ``--allow-root``
  directories. ``P`` is absolute, or relative to the first allowed root. Every symlink is
  followed *before* the check, so a link that leads out of the roots is refused (403), as is
  any path when the operator allows none. The app is rendered **in place**, as ``kiln render
  P`` would: kiln's renderers never write into the source (helm builds dependencies and
  kustomize builds in private copies), so there is nothing to copy. The source root (what
  the app may read) is the top of the git work tree holding the app when that lies inside
  the allowed root, else the allowed root itself: never above it. Identical concurrent
  requests share one render (single-flight), renders take a gate slot, and the engine's
  own content-addressed cache answers a repeat (``cacheHit``).

Both run under the request's deadline, with the request's ``settings`` at application level
(:func:`kiln.cmp.service.load_for_request`), and take the cluster-wide lock of replicas
(:attr:`kiln.server.lifecycle.ServerCore.distlock`) around the lead of a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.serve.errors import BadRequest, Forbidden, NotFound
from kiln.server import ServerDraining

if TYPE_CHECKING:
    from kiln.cmp.generate import Generated
    from kiln.cmp.service import CmpService
    from kiln.cmp.stream import Received
    from kiln.core.deadline import Deadline
    from kiln.core.sourcetree import SourceTree
    from kiln.gitsource import GitSources
    from kiln.serve.models import GitSource, RenderRequest

GIT_MARK = ".git"


@dataclass(frozen=True)
class Answer:
    """A render's answer: the objects as JSON texts (one per object, secrets resolved), the
    cache key (None: uncacheable), whether it came from the cache, the commit (git)."""

    documents: list[str]
    key: str | None
    cache_hit: bool
    revision: str | None

    def body(self) -> bytes:
        """The response body ``{objects, key, cacheHit, revision}`` as JSON bytes (the
        objects' own JSON texts joined as they are, never decoded again)."""
        head = json.dumps({"key": self.key, "cacheHit": self.cache_hit,
                           "revision": self.revision}, separators=(",", ":"))
        return ('{"objects":[' + ",".join(self.documents) + "]," + head[1:]).encode()


class ServeService:
    """Requests of ``kiln serve`` for one :class:`CmpService` (its engine, core, memo).

    ``roots``: the directories path requests may name (resolved here; empty: none);
    ``git``: the git sources (None: git requests are refused)."""

    def __init__(self, cmp: CmpService, *, roots: Sequence[Path] = (),
                 git: GitSources | None = None) -> None:
        self.cmp = cmp
        self.core = cmp.core
        self.roots = tuple(Path(os.path.realpath(r)) for r in roots)
        self.git = git

    def render(self, request: RenderRequest, deadline: Deadline) -> Answer:
        """Render what ``request`` names (see the module docstring). Raises KilnError
        (ServerDraining at once while the server drains)."""
        if self.core.gate.draining:
            from kiln.server.gate import DRAINING

            raise ServerDraining(DRAINING)
        settings = request.settings or None
        if request.git is not None:
            return self._render_git(request.git, settings, deadline)
        assert request.path is not None  # the model has exactly one source
        return self._render_path(request.path, settings, deadline)

    # -- git ---------------------------------------------------------------------------------

    def _render_git(self, source: GitSource, settings: Mapping[str, Any] | None,
                    deadline: Deadline) -> Answer:
        from kiln.gitsource import check_directory
        from kiln.gitsource.urls import normalize_url

        if self.git is None:
            raise Forbidden("git sources are off on this server", source="git")
        deadline.check(f"resolving {source.revision[:100]!r}")
        commit = self.git.resolve(source.repoURL, source.revision, deadline)
        deadline.check("reading the commit's tree")
        tree = self.git.tree(source.repoURL, commit, deadline)
        rel = check_directory(tree, source.path, source.repoURL)
        received = git_received(normalize_url(source.repoURL), commit, rel, tree)
        done = self.cmp.render(received, deadline, settings=settings)
        return _answer(done, commit)

    # -- path --------------------------------------------------------------------------------

    def resolve_path(self, text: str) -> tuple[Path, Path]:
        """``(app directory, source root)`` of a path request, every symlink followed.
        Raises Forbidden when path requests are off or the path leads outside every allowed
        root, NotFound when it is not an existing directory."""
        if not self.roots:
            raise Forbidden("path requests are off: the operator allows no directory "
                            "(--allow-root)", source="path")
        if "\x00" in text:
            raise BadRequest("holds a NUL byte", source="path")
        given = Path(text)
        if not given.is_absolute():
            given = self.roots[0] / given
        real = Path(os.path.realpath(given))  # the links followed as far as they exist
        root = next((r for r in self.roots if real == r or real.is_relative_to(r)), None)
        if root is None:
            raise Forbidden("outside the directories the operator allows (--allow-root)",
                            source=f"path {text!r}")
        if not real.is_dir():
            raise NotFound("no such directory" if not real.exists() else "not a directory",
                           source=f"path {text!r}")
        return real, _source_root(real, root)

    def _render_path(self, text: str, settings: Mapping[str, Any] | None,
                     deadline: Deadline) -> Answer:
        from kiln.cmp.service import canonical_settings, generate_for_request

        app_dir, source_root = self.resolve_path(text)
        env = dict(self.cmp.operator_env)
        engine = self.cmp.engine.for_request(env)
        key = hashlib.sha256(json.dumps(["path", str(app_dir), str(source_root),
                                         canonical_settings(settings)]).encode()).hexdigest()
        metrics = self.core.metrics

        def run() -> Generated:
            with self.core.gate.slot(deadline):
                deadline.check("rendering the app")
                done = generate_for_request(engine, app_dir, env, settings,
                                            source_root=source_root, deadline=deadline)
            if metrics is not None:
                metrics.count_render("hit" if done.result.cache_hit else (
                    "render" if done.result.key else "uncached"))
            return done

        def lead() -> Generated:
            lock = self.core.distlock
            with (lock.hold("kiln:render:" + key, deadline) if lock is not None
                  else contextlib.nullcontext()):
                return run()

        done, shared = self.core.flights.do(("serve-path", key), lead, deadline)
        if shared:  # the leader stored it: normally a cache hit, with this request's secrets
            done = run()
        return _answer(done, None)


def git_received(url: str, commit: str, rel: str, tree: SourceTree) -> Received:
    """The :class:`Received` a git request stands for: the commit's tree, the checksum
    ``sha256("git\\0" + url + "\\0" + commit)`` (same repository and commit, same tree), and
    Argo CD's source variables."""
    from kiln.cmp.stream import Received, StreamMetadata

    checksum = hashlib.sha256(f"git\0{url}\0{commit}".encode()).hexdigest()
    env = (("ARGOCD_APP_SOURCE_PATH", rel), ("ARGOCD_APP_REVISION", commit),
           ("ARGOCD_APP_REVISION_SHORT", commit[:7]),
           ("ARGOCD_APP_REVISION_SHORT_8", commit[:8]))
    metadata = StreamMetadata(app_name=rel.rsplit("/", 1)[-1], app_rel_path=rel,
                              checksum=checksum, size=0, env=env)
    return Received(metadata, tree, 0, True)


def _source_root(app_dir: Path, root: Path) -> Path:
    """The top of the git work tree holding ``app_dir`` when it is at or below ``root``,
    else ``root``."""
    for candidate in (app_dir, *app_dir.parents):
        if (candidate / GIT_MARK).exists():
            return candidate
        if candidate == root:
            break
    return root


def _answer(done: Generated, revision: str | None) -> Answer:
    result = done.result
    return Answer(result.json_documents(), result.key, bool(result.cache_hit), revision)


__all__ = ["Answer", "ServeService", "git_received"]
