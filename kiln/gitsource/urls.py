"""Repository URLs: which ones kiln accepts, their normal form, and how they are shown.

A URL reaches git only once it is normalised here (:func:`normalize_url`), and the operator's
allow patterns are matched against that normal form (:func:`check_allowed`). Accepted:

- ``https://``, ``http://``, ``ssh://`` (``git+ssh://``, ``ssh+git://`` read as ``ssh://``),
  ``git://`` with a host: scheme and host lowercased, ``.`` and empty path segments and a
  trailing ``/`` dropped;
- scp-like ``[user@]host:path`` (ssh), the host lowercased;
- ``file://`` URLs and absolute local paths, both as ``file://`` plus the real path
  (symlinks followed, so a pattern like ``file:///srv/git/*`` cannot be left by a link or a
  ``..``).

Refused (:class:`GitURLRefused`): an empty URL, one longer than :data:`MAX_URL_CHARS`, one
holding whitespace or a control character, one starting with ``-`` (git would read an
option), git's ``<transport>::<address>`` remote-helper form (``ext::sh -c ...``,
``fd::``...), any other scheme, a host starting with ``-``, a ``..`` path segment or a
percent-encoded ``.`` or ``/`` (a path the server may read differently from the pattern), a
password in the URL (any user info at all but for ssh: a token as the user name is a
credential too). Git credentials come from the operator's configuration only (credential
helpers, ``GIT_ASKPASS``, ``GIT_SSH_COMMAND``, ssh keys); a user name for ssh is no secret.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from kiln.core.redact import MASK, mask_credentials
from kiln.gitsource.errors import GitURLRefused

MAX_URL_CHARS = 2048
"""Longest repository URL accepted."""
_SCHEMES = {"https": "https", "http": "http", "ssh": "ssh", "git+ssh": "ssh", "ssh+git": "ssh",
            "git": "git", "file": "file"}
_HELPER = re.compile(r"[A-Za-z0-9._~+-]*::")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_SCP = re.compile(r"(?:([^@/:]+)@)?([^@/:\[\]]+|\[[^\]/]+\]):(.*)", re.S)
_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")
_ENCODED = re.compile(r"%(?:2e|2f|5c)", re.I)


def redact_url(url: str) -> str:
    """``url`` as it may appear in a message or a log line: credentials masked (the user
    info of ``scheme://user:password@host`` and of scp-like ``user:password@host:path``),
    whitespace collapsed, at most 300 characters."""
    text = mask_credentials(" ".join(url.split()))
    if "://" not in text:
        at = text.rfind("@")
        colon = text.find(":")
        if at > 0 and (colon == -1 or colon < at):
            text = MASK + text[at:]
    return text if len(text) <= 300 else text[:300] + "..."


def _refuse(url: str, problem: str) -> GitURLRefused:
    return GitURLRefused(problem, source=f"repository {redact_url(url)!r}")


def _clean_path(url: str, path: str) -> str:
    if _ENCODED.search(path):
        raise _refuse(url, "a percent-encoded '.', '/' or '\\' in the path is refused")
    parts = path.split("/")
    if ".." in parts:
        raise _refuse(url, "a '..' segment in the path is refused")
    kept = [p for p in parts if p not in ("", ".")]
    return "/" + "/".join(kept) if path.startswith("/") else "/".join(kept)


def normalize_url(url: str) -> str:
    """The normal form of the repository ``url`` (see the module docstring): what the mirror
    is keyed by, what git is given, and what the allow patterns match. Raises GitURLRefused
    (one line, credentials masked) for a URL kiln refuses."""
    if not isinstance(url, str) or not url.strip(" "):
        raise GitURLRefused("the repository URL is empty", source="repository")
    url = url.strip(" ")
    if len(url) > MAX_URL_CHARS:
        raise _refuse(url, f"the URL is longer than {MAX_URL_CHARS} characters")
    if _BAD_CHARS.search(url):
        raise _refuse(url, "the URL holds whitespace or a control character")
    if url.startswith("-"):
        raise _refuse(url, "a URL starting with '-' is refused (git would read an option)")
    if _HELPER.match(url):
        raise _refuse(url, "git's '<transport>::<address>' remote-helper form is refused")
    if url.startswith("/"):
        return "file://" + _local_path(url, url)
    scheme_match = _SCHEME.match(url)
    if scheme_match is None:
        return _scp(url)
    scheme = _SCHEMES.get(scheme_match.group(1).lower())
    if scheme is None:
        raise _refuse(url, f"the scheme {scheme_match.group(1)!r} is refused (https, http, "
                           "ssh, git, file or an absolute path)")
    if scheme == "file":
        rest = url[scheme_match.end():]
        host, slash, path = rest.partition("/")
        if host not in ("", "localhost") or not slash:
            raise _refuse(url, "a file:// URL names a local absolute path (file:///path)")
        return "file://" + _local_path(url, "/" + path)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _refuse(url, f"not a valid URL ({exc})") from None
    host = (parts.hostname or "").lower()
    if not host:
        raise _refuse(url, "the URL names no host")
    if host.startswith("-"):
        raise _refuse(url, "a host starting with '-' is refused")
    if parts.password is not None or (scheme != "ssh" and parts.username):
        raise _refuse(url, "credentials in the URL are refused (git credentials come from "
                           "the operator's configuration)")
    if parts.query or parts.fragment:
        raise _refuse(url, "a query or fragment in a repository URL is refused")
    user = f"{parts.username}@" if parts.username else ""
    if user.startswith("-"):
        raise _refuse(url, "a user name starting with '-' is refused")
    netloc = f"{user}[{host}]" if ":" in host else f"{user}{host}"
    if port is not None:
        netloc += f":{port}"
    path = _clean_path(url, parts.path)
    return f"{scheme}://{netloc}{path if path != '/' else ''}"


def _scp(url: str) -> str:
    match = _SCP.fullmatch(url)
    if match is None or not match.group(3):
        raise _refuse(url, "not a repository URL (https://, http://, ssh://, git://, "
                           "file://, user@host:path or an absolute path)")
    user, host, path = match.group(1), match.group(2).lower(), match.group(3)
    if user is None and host in _SCHEMES:
        raise _refuse(url, f"{host}: without '//' is no URL (ssh to a host named {host!r}?)")
    if host.startswith("-") or (user or "").startswith("-"):
        raise _refuse(url, "a host or user starting with '-' is refused")
    if ":" in (user or "") or "@" in path:
        raise _refuse(url, "credentials in the URL are refused (git credentials come from "
                           "the operator's configuration)")
    cleaned = _clean_path(url, path)
    if not cleaned or cleaned == "/":
        raise _refuse(url, "the URL names no repository path")
    return f"{user + '@' if user else ''}{host}:{cleaned}"


def _local_path(url: str, path: str) -> str:
    if _ENCODED.search(path) or "%" in path:
        raise _refuse(url, "percent-encoding in a local path is refused")
    return os.path.realpath(posixpath.normpath(path))


def check_allowed(normalized: str, allowed: Sequence[str], raw: str | None = None) -> None:
    """Raise GitURLRefused unless ``normalized`` (a :func:`normalize_url` result) matches one
    of the operator's ``allowed`` patterns (:func:`fnmatch.fnmatchcase`; ``*`` matches ``/``
    too); an empty ``allowed`` allows every URL."""
    if not allowed:
        return
    if any(fnmatch.fnmatchcase(normalized, pattern) for pattern in allowed):
        return
    raise _refuse(raw if raw is not None else normalized,
                  "the URL is not allowed by the operator's repository patterns")


def is_local(normalized: str) -> bool:
    """Whether a normalised URL names a repository on this machine (``file://``)."""
    return normalized.startswith("file://")


__all__ = ["MAX_URL_CHARS", "check_allowed", "is_local", "normalize_url", "redact_url"]
