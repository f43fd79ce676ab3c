"""The files of the Source Hydrator's layout, as bytes: ``hydrator.metadata``, ``README.md``,
``.gitattributes`` (``manifest.yaml`` is :mod:`kiln.hydrate.manifest`).

Argo CD 3.x's commit server writes, at the root of the hydrated branch, a ``hydrator.metadata``
holding the dry commit (``repoURL``, ``drySha``, ``author``, ``date``, ``subject``, ``body``,
``references``) and a ``.gitattributes`` marking the generated files; in each application's
path a ``manifest.yaml``, a ``hydrator.metadata`` with ``repoURL``, ``drySha`` and
``commands``, and a ``README.md`` saying how to reproduce it. The JSON is Go's
``json.Encoder`` with a two-space indent and no HTML escaping: fields in that order, empty
ones left out, a final newline. :class:`DryCommit` also derives the commit message Argo CD's
default template gives, plus trailers naming the dry commit.
"""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MANIFEST = "manifest.yaml"
METADATA = "hydrator.metadata"
README = "README.md"
GITATTRIBUTES = ".gitattributes"
PATH_FILES = (MANIFEST, METADATA, README)
"""The files kiln writes in each application's path."""

GITATTRIBUTES_TEXT = (b"**/README.md linguist-generated=true\n"
                      b"**/hydrator.metadata linguist-generated=true")
"""What Argo CD's commit server writes to the root ``.gitattributes`` (no final newline)."""

TRAILER_PREFIX = "Argocd-reference-commit-"
_SHA = re.compile(r"[0-9a-f]{5,40}")


@dataclass(frozen=True)
class Reference:
    """A commit the dry commit points at through ``Argocd-reference-commit-*`` trailers (the
    code commit a CI job bumped an image for)."""

    author: str = ""
    date: str = ""
    subject: str = ""
    body: str = ""
    sha: str = ""
    repo_url: str = ""

    def as_json(self) -> dict[str, Any]:
        """Argo CD's ``RevisionReference`` shape: ``{"commit": {...}}``, empty fields left out."""
        commit = {"author": self.author, "date": self.date, "subject": self.subject,
                  "body": self.body, "sha": self.sha, "repoUrl": self.repo_url}
        return {"commit": {k: v for k, v in commit.items() if v}}


def _rfc3339(text: str) -> str | None:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None or "T" not in text.upper():
        return None
    return rfc3339(when)


def rfc3339(when: datetime) -> str:
    """Go's ``time.RFC3339`` form: seconds, ``Z`` for UTC, else ``+hh:mm``."""
    offset = when.utcoffset()
    if offset is None or not offset:
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = when.strftime("%Y-%m-%dT%H:%M:%S%z")
    return f"{text[:-2]}:{text[-2:]}"


def _trailer_value(ref: dict[str, str], key: str, value: str) -> bool:
    """Record one ``Argocd-reference-commit-<key>`` trailer when its value is valid."""
    if key == "repourl":
        if not value or any(c.isspace() for c in value):
            return False
        ref["repo_url"] = value
    elif key == "author":
        name, address = email.utils.parseaddr(value)
        if not address or "@" not in address:
            return False
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        ref["author"] = f'"{quoted}" <{address}>' if name else f"<{address}>"  # Go's form
    elif key == "date":
        date = _rfc3339(value)
        if date is None:
            return False
        ref["date"] = date
    elif key == "subject":
        ref["subject"] = value
    elif key == "body":
        try:
            body = json.loads(value)
        except ValueError:
            return False
        if not isinstance(body, str):
            return False
        ref["body"] = body
    elif key == "sha":
        if not _SHA.fullmatch(value):
            return False
        ref["sha"] = value
    else:
        return False
    return True


