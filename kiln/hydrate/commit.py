"""``kiln hydrate --branch B [--push]``: the hydrated tree committed to a branch of the same
repository, through a private worktree.

* The dry commit is ``HEAD`` of the repository holding the Applications; its id, author, date
  and message fill the metadata and the commit message (:class:`kiln.hydrate.layout.DryCommit`).
  ``repoURL`` is ``--repo-url``, else the URL of the remote ``origin`` with any user name and
  password removed, else empty.
* Branch ``B`` is checked out into a fresh temporary directory (mode 0700) with ``git worktree
  add``: the local branch when it exists, else a new local branch tracking ``<remote>/B`` when
  the remote has one, else a new orphan branch with an empty tree. The user's checkout and
  index are never touched; the worktree is removed afterwards, however the run ends.
* The tree is written there as into ``--output-dir``; a commit is made only when an
  application's ``manifest.yaml`` was added, changed or removed (as Argo CD's commit server
  decides), with the user's own git identity and configuration. Either way the dry sha is
  recorded in a git note (namespace ``hydrator.metadata``, ``{"drySha": ...}``) on the branch
  head, as Argo CD records it.
* Repository hooks are disabled for every git command kiln runs here (``core.hooksPath=
  /dev/null``: the files are generated, and a hook could rewrite them after the secret check)
  except ``git push``, which runs the user's ``pre-push`` hooks: the push is the user's own
  request and a pre-push secret scanner is theirs to keep.
* ``--push`` pushes ``B`` (and the note) to the branch's push remote: ``branch.B.pushRemote``,
  ``remote.pushDefault``, ``branch.B.remote``, else ``origin``. Nothing is pushed otherwise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from kiln.core.errors import ConfigError, ToolError
from kiln.core.localgit import last_line, run_git
from kiln.hydrate.layout import DryCommit, rfc3339

log = logging.getLogger("kiln.hydrate")

GIT_TIMEOUT = 300.0
NOTES_REF = "refs/notes/hydrator.metadata"


def _git(args: Sequence[str], cwd: Path, *, hooks: bool = False, stdin: str | None = None,
         check: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run git in ``cwd`` (:func:`kiln.core.localgit.run_git`: hooks disabled unless
    ``hooks``). With ``check``, a non-zero exit is a ToolError ``git <check> failed: <git's
    last line>``."""
    proc = run_git(args, cwd, source="git", needed_for="kiln hydrate", timeout=GIT_TIMEOUT,
                   hooks=hooks, stdin=stdin)
    if check is not None and proc.returncode != 0:
        from kiln.core.redact import mask_credentials

        raise ToolError(f"git {check} failed: {mask_credentials(last_line(proc.stderr))}",
                        source=str(cwd))
    return proc


def repository_root(path: Path) -> Path:
    """The top of the git work tree holding ``path``; ConfigError naming it otherwise."""
    proc = _git(["rev-parse", "--show-toplevel"], path if path.is_dir() else path.parent)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ConfigError("not inside a git repository (the dry source is its HEAD commit)",
                          source=str(path))
    return Path(proc.stdout.strip())


