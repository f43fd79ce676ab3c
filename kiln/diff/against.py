"""``--against``: the other side of a diff with no cluster — the same app at another git
revision of its repository, or another directory.

``against`` names an existing directory (that app is rendered), else a git revision of the
repository holding PATH: the revision is checked out into a private, detached ``git worktree``
in a fresh temporary directory (mode 0700; repository hooks disabled), the app is rendered at
the same path relative to the repository root, and the worktree is removed afterwards — after
an error or an interrupt too. When the app did not exist at that revision, that side holds no
objects (a pull request that adds an app: every object is added).

Both sides are rendered by one engine with the same flags, secrets resolved in memory (SOPS
values are compared by their decrypted content), unless the caller asks for references and
ciphertext as stored.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.core import localgit
from kiln.core.errors import ConfigError, InputError, KilnError, ToolError
from kiln.core.localgit import last_line

if TYPE_CHECKING:
    from kiln.core.engine import Engine

log = logging.getLogger("kiln.diff")

GIT_TIMEOUT = 120.0


@dataclass(frozen=True)
class Rendered:
    """One side of a diff: what it is called in diff headers and its objects."""

    label: str
    objects: list[dict[str, Any]]


def run_git(args: list[str], cwd: Path, source: str) -> subprocess.CompletedProcess[str]:
    """Run git with hooks disabled (:func:`kiln.core.localgit.run_git`); raise ToolError
    naming ``source`` when it cannot run."""
    return localgit.run_git(args, cwd, source=source, needed_for="--against REV",
                            timeout=GIT_TIMEOUT)


def repository_of(path: Path, source: str) -> Path:
    """The top of the git work tree holding ``path``. Raises ConfigError naming ``source``
    when ``path`` is not inside one."""
    proc = run_git(["rev-parse", "--show-toplevel"], path, source)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ConfigError(f"not a directory, and {path} is not inside a git repository "
                          "(REV needs one)", source=source)
    return Path(proc.stdout.strip())


def resolve_revision(repo: Path, rev: str, source: str) -> str:
    """The commit ``rev`` names in ``repo`` (full hex). Raises ConfigError naming ``source``
    for a revision that names no commit (or looks like an option)."""
    if not rev or rev.startswith("-") or "\n" in rev or "\0" in rev:
        raise ConfigError(f"not a revision: {rev!r}", source=source)
    proc = run_git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
                repo, source)
    commit = proc.stdout.strip()
    if proc.returncode != 0 or not commit:
        raise ConfigError(f"not a directory, and no commit {rev!r} in the repository {repo}",
                          source=source)
    return commit


@contextlib.contextmanager
def worktree(repo: Path, commit: str, source: str) -> Iterator[Path]:
    """A private detached worktree of ``repo`` at ``commit``, removed (and pruned) when the
    block ends, however it ends."""
    holder = Path(tempfile.mkdtemp(prefix="kiln-diff-"))
    tree = holder / "tree"
    try:
        proc = run_git(["worktree", "add", "--detach", "--quiet", str(tree), commit], repo, source)
        if proc.returncode != 0:
            raise ToolError(f"git worktree add failed: {last_line(proc.stderr)}",
                            source=source)
        yield tree
    finally:
        if tree.exists():
            run_git(["worktree", "remove", "--force", str(tree)], repo, source)
        shutil.rmtree(holder, ignore_errors=True)
        run_git(["worktree", "prune"], repo, source)


def render_app(engine: Engine, path: Path, settings: Mapping[str, Any] | None, *,
               source_root: Path | None, secrets: bool) -> list[dict[str, Any]]:
    """Render the app at ``path`` with ``settings`` (operator level, like the flags of
    ``kiln render``), secrets resolved in memory unless ``secrets`` is False."""
    app = engine.load_app(path, settings, source_root=source_root)
    return engine.render(app, secrets=secrets).objects


def render_against(engine: Engine, path: Path | str, against: str,
                   settings: Mapping[str, Any] | None = None, *,
                   source_root: Path | str | None = None, secrets: bool = True) -> Rendered:
    """Render the other side of ``kiln diff PATH --against AGAINST``.

    ``against`` is an existing directory (rendered as the app), else a revision of the git
    repository holding ``path`` (the app at the same relative path in a private worktree;
    no objects when that path did not exist there). The label is the revision as given, or
    ``against`` for a directory. Raises ConfigError naming ``--against`` for a revision that
    does not exist or a ``path`` outside any repository.
    """
    source = f"--against {against}"
    app_dir = Path(os.path.abspath(path))
    if not app_dir.is_dir():
        raise InputError("no such directory", source=str(path))
    other = Path(os.path.abspath(against))
    if other.is_dir():
        return Rendered("against", render_app(engine, other, settings, source_root=None,
                                              secrets=secrets))
    repo = repository_of(app_dir, source)
    commit = resolve_revision(repo, against, source)
    rel = Path(os.path.relpath(os.path.realpath(app_dir), os.path.realpath(repo)))
    root_rel = None
    if source_root is not None:
        root_rel = Path(os.path.relpath(os.path.realpath(source_root), os.path.realpath(repo)))
    with worktree(repo, commit, source) as tree:
        there = tree / rel
        real_tree = os.path.realpath(tree)
        if os.path.commonpath([real_tree, os.path.realpath(there)]) != real_tree:
            raise InputError(f"{rel} is a symlink leaving the repository at {against}",
                             source=source)
        if not there.is_dir():
            log.warning("%s did not exist at %s: every object is new", rel, against)
            return Rendered(against, [])
        root = tree / root_rel if root_rel is not None else None
        try:
            objects = render_app(engine, there, settings, source_root=root, secrets=secrets)
        except KilnError as exc:
            _relabel(exc, f"{tree}{os.sep}", f"{against}:")
            raise
        return Rendered(against, objects)


def _relabel(exc: KilnError, prefix: str, label: str) -> None:
    """Name files of the private worktree ``REV:path`` in an error (the temporary directory
    is gone by the time the error is printed)."""
    exc.message = exc.message.replace(prefix, label)
    if exc.source:
        exc.source = exc.source.replace(prefix, label)
    exc.args = (exc.message, *exc.args[1:])
