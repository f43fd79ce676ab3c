"""``kiln cmp serve``: Argo CD's ``plugin.ConfigManagementPluginService`` over a unix socket.

The repo-server dials ``<dir>/<name>[-<version>].sock`` in the sidecar and streams each app's
repository to it (see ``../shared/reference/apply-and-serve.md`` §1 for the contract). Where
argocd-cmp-server unpacks the stream and starts ``kiln generate .`` for every request, this
server answers from one warm process (:class:`kiln.cmp.service.CmpService`): the same answers,
without a process per request, and a cache hit without unpacking.

gRPC specifics live here: status codes, the deadline (the call's, minus
:data:`DEADLINE_MARGIN`, as argocd-cmp-server does), cancellation, the health service, the
socket's life, and the drain on SIGTERM/SIGINT (stop taking calls, let those in flight finish
within ``--drain-seconds``, remove the socket, exit 0).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kiln.core.errors import ConfigError, InputError, KilnError

if TYPE_CHECKING:
    import grpc

    from kiln.cmp.service import CmpService
    from kiln.cmp.stream import Received, StreamLimits
    from kiln.core.deadline import Deadline
    from kiln.core.sourcetree import SourceTreeCache

log = logging.getLogger("kiln.cmp.server")

SERVICE = "plugin.ConfigManagementPluginService"
SOCKET_DIR_ENV = "ARGOCD_PLUGINSOCKFILEPATH"
DEFAULT_SOCKET_DIR = "/home/argocd/cmp-server/plugins"
WORKDIR_ENV = "ARGOCD_CMP_WORKDIR"
WORKDIR_PREFIX = "kiln-cmp-"
MAX_MESSAGE_BYTES = 100 * 1024 * 1024
"""gRPC message cap, both ways (the repo-server's ``ARGOCD_GRPC_MAX_SIZE_MB`` default)."""
DEADLINE_MARGIN = 0.1
"""Seconds taken off the call's deadline, so kiln's own error arrives before the caller's."""
DEFAULT_DRAIN_SECONDS = 30.0
DRAIN_GRACE = 5.0
"""Seconds calls still running after the drain get once their deadlines are cancelled."""
TREE_CACHE_ENV = "KILN_CMP_TREE_CACHE_BYTES"
DEFAULT_TREE_CACHE_BYTES = 256 * 1024 * 1024

T = TypeVar("T")


def socket_path(env: Mapping[str, str], override: str | None = None) -> Path:
    """Where to listen: ``override``, else ``$ARGOCD_PLUGINSOCKFILEPATH`` (default
    ``/home/argocd/cmp-server/plugins``) / ``<name>[-<version>].sock``, the name and version
    being those of the plugin.yaml ``kiln cmp plugin-yaml`` prints (as argocd-cmp-server
    names its socket after its plugin.yaml)."""
    if override:
        return Path(override)
    from kiln.cmp.plugin_yaml import plugin_config

    config = plugin_config()
    name = str(config["metadata"]["name"])
    version = str(config["spec"].get("version") or "")
    directory = env.get(SOCKET_DIR_ENV) or DEFAULT_SOCKET_DIR
    return Path(directory) / (f"{name}-{version}.sock" if version else f"{name}.sock")


def remove_stale_socket(path: Path) -> None:
    """Remove a socket left at ``path`` by an earlier run; refuse to remove anything else."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigError("exists and is not a socket (refusing to remove it)",
                          source=str(path))
    path.unlink()


def private_workdir(base: Path) -> Path:
    """A new directory (mode 0700) for this server's extractions under ``base``, named after
    its process; those left by servers no longer running are removed first (as
    argocd-cmp-server wipes its own at start, without touching another live server's)."""
    import tempfile

    base.mkdir(parents=True, exist_ok=True)
    for old in base.glob(f"{WORKDIR_PREFIX}*"):
        pid = old.name[len(WORKDIR_PREFIX):].partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)) and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-", dir=base))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class ServeOptions:
    """``kiln cmp serve``'s settings."""

    socket: Path
    parallelism: int
    metrics_addr: str | None = None
    drain_seconds: float = DEFAULT_DRAIN_SECONDS
    discovery: bool = True


