"""Git repository URLs compared the way people write them for the same repository."""

from __future__ import annotations

import re
from collections.abc import Sequence

_SCP = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.*)$")
"""scp-like ssh syntax: ``git@github.com:org/repo.git``."""


def normalise(url: str) -> str:
    """``host/path`` of a git URL, lower case, without scheme, user, port, ``.git`` and
    trailing slashes: ``https://github.com/Org/Repo.git``, ``ssh://git@github.com:22/org/repo``
    and ``git@github.com:org/repo`` all give ``github.com/org/repo``. A local path or
    ``file://`` URL keeps its path (``file:///srv/repo`` gives ``/srv/repo``)."""
    text = url.strip()
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme.lower() == "file":
            return _tidy(rest)
        host, _, path = rest.partition("/")
        host = host.rpartition("@")[2].partition(":")[0]
        return _tidy(f"{host}/{path}")
    match = _SCP.match(text)
    if match and not text.startswith("/"):
        return _tidy(f"{match.group(1)}/{match.group(2)}")
    return _tidy(text)


def _tidy(text: str) -> str:
    text = text.lower().rstrip("/")
    if text.endswith(".git"):
        text = text[:-4]
    text = text.rstrip("/")
    return re.sub(r"/{2,}", "/", text)


def is_checkout(url: str, repo_urls: Sequence[str]) -> bool:
    """True when ``url`` names the local checkout: ``repo_urls`` is empty (every git source
    is the checkout) or one of them is the same repository by :func:`normalise`."""
    if not repo_urls:
        return True
    wanted = normalise(url)
    return any(normalise(candidate) == wanted for candidate in repo_urls)
