"""Secret-backend clients kept for reuse by one engine (a long-lived server's connections).

Resolvers build a backend (an hvac client logged in to Vault, a boto3 session, a gRPC channel
to Google Secret Manager) for each resolution. In ``kiln generate`` that is once per process;
in a server it would be a login and a new TLS connection per request. A :class:`ClientPool`
keeps them: a resolver asks ``ctx.reuse(identity, build)`` with everything the client was
built from (address, namespace, auth method, credentials, timeouts) as ``identity``, and gets
the client an earlier request built from exactly that, else a new one.

The identity is never stored: the pool keeps an HMAC of it under a key drawn at random for the
pool, so no credential lives on in its keys. Entries are bounded (least recently used out).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_ENTRIES = 32


class ClientPool:
    """A bounded, thread-safe map from a client's identity to the client built for it."""

    def __init__(self, max_entries: int = DEFAULT_ENTRIES) -> None:
        self.max_entries = max_entries
        self._salt = os.urandom(32)
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, Any] = OrderedDict()

    def reuse(self, identity: object, build: Callable[[], T]) -> T:
        """The client built by ``build`` for an equal ``identity`` (JSON-encodable; its
        ``repr`` otherwise), building and keeping it on first use. A kept client with a
        ``usable()`` method that answers False (e.g. its login token is about to expire) is
        replaced by a new one. Two threads asking for a new identity at once may both build;
        the first one kept wins."""
        key = self._key(identity)
        with self._lock:
            found = self._clients.get(key)
            if found is not None and _usable(found):
                self._clients.move_to_end(key)
                return found  # type: ignore[no-any-return]
            if found is not None:
                del self._clients[key]
        client = build()
        with self._lock:
            kept = self._clients.setdefault(key, client)
            if not _usable(kept):
                kept = self._clients[key] = client
            self._clients.move_to_end(key)
            while len(self._clients) > self.max_entries:
                self._clients.popitem(last=False)
        return kept  # type: ignore[no-any-return]

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)

    def _key(self, identity: object) -> str:
        try:
            text = json.dumps(identity, sort_keys=True, default=repr)
        except (TypeError, ValueError):
            text = repr(identity)
        return hmac.new(self._salt, text.encode(), hashlib.sha256).hexdigest()


def _usable(client: object) -> bool:
    check = getattr(client, "usable", None)
    return bool(check()) if callable(check) else True


__all__ = ["ClientPool"]
