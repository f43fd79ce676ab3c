"""What a revision string names, read from a remote's advertised refs (``git ls-remote``).

A revision is, in this order (Argo CD's repo-server reads them the same way):

1. empty or ``HEAD``: the remote's HEAD (the commit its default branch points to);
2. a full commit id (40 or 64 hex digits): itself, no ref needed;
3. a full ref name (``refs/heads/main``, ``refs/tags/v1``, ``refs/pull/7/head``);
4. a branch ``refs/heads/<rev>``, then a tag ``refs/tags/<rev>``, then ``refs/<rev>``
   (``pull/7/head``): a branch wins over a tag of the same name (as in Argo CD; plain
   ``git rev-parse`` would prefer the tag, with a warning);
5. an abbreviated commit id (7 to 39 hex digits): looked up in the mirror after a fetch.

An annotated tag names the commit it points to (the ``^{}`` line git advertises). Anything
else, and any string that could not be a revision at all (a leading ``-``, whitespace or a
control character, more than :data:`MAX_REVISION_CHARS` characters), names nothing: the
caller raises GitRevisionError. The revision string itself never reaches git's command line:
only the ref names the remote advertised and validated hex ids do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_REVISION_CHARS = 1024
_FULL = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_ABBREV = re.compile(r"[0-9a-f]{7,63}")
_BAD = re.compile(r"[\s\x00-\x1f\x7f]")


def is_commit_id(text: str) -> bool:
    """Whether ``text`` is a full object id (40 hex digits, or 64 for a sha256 repository),
    lowercase."""
    return _FULL.fullmatch(text) is not None


def is_abbreviated_id(text: str) -> bool:
    """Whether ``text`` could be an abbreviated commit id (7 to 63 lowercase hex digits)."""
    return _ABBREV.fullmatch(text) is not None and not is_commit_id(text)


def revision_problem(revision: str) -> str | None:
    """Why ``revision`` cannot name anything (None when it may)."""
    if not isinstance(revision, str):
        return "the revision is not a string"
    if len(revision) > MAX_REVISION_CHARS:
        return f"the revision is longer than {MAX_REVISION_CHARS} characters"
    if revision.startswith("-"):
        return "a revision starting with '-' names nothing"
    if _BAD.search(revision):
        return "a revision holds no whitespace or control character"
    return None


@dataclass(frozen=True)
class Refs:
    """A remote's advertised refs: ``refs`` maps a ref name to the commit it names (annotated
    tags peeled), ``head`` is HEAD's commit, ``head_ref`` the branch HEAD points to."""

    refs: dict[str, str]
    head: str | None
    head_ref: str | None

    def lookup(self, revision: str) -> tuple[str, str] | None:
        """``(ref name, commit id)`` for a ref-shaped ``revision`` (rules 1, 3 and 4 of the
        module docstring), None when no advertised ref matches."""
        if revision in ("", "HEAD"):
            if self.head is None:
                return None
            return self.head_ref or "HEAD", self.head
        if revision.startswith("refs/"):
            names = [revision]
        else:
            names = [f"refs/heads/{revision}", f"refs/tags/{revision}", f"refs/{revision}"]
        for name in names:
            commit = self.refs.get(name)
            if commit is not None:
                return name, commit
        return None


def parse_ls_remote(text: str) -> Refs:
    """Parse ``git ls-remote --symref`` output (``<id>\\t<ref>`` lines, ``<id>\\t<tag>^{}``
    for a peeled tag, ``ref: <target>\\tHEAD`` for HEAD's branch)."""
    direct: dict[str, str] = {}
    peeled: dict[str, str] = {}
    head_ref: str | None = None
    for line in text.splitlines():
        value, tab, name = line.partition("\t")
        if not tab:
            continue
        if value.startswith("ref: "):
            if name == "HEAD":
                head_ref = value[5:].strip()
            continue
        value = value.strip().lower()
        if not is_commit_id(value):
            continue
        if name.endswith("^{}"):
            peeled[name[:-3]] = value
        else:
            direct[name] = value
    refs = {name: peeled.get(name, commit) for name, commit in direct.items()
            if name.startswith("refs/")}
    head = direct.get("HEAD")
    if head_ref is not None and head_ref in refs:
        head = refs[head_ref]
    return Refs(refs, head, head_ref if head_ref in refs else None)


__all__ = ["MAX_REVISION_CHARS", "Refs", "is_abbreviated_id", "is_commit_id",
           "parse_ls_remote", "revision_problem"]
