"""The errors of git sources, each a :class:`kiln.core.errors.KilnError` with an HTTP status.

Every error is one line naming the repository URL (credentials masked) and the problem. The
class says whose mistake it is, and so what a server answers:

- :class:`GitURLRefused` (a ConfigError, 403): the URL is malformed, of a refused
  transport, carries a password, or matches no allowed pattern;
- :class:`GitRevisionError` (an InputError, 404): the revision names no commit of the
  repository (or is no revision at all);
- :class:`GitPathError` (an InputError, 404): a path is not a directory of the commit's tree;
- :class:`GitTreeError` (an InputError, 422): the commit's tree holds what kiln refuses (a
  symlink out of it, a ``.git`` path); :class:`GitTreeTooLarge` (413): over the size limits;
- :class:`GitRemoteError` (a ToolError, 502): git failed: the remote is unreachable, refused
  the credentials, the mirror is broken; :class:`GitTimeout` (504): git did not finish within
  the operator's timeout.

A passed or cancelled :class:`kiln.core.deadline.Deadline` is the deadline's own
DeadlineExceeded / Cancelled, not one of these.
"""

from __future__ import annotations

from kiln.core.errors import ConfigError, InputError, KilnError, ToolError
from kiln.core.redact import mask_credentials


class GitSourceError(KilnError):
    """A git source failed; ``status`` is the HTTP status a server answers with. The message
    and source are masked (:func:`kiln.core.redact.mask_credentials`) when made."""

    status = 500

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(_one_line(message), source=_one_line(source) if source else source)


def _one_line(text: str) -> str:
    return " ".join(mask_credentials(text).split())


class GitURLRefused(GitSourceError, ConfigError):
    """The repository URL is refused: malformed, a refused transport, a password in it, or
    not allowed by the operator's patterns (the caller's mistake: 403)."""

    status = 403


class GitRevisionError(GitSourceError, InputError):
    """The revision names no commit of the repository (the caller's mistake: 404)."""

    status = 404


class GitPathError(GitSourceError, InputError):
    """A path is not a directory of the commit's tree (the caller's mistake: 404)."""

    status = 404


class GitTreeError(GitSourceError, InputError):
    """The commit's tree holds what kiln refuses: a symlink leading out of it, a ``.git``
    path, an unknown mode (the repository's problem: 422)."""

    status = 422


class GitTreeTooLarge(GitTreeError):
    """The commit's tree holds more files or bytes than the operator's limits (413)."""

    status = 413


class GitRemoteError(GitSourceError, ToolError):
    """git failed: the remote is unreachable, refused the credentials, or the mirror is
    unusable (a backend's failure: 502)."""

    status = 502


class GitTimeout(GitRemoteError):
    """git did not finish within the operator's timeout (504)."""

    status = 504


__all__ = ["GitPathError", "GitRemoteError", "GitRevisionError", "GitSourceError",
           "GitTimeout", "GitTreeError", "GitTreeTooLarge", "GitURLRefused"]
