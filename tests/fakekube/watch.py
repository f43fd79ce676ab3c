"""An open watch on the fake cluster: events after a resourceVersion, as chunked JSON lines."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from tests.fakekube.kinds import ResourceType
from tests.fakekube.status import ApiError

if TYPE_CHECKING:
    from tests.fakekube.cluster import Cluster, Key


WATCH_TIMEOUT = 60.0
"""Seconds a watch without ``timeoutSeconds`` stays open."""


class WatchStream:
    """An open watch: :meth:`lines` yields JSON event lines until the timeout or shutdown."""

    def __init__(self, cluster: Cluster, matches: Callable[[Key, Mapping[str, Any]], bool],
                 cursor: int, first: list[dict[str, Any]], deadline: float,
                 rtype: ResourceType) -> None:
        self.cluster = cluster
        self.matches = matches
        self.cursor = cursor
        self.first = first
        self.deadline = deadline
        self.rtype = rtype

    def lines(self) -> Iterator[bytes]:
        """Newline-terminated JSON events (``{"type": ..., "object": ...}``), as the API streams
        them; an ERROR event with a 410 Status when the start is older than the history."""
        for event in self.first:
            yield json.dumps(event).encode() + b"\n"
        cluster = self.cluster
        while True:
            with cluster.lock:
                events, ok = cluster.events_since(self.cursor)
                if not ok:
                    status = ApiError(410, "Expired", f"too old resource version: {self.cursor} "
                                      f"({cluster.resource_version})").body
                    yield json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"
                    return
                if not events:
                    remaining = self.deadline - cluster.clock()
                    if remaining <= 0 or cluster.closed:
                        return
                    cluster.changed.wait(min(remaining, 0.5))
                    cluster.tick()
                    continue
                self.cursor = events[-1][0]
                out = [{"type": kind, "object": obj} for _, kind, key, obj in events
                       if self.matches(key, obj)]
            for event in out:
                yield json.dumps(event).encode() + b"\n"
