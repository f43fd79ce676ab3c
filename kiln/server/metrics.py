"""Prometheus metrics of a kiln server, and the optional HTTP endpoint serving them.

:class:`ServerMetrics` owns its metrics in its own ``CollectorRegistry`` (never the process-wide
default one), so two servers, or two tests, in one process do not collide. prometheus_client is
imported when one is made: a cache-hit ``kiln render`` never pays for it.

The metric names are part of kiln's interface (dashboards, alerts):

=========================================  =========  ==========================================
name                                       type       labels / meaning
=========================================  =========  ==========================================
``kiln_requests_total``                    counter    ``method``, ``outcome``: ok, error,
                                                      cancelled, deadline
``kiln_request_duration_seconds``          histogram  ``method``; 1 ms .. 60 s buckets
``kiln_renders_total``                     counter    ``result``: hit (from the cache), render
                                                      (rendered and stored), uncached
``kiln_singleflight_shared_total``         counter    requests answered by an identical one's run
``kiln_queue_depth``                       gauge      requests waiting for a render slot
``kiln_in_flight``                         gauge      requests holding a render slot
``kiln_stream_bytes_total``                counter    request bytes received (compressed)
``kiln_extracted_bytes_total``             counter    bytes written to disk from requests
``kiln_extraction_avoided_bytes_total``    counter    request bytes never written to disk
``kiln_tree_cache_hits_total``             counter    requests whose source tree was known
=========================================  =========  ==========================================

plus prometheus_client's ``process_*`` collector (RSS, CPU, open files) in the same registry.

:func:`serve_metrics` serves a registry on ``--metrics-addr`` (``HOST:PORT``, ``[IPv6]:PORT``,
or ``:PORT`` for every IPv4 interface; :func:`parse_metrics_addr`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from kiln.core.deadline import Cancelled, DeadlineExceeded
from kiln.core.errors import ConfigError, KilnError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

OUTCOMES = ("ok", "error", "cancelled", "deadline")
"""The values of ``kiln_requests_total``'s ``outcome`` label."""
RENDER_RESULTS = ("hit", "render", "uncached")
"""The values of ``kiln_renders_total``'s ``result`` label."""
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 20.0, 30.0, 60.0)
"""Seconds: a cache hit takes milliseconds, a cold chart render seconds, a deadline a minute."""
FLAG = "--metrics-addr"


def outcome_of(error: BaseException | None) -> str:
    """The ``outcome`` label for a request that ended with ``error`` (None: it succeeded):
    cancelled for :class:`Cancelled`, deadline for any other DeadlineExceeded, else error."""
    if error is None:
        return "ok"
    if isinstance(error, Cancelled):
        return "cancelled"
    if isinstance(error, DeadlineExceeded):
        return "deadline"
    return "error"