class _Handler:
    """One gRPC call: request id, deadline, cancellation, errors, metrics and the log line."""

    def __init__(self, server: CmpServer) -> None:
        self.server = server

    def run(self, method: str, context: grpc.ServicerContext,
            body: Callable[[Deadline], T]) -> T:
        """``body(deadline)``'s answer, or the call aborted with kiln's one-line error."""
        import grpc

        from kiln.core.deadline import Deadline

        deadline = Deadline.from_remaining(context.time_remaining(), margin=DEADLINE_MARGIN,
                                           cap=self.server.default_seconds,
                                           default=self.server.default_seconds,
                                           source="the gRPC deadline")
        def cancelled() -> None:  # gRPC also calls back when the call ends normally
            if not context.is_active():
                deadline.cancel("the client cancelled the call")

        context.add_callback(cancelled)
        try:
            with self.server.core.request(method, deadline):
                return body(deadline)
        except KilnError as exc:
            code = _status(exc, deadline)
            context.abort(code, self.server.redact(exc.one_line()))
        except Exception:
            if context.code() is not None:
                raise  # already aborted (or cancelled) by gRPC itself
            log.exception("%s: internal error", method)
            context.abort(grpc.StatusCode.INTERNAL,
                          "kiln: internal error (the server log has the details)")
        raise AssertionError("unreachable: abort raises")


def _status(exc: KilnError, deadline: Deadline) -> Any:
    """The gRPC status code for a kiln error."""
    import grpc

    from kiln.cmp.stream import StreamError
    from kiln.core.deadline import DeadlineExceeded
    from kiln.server import ServerDraining

    if isinstance(exc, ServerDraining):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, DeadlineExceeded):
        if deadline.cancelled:
            return grpc.StatusCode.CANCELLED
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(exc, (StreamError, InputError)):
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.UNKNOWN


class CmpServer:
    """The gRPC server around one :class:`CmpService`."""

    def __init__(self, service: CmpService, limits: StreamLimits, trees: SourceTreeCache,
                 *, default_seconds: float | None, discovery: bool = True) -> None:
        self.service = service
        self.discovery = discovery
        self.core = service.core
        self.limits = limits
        self.trees = trees
        self.metrics = service.metrics
        self.default_seconds = default_seconds
        self.handler = _Handler(self)

    def redact(self, text: str) -> str:
        """``text`` with every value the engine knows as secret, and credential shapes,
        masked, and the server's private directories left out of paths (``apps/web``,
        not ``/tmp/kiln-cmp-1-x/tree-y/apps/web``: the repository's own path)."""
        private = re.escape(str(self.service.workdir)) + r"/[^/\s]+/?"
        return re.sub(private, "", self.service.engine.redactor.redact(text))

    def receive(self, requests: Iterator[Any], deadline: Deadline) -> Received:
        """Read and check the stream, and the app path it names."""
        from kiln.cmp.service import check_app_path
        from kiln.cmp.stream import receive

        deadline.check("receiving the repository stream")
        received = receive(requests, self.limits, self.trees)
        if self.metrics is not None:
            self.metrics.add_stream_bytes(received.compressed_bytes)
            if received.reused:
                self.metrics.count_tree_cache_hit()
        check_app_path(received.tree, received.metadata.app_rel_path)
        return received

    def servicer(self) -> Any:
        """The ``ConfigManagementPluginService`` implementation (grpc's generated base)."""
        from kiln.cmp.proto import plugin_pb2, plugin_pb2_grpc

        server = self

        class Servicer(plugin_pb2_grpc.ConfigManagementPluginServiceServicer):
            def GenerateManifest(self, requests: Iterator[Any], context: Any) -> Any:
                def body(deadline: Deadline) -> Any:
                    received = server.receive(requests, deadline)
                    return plugin_pb2.ManifestResponse(
                        manifests=server.service.generate(received, deadline))
                return server.handler.run("GenerateManifest", context, body)

            def MatchRepository(self, requests: Iterator[Any], context: Any) -> Any:
                def body(deadline: Deadline) -> Any:
                    received = server.receive(requests, deadline)
                    supported = server.service.match(received, deadline)
                    return plugin_pb2.RepositoryResponse(isSupported=supported,
                                                         isDiscoveryEnabled=True)
                return server.handler.run("MatchRepository", context, body)

            def GetParametersAnnouncement(self, requests: Iterator[Any],
                                          context: Any) -> Any:
                def body(deadline: Deadline) -> Any:
                    received = server.receive(requests, deadline)
                    found = server.service.parameters(received, deadline)
                    return plugin_pb2.ParametersAnnouncementResponse(
                        parameterAnnouncements=[_announcement(a) for a in found])
                return server.handler.run("GetParametersAnnouncement", context, body)

            def CheckPluginConfiguration(self, request: Any, context: Any) -> Any:
                return server.handler.run(
                    "CheckPluginConfiguration", context,
                    lambda _deadline: plugin_pb2.CheckPluginConfigurationResponse(
                        isDiscoveryConfigured=server.discovery, provideGitCreds=False))

        return Servicer()