def public_url(url: str) -> str:
    """``url`` without a user name or password (``https://tok@host/r`` -> ``https://host/r``);
    scp-like ``user@host:path`` forms keep their user, which is no credential."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def origin_url(repo: Path) -> str:
    """The URL of the remote ``origin`` (credentials removed), or ``""``."""
    proc = _git(["remote", "get-url", "origin"], repo)
    return public_url(proc.stdout.strip()) if proc.returncode == 0 else ""


def dry_commit(repo: Path, *, repo_url: str) -> DryCommit:
    """``HEAD`` of ``repo`` as the dry commit. ConfigError when the repository has none."""
    proc = _git(["log", "-1", "--format=%H%x00%an%x00%ae%x00%at%x00%B", "HEAD", "--"], repo)
    if proc.returncode != 0 or "\0" not in proc.stdout:
        raise ConfigError("the repository has no commit yet (the dry source is HEAD)",
                          source=str(repo))
    sha, name, email, when, message = proc.stdout.split("\0", 4)
    date = rfc3339(datetime.fromtimestamp(int(when), tz=UTC)) if when else ""
    author = f"{name} <{email}>" if email else name
    return DryCommit.from_message(sha.strip(), message.rstrip("\n"), repo_url=repo_url,
                                  author=author, date=date)


def uncommitted(repo: Path, ignore: Sequence[Path] = ()) -> list[str]:
    """Paths of ``repo`` that differ from ``HEAD`` (untracked ones included), except those
    under ``ignore`` (e.g. the output directory)."""
    proc = _git(["status", "--porcelain=v1", "-z", "--untracked-files=normal"], repo,
                check="status")
    skip = []
    for ignored in ignore:
        real = os.path.realpath(ignored)
        top = os.path.realpath(repo)
        if os.path.commonpath([real, top]) == top:
            skip.append(os.path.relpath(real, top).replace(os.sep, "/").rstrip("/") + "/")
    out: list[str] = []
    entries = proc.stdout.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        status, name = entry[:2], entry[3:]
        if status[0] in "RC":
            i += 1  # the rename's source follows
        if not any((name.rstrip("/") + "/").startswith(s) for s in skip):
            out.append(name)
    return out


def check_branch_name(repo: Path, branch: str) -> str:
    """``branch`` when git accepts it as a branch name; UsageError-like ConfigError else."""
    from kiln.core.errors import UsageError

    if branch.startswith("-") or not branch:
        raise UsageError(f"--branch: {branch!r} is not a branch name")
    proc = _git(["check-ref-format", "--branch", branch], repo)
    if proc.returncode != 0:
        raise UsageError(f"--branch: {branch!r} is not a branch name")
    return branch


def _config(repo: Path, key: str) -> str:
    proc = _git(["config", "--get", key], repo)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def push_remote(repo: Path, branch: str) -> str:
    """The remote ``git push`` would use for ``branch``; ConfigError when there is none."""
    for key in (f"branch.{branch}.pushRemote", "remote.pushDefault", f"branch.{branch}.remote"):
        value = _config(repo, key)
        if value and value != ".":
            return value
    if _git(["remote", "get-url", "origin"], repo).returncode == 0:
        return "origin"
    raise ConfigError(f"--push: branch {branch!r} has no remote to push to (set "
                      f"branch.{branch}.remote or add a remote 'origin')", source=str(repo))


def _exists(repo: Path, ref: str) -> bool:
    return _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], repo).returncode == 0


@contextlib.contextmanager
def branch_worktree(repo: Path, branch: str) -> Iterator[Path]:
    """A private worktree of ``repo`` on ``branch`` (created when missing: tracking the
    remote's branch when there is one, else an orphan with no files), removed afterwards."""
    holder = Path(tempfile.mkdtemp(prefix="kiln-hydrate-"))
    tree = holder / "tree"
    try:
        if _exists(repo, f"refs/heads/{branch}"):
            _git(["worktree", "add", "--quiet", str(tree), branch], repo,
                 check="worktree add")
        else:
            remote = _config(repo, f"branch.{branch}.remote") or "origin"
            tracking = f"refs/remotes/{remote}/{branch}"
            if _exists(repo, tracking):
                _git(["worktree", "add", "--quiet", "--track", "-b", branch, str(tree),
                      f"{remote}/{branch}"], repo, check="worktree add")
            else:
                _git(["worktree", "add", "--quiet", "--detach", "--no-checkout", str(tree)],
                     repo, check="worktree add")
                # an unborn branch: HEAD names it, the index is empty, no file is checked out
                _git(["symbolic-ref", "HEAD", f"refs/heads/{branch}"], tree,
                     check="symbolic-ref")
                _git(["read-tree", "--empty"], tree, check="read-tree")
        yield tree
    finally:
        if tree.exists():
            _git(["worktree", "remove", "--force", str(tree)], repo)
        shutil.rmtree(holder, ignore_errors=True)
        _git(["worktree", "prune"], repo)


def commit_tree(tree: Path, message: str) -> str:
    """Commit everything in the worktree ``tree`` with ``message`` (the user's identity and
    configuration, hooks off); the new commit's id."""
    _git(["add", "--all", "."], tree, check="add")
    _git(["commit", "--quiet", "--no-verify", "--cleanup=whitespace", "--file=-"], tree,
         stdin=message, check="commit")
    return head(tree)


def head(tree: Path) -> str:
    """The commit the worktree's branch points at ("" for an orphan with no commit yet)."""
    proc = _git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], tree)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def add_note(tree: Path, commit: str, dry_sha: str) -> None:
    """Record ``dry_sha`` as hydrated on ``commit``: the note Argo CD's commit server writes."""
    note = json.dumps({"drySha": dry_sha}, separators=(",", ":"))
    _git(["notes", f"--ref={NOTES_REF}", "add", "--force", "--message", note, commit], tree,
         check="notes add")


def push(repo: Path, branch: str) -> str:
    """Push ``branch`` and the hydrator notes to its push remote; the remote's name. A notes
    push the remote refuses (notes written elsewhere too) is a warning, not a failure."""
    remote = push_remote(repo, branch)
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", remote) or remote.startswith("-"):
        raise ConfigError(f"--push: remote name {remote!r} is not one kiln passes to git",
                          source=str(repo))
    _git(["push", "--quiet", "--end-of-options", remote, f"refs/heads/{branch}:refs/heads/"
          f"{branch}"], repo, hooks=True, check="push")
    if _exists(repo, NOTES_REF):
        proc = _git(["push", "--quiet", "--end-of-options", remote, f"{NOTES_REF}:{NOTES_REF}"],
                    repo, hooks=True)
        if proc.returncode != 0:
            log.warning("%s: the hydrator notes were not pushed: %s", remote,
                        last_line(proc.stderr))
    return remote