def split_references(body: str) -> tuple[tuple[Reference, ...], str]:
    """The reference the body's valid ``Argocd-reference-commit-*`` trailers describe (none
    when it has none), and the body without those lines (each kept line ends in a newline),
    as Argo CD reads a dry commit's message."""
    found: dict[str, str] = {}
    kept: list[str] = []
    lines = body.split("\n")
    if lines[-1] == "":
        lines.pop()  # as Go's line scanner: a final newline ends the last line
    for line in (line.removesuffix("\r") for line in lines):
        key, sep, value = line.partition(": ")
        if (line.startswith(TRAILER_PREFIX) and sep
                and _trailer_value(found, key[len(TRAILER_PREFIX):], value)):
            continue
        kept.append(line + "\n")
    refs = (Reference(**found),) if found else ()
    return refs, "".join(kept)


@dataclass(frozen=True)
class DryCommit:
    """The dry-source commit a hydration is of: its id, repository URL and message parts."""

    sha: str
    repo_url: str = ""
    author: str = ""  # "Name <email>"
    date: str = ""  # RFC 3339
    subject: str = ""
    body: str = ""  # without the valid Argocd-reference-commit-* trailers
    references: tuple[Reference, ...] = field(default=())

    @classmethod
    def from_message(cls, sha: str, message: str, *, repo_url: str = "", author: str = "",
                     date: str = "") -> DryCommit:
        """The dry commit ``sha`` with ``message`` split as Argo CD splits it: the subject up
        to the first blank line, the body after it, reference trailers taken out."""
        subject, _, body = message.partition("\n\n")
        refs, rest = split_references(body)
        return cls(sha=sha, repo_url=repo_url, author=author, date=date, subject=subject,
                   body=rest, references=refs)

    def root_metadata(self) -> bytes:
        """The root ``hydrator.metadata``."""
        return go_json({"repoURL": self.repo_url, "drySha": self.sha, "author": self.author,
                        "date": self.date, "subject": self.subject, "body": self.body,
                        "references": [r.as_json() for r in self.references]})

    def commit_message(self) -> str:
        """The hydrated commit's message: what Argo CD's default template writes (the short
        dry sha and subject, the body, ``Co-authored-by`` for the referenced and the dry
        authors), then trailers naming the dry commit itself, in the ``Argocd-reference-
        commit-*`` form Argo CD reads (``-body`` as a JSON string, as it expects)."""
        lines = [f"{self.sha[:7]}: {self.subject}".rstrip()]
        body = self.body.strip("\n")
        if body:
            lines += ["", body]
        trailers = [f"Co-authored-by: {r.author}" for r in self.references if r.author]
        if self.author:
            trailers.append(f"Co-authored-by: {self.author}")
        own = {"sha": self.sha, "repourl": self.repo_url, "author": self.author,
               "date": self.date, "subject": self.subject}
        trailers += [f"{TRAILER_PREFIX}{k}: {v}" for k, v in own.items() if v]
        message_body = self.body.strip("\n")
        if message_body:
            trailers.append(f"{TRAILER_PREFIX}body: {json.dumps(message_body)}")
        lines += ["", *trailers]
        return "\n".join(lines) + "\n"


def path_metadata(repo_url: str, dry_sha: str, commands: Sequence[str]) -> bytes:
    """An application path's ``hydrator.metadata``."""
    return go_json({"repoURL": repo_url, "drySha": dry_sha, "commands": list(commands)})


def readme(repo_url: str, dry_sha: str, commands: Sequence[str]) -> bytes:
    """An application path's ``README.md``: what Argo CD's default README template gives for
    the path's metadata (how to check out the dry commit and rerun the commands)."""
    lines = ["# Manifest Hydration", "",
             "To hydrate the manifests in this repository, run the following commands:", "",
             "```shell", f"git clone {repo_url}", "# cd into the cloned directory",
             f"git checkout {dry_sha}", *commands, "```"]
    return ("\n".join(lines) + "\n").encode("utf-8")


def go_json(value: dict[str, Any]) -> bytes:
    """``value`` as Go's ``json.Encoder`` (indent two spaces, ``SetEscapeHTML(false)``) encodes
    a struct whose fields all have ``omitempty``: empty strings and lists left out, a final
    newline, U+2028/U+2029 escaped as Go always does."""
    kept = {k: v for k, v in value.items() if v not in ("", [], None, {})}
    text = json.dumps(kept, indent=2, ensure_ascii=False)
    return (text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"
            ).encode("utf-8")