def _announcement(found: Mapping[str, Any]) -> Any:
    """A ``repository.ParameterAnnouncement`` from kiln's JSON form of one."""
    from kiln.cmp.proto import kiln_repository_pb2

    fields: dict[str, Any] = {}
    for name in ("name", "title", "tooltip", "itemType", "collectionType", "string"):
        if found.get(name) is not None:
            fields[name] = str(found[name])
    if found.get("required") is not None:
        fields["required"] = bool(found["required"])
    if found.get("array") is not None:
        fields["array"] = [str(v) for v in found["array"]]
    if found.get("map") is not None:
        fields["map"] = {str(k): str(v) for k, v in found["map"].items()}
    return kiln_repository_pb2.ParameterAnnouncement(**fields)


def serve(options: ServeOptions, env: Mapping[str, str],
          on_ready: Callable[[Path], None] | None = None) -> None:
    """Run the server until SIGTERM/SIGINT (:class:`kiln.core.interrupt.Interrupted` in the
    main thread), then drain and return. Raises ConfigError for bad settings."""
    try:
        import grpc
        import prometheus_client  # noqa: F401 - the metrics need it, checked up front
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    except ImportError as exc:
        raise ConfigError(f"kiln cmp serve needs {exc.name or 'grpcio'}: install kiln with "
                          "its cmp-server extra (pip install 'kiln[cmp-server]')") from None

    from kiln.cmp.keymemo import KeyMemo
    from kiln.cmp.proto import plugin_pb2_grpc
    from kiln.cmp.service import CmpService
    from kiln.cmp.stream import StreamLimits
    from kiln.core.cache.size import parse_size
    from kiln.core.deadline import DEFAULT_GENERATE_SECONDS, Deadline
    from kiln.core.engine import Engine
    from kiln.core.interrupt import Interrupted
    from kiln.core.sourcetree import SourceTreeCache
    from kiln.server.lifecycle import ServerCore
    from kiln.server.metrics import ServerMetrics, serve_metrics
    from kiln.server.requestlog import install

    if options.parallelism < 1:
        raise ConfigError("must be at least 1", source="--parallelism")
    limits = StreamLimits.from_env(env)
    tree_bytes = env.get(TREE_CACHE_ENV, "").strip()
    trees = SourceTreeCache(parse_size(tree_bytes, source=TREE_CACHE_ENV) if tree_bytes
                            else DEFAULT_TREE_CACHE_BYTES)
    default_seconds = Deadline.from_env(env, DEFAULT_GENERATE_SECONDS).seconds
    engine = Engine(env=env)
    _ = (engine.plugins.renderers, engine.plugins.resolvers)  # set up once, before any thread
    kiln_log = logging.getLogger("kiln")
    if kiln_log.level == logging.NOTSET or kiln_log.level > logging.INFO:
        kiln_log.setLevel(logging.INFO)
    install(kiln_log, engine.redactor)
    metrics = ServerMetrics()
    core = ServerCore(options.parallelism, metrics)
    workdir = private_workdir(Path(env.get(WORKDIR_ENV) or env.get("TMPDIR") or "/tmp"))
    service = CmpService(engine, operator_env=env, workdir=workdir, core=core, memo=KeyMemo())
    server_state = CmpServer(service, limits, trees, default_seconds=default_seconds,
                             discovery=options.discovery)
    metrics_server = serve_metrics(options.metrics_addr, metrics) if options.metrics_addr else None
    caps = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
    workers = futures.ThreadPoolExecutor(max_workers=4 * options.parallelism + 8,
                                         thread_name_prefix="kiln-cmp")
    grpc_server = grpc.server(workers, options=caps)
    plugin_pb2_grpc.add_ConfigManagementPluginServiceServicer_to_server(  # type: ignore[no-untyped-call]
        server_state.servicer(), grpc_server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    path = options.socket
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_socket(path)
    try:
        port = grpc_server.add_insecure_port(f"unix://{path}")
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen: {exc}", source=str(path)) from None
    if not port:
        raise ConfigError("cannot listen on this socket", source=str(path))
    grpc_server.start()
    for name in ("", SERVICE):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving %s on %s (parallelism %d)", SERVICE, path, options.parallelism)
    if on_ready is not None:
        on_ready(path)
    try:
        with contextlib.suppress(Interrupted):
            grpc_server.wait_for_termination()
    finally:
        # Drain: new calls are refused at once, those in flight get --drain-seconds (then
        # gRPC cancels them, which kills their tools through their deadlines).
        health_servicer.enter_graceful_shutdown()
        stopped = grpc_server.stop(grace=options.drain_seconds + DRAIN_GRACE)
        drained = core.drain(options.drain_seconds, grace=DRAIN_GRACE)
        stopped.wait()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        if metrics_server is not None:
            metrics_server.stop()
        workers.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(workdir, ignore_errors=True)
        log.info("stopped%s", "" if drained else " (in-flight calls cut off after the drain)")


__all__ = ["CmpServer", "ServeOptions", "remove_stale_socket", "serve", "socket_path"]
