"""The server core both kiln servers share (``kiln cmp serve`` over gRPC, ``kiln serve`` over
HTTP): bounded concurrency with a queue (:mod:`.gate`), single-flight per cache key
(:mod:`.singleflight`), Prometheus metrics (:mod:`.metrics`), request ids and redacted logs
(:mod:`.requestlog`), and one request's bookkeeping (:mod:`.lifecycle`).

Nothing here knows gRPC, HTTP, CMP or any plugin: a protocol layer turns its own deadline into
a :class:`kiln.core.deadline.Deadline` (``Deadline.from_remaining``), cancels it when its client
goes away, and maps the errors raised here to its status codes. Standard library only at
import time; prometheus_client is imported when metrics are made.
"""

from __future__ import annotations

from kiln.core.errors import KilnError


class ServerDraining(KilnError):
    """The server is shutting down: it finishes the work it has and admits no new request."""


__all__ = ["ServerDraining"]