class ServerMetrics:
    """The metrics of one server, registered in ``registry`` (default: a new one of its own).

    The methods are cheap and thread-safe (prometheus_client locks each value); unknown
    ``outcome`` or ``result`` values raise ValueError (a programming error, not input)."""

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 process: bool = True) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self._requests = Counter("kiln_requests", "Requests answered, by method and outcome.",
                                 ("method", "outcome"), registry=reg)
        self._duration = Histogram("kiln_request_duration_seconds",
                                   "Seconds from a request's start to its answer, by method.",
                                   ("method",), buckets=DURATION_BUCKETS, registry=reg)
        self._renders = Counter("kiln_renders", "Renders by result: hit (served from the "
                                "cache), render (rendered and stored), uncached.", ("result",),
                                registry=reg)
        for result in RENDER_RESULTS:
            self._renders.labels(result)
        self._shared = Counter("kiln_singleflight_shared",
                               "Requests answered by an identical concurrent request's run.",
                               registry=reg)
        self._queue = Gauge("kiln_queue_depth", "Requests waiting for a render slot.",
                            registry=reg)
        self._in_flight = Gauge("kiln_in_flight", "Requests holding a render slot.",
                                registry=reg)
        self._stream = Counter("kiln_stream_bytes", "Request stream bytes received.",
                               registry=reg)
        self._extracted = Counter("kiln_extracted_bytes",
                                  "Bytes of request files written to disk.", registry=reg)
        self._avoided = Counter("kiln_extraction_avoided_bytes",
                                "Bytes of request files never written to disk.", registry=reg)
        self._tree_hits = Counter("kiln_tree_cache_hits",
                                  "Requests whose source tree digest was already known.",
                                  registry=reg)
        if process:
            from prometheus_client import ProcessCollector

            ProcessCollector(registry=reg)

    def observe_request(self, method: str, outcome: str, seconds: float) -> None:
        """Count one answered request of ``method`` with ``outcome`` (one of
        :data:`OUTCOMES`, see :func:`outcome_of`) that took ``seconds``."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown request outcome {outcome!r}")
        self._requests.labels(method, outcome).inc()
        self._duration.labels(method).observe(max(0.0, seconds))

    def count_render(self, result: str) -> None:
        """Count one render with ``result`` (one of :data:`RENDER_RESULTS`)."""
        if result not in RENDER_RESULTS:
            raise ValueError(f"unknown render result {result!r}")
        self._renders.labels(result).inc()

    def count_shared(self) -> None:
        """Count one request answered by another's run (SingleFlight's ``on_shared``)."""
        self._shared.inc()

    def gate_changed(self, in_flight: int, queued: int) -> None:
        """Set the in-flight and queue-depth gauges (Gate's ``on_change``)."""
        self._in_flight.set(in_flight)
        self._queue.set(queued)

    def add_stream_bytes(self, count: int) -> None:
        """Count ``count`` bytes of request stream received."""
        self._stream.inc(max(0, count))

    def add_extracted_bytes(self, count: int) -> None:
        """Count ``count`` bytes of request files written to disk."""
        self._extracted.inc(max(0, count))

    def add_extraction_avoided_bytes(self, count: int) -> None:
        """Count ``count`` bytes of request files that did not need writing to disk."""
        self._avoided.inc(max(0, count))

    def count_tree_cache_hit(self) -> None:
        """Count one request whose source tree was already known."""
        self._tree_hits.inc()

    def exposition(self) -> tuple[bytes, str]:
        """The registry in Prometheus's text format, and its Content-Type (for a server that
        answers ``/metrics`` itself)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def parse_metrics_addr(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as ``(host, port)``: ``[::1]:9100`` for an IPv6 address (brackets
    required), ``:9100`` for every IPv4 interface (host ``0.0.0.0``; ``[::]:9100`` for every
    IPv6 one, and IPv4 too where the system maps it), port 0 for one the system picks.

    Raises ConfigError naming ``--metrics-addr`` for anything else."""
    import ipaddress

    def bad(problem: str) -> ConfigError:
        return ConfigError(f"{problem} (expected HOST:PORT, [IPv6]:PORT or :PORT), got "
                           f"{text!r}", source=FLAG)

    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise bad("no port")
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        raise bad("the port is not a number")
    port = int(port_text)
    if port > 65535:
        raise bad("the port is above 65535")
    if host.startswith("["):
        if "]" not in host:
            raise bad("an unclosed [")
        if not host.endswith("]"):
            raise bad("text between ] and the port")
        try:
            host = str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise bad("not an IPv6 address in []") from None
    elif not host:
        host = "0.0.0.0"  # documented: ":PORT" means every IPv4 interface
    elif ":" in host:
        raise bad("an IPv6 address needs brackets")
    elif not all(c.isascii() and (c.isalnum() or c in ".-_") for c in host):
        raise bad("not a host name or address")
    return host, port


class MetricsServer:
    """A running metrics endpoint; calling it (or :meth:`stop`) stops it."""

    def __init__(self, httpd: object, thread: threading.Thread, host: str, port: int) -> None:
        self._httpd = httpd
        self._thread = thread
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def url(self) -> str:
        """``http://host:port/metrics`` of the endpoint (brackets around an IPv6 host)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop serving and close the socket (waits for the serving thread; idempotent)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._httpd.shutdown()  # type: ignore[attr-defined]
        self._httpd.server_close()  # type: ignore[attr-defined]
        self._thread.join(timeout=5)

    __call__ = stop


def serve_metrics(addr: str, metrics: ServerMetrics) -> MetricsServer:
    """Serve ``metrics``' registry over HTTP on ``addr`` (see :func:`parse_metrics_addr`)
    from a daemon thread; return the running server, a callable that stops it.

    Raises ConfigError naming ``--metrics-addr`` for a malformed address, and a one-line
    KilnError naming it when the address cannot be listened on (in use, not local)."""
    import errno
    import socket

    from prometheus_client import start_http_server

    host, port = parse_metrics_addr(addr)
    try:
        httpd, thread = start_http_server(port, addr=host, registry=metrics.registry)
    except socket.gaierror:
        raise KilnError(f"cannot resolve the host of {addr!r}", source=FLAG) from None
    except OSError as exc:
        problem = ("address already in use" if exc.errno == errno.EADDRINUSE
                   else (exc.strerror or str(exc)).lower())
        raise KilnError(f"cannot listen on {addr!r}: {problem}", source=FLAG) from None
    bound = httpd.server_address
    return MetricsServer(httpd, thread, str(bound[0]), int(bound[1]))
