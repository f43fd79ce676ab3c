"""Run ``kiln serve``: the engine, the server core, uvicorn, and the drain on SIGTERM.

:func:`serve` builds one warm :class:`kiln.core.engine.Engine` and a
:class:`kiln.cmp.service.CmpService` around it (key memo, gate, single-flight, metrics), the
git sources, and the FastAPI application, binds the listening socket itself (so an address
in use is one line, not a traceback) and runs uvicorn in the main thread.

SIGTERM or SIGINT drains, as ``kiln cmp serve`` does: ``/readyz`` turns 503 and new renders
are refused with 503 at once, the renders in flight get ``--drain-seconds`` to finish (then
their deadlines are cancelled, which kills their tools), and then uvicorn closes the socket
and the connections; the process exits 0. A second signal stops waiting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from kiln.core.errors import ConfigError

if TYPE_CHECKING:
    from kiln.core.engine import Engine
    from kiln.gitsource import GitSources
    from kiln.serve.auth import TLSFiles
    from kiln.server.lifecycle import ServerCore

log = logging.getLogger("kiln.serve")

MAX_BODY_ENV = "KILN_SERVE_MAX_BODY_BYTES"
DEFAULT_MAX_BODY = 1 << 20
TIMEOUT_ENV = "KILN_SERVE_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
DEFAULT_DRAIN_SECONDS = 30.0
DRAIN_GRACE = 5.0
"""Seconds the renders a drain cancelled get to end, and connections to close after it."""


@dataclass(frozen=True)
class ServeOptions:
    """``kiln serve``'s settings (flags and their variables)."""

    host: str
    port: int
    parallelism: int
    roots: Sequence[Path] = ()
    repos: Sequence[str] = ()
    git_cache_dir: Path | None = None
    token: bytes | None = None
    tls: TLSFiles | None = None
    drain_seconds: float = DEFAULT_DRAIN_SECONDS
    cache_dir: str | None = None
    cache_url: str | None = None
    max_cache_bytes: int | None = None
    use_cache: bool = True


def max_body_bytes(env: Mapping[str, str]) -> int:
    """``KILN_SERVE_MAX_BODY_BYTES`` (a size such as ``256KiB``), default 1 MiB. Raises
    ConfigError naming the variable."""
    from kiln.core.cache.size import parse_size

    text = env.get(MAX_BODY_ENV, "").strip()
    return parse_size(text, source=MAX_BODY_ENV) if text else DEFAULT_MAX_BODY


def request_timeout(env: Mapping[str, str]) -> float:
    """``KILN_SERVE_TIMEOUT`` seconds (default 60): every request's deadline, and the cap
    of ``X-Kiln-Timeout``. Raises ConfigError naming the variable."""
    import math

    text = env.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"must be a positive number of seconds, not {text!r}",
                          source=TIMEOUT_ENV)
    return seconds


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``. Raises ConfigError naming ``--listen`` (the
    address in use, not this machine's...)."""
    import errno

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise ConfigError(f"cannot resolve {host!r}", source="--listen") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        problem = ("address already in use" if exc.errno == errno.EADDRINUSE
                   else (exc.strerror or str(exc)).lower())
        raise ConfigError(f"cannot listen on {host}:{port}: {problem}",
                          source="--listen") from None
    sock.set_inheritable(True)
    return sock


def _git_sources(options: ServeOptions, env: Mapping[str, str], engine: Engine
                 ) -> GitSources:
    """The operator's git sources: the git variables of docs/git-sources.md, with the
    ``--allow-repo`` patterns added to ``KILN_GIT_ALLOWED_URLS``."""
    from kiln.gitsource import ALLOWED_ENV, GitSources

    cache_dir = options.git_cache_dir or (engine.cache_dir.parent / "kiln-git")
    if options.repos:
        env = {**env, ALLOWED_ENV: " ".join([env.get(ALLOWED_ENV, ""), *options.repos])}
    return GitSources.from_env(cache_dir, env)


def _readiness(core: ServerCore, engine: Engine, git: GitSources | None
               ) -> tuple[bool, dict[str, Any]]:
    detail: dict[str, Any] = {"draining": core.gate.draining}
    ok = not core.gate.draining
    if git is not None:
        health = git.health()
        detail["git"] = health
        ok = ok and bool(health.get("ok", False))
    store_health = getattr(engine.store, "health", None)
    if callable(store_health):
        detail["cache"] = store_health()
    return ok, detail


def serve(options: ServeOptions, env: Mapping[str, str]) -> None:
    """Run the server until SIGTERM/SIGINT, then drain and return. Raises ConfigError for
    bad settings (before anything listens)."""
    try:
        import fastapi  # noqa: F401 - checked up front for a clear line
        import prometheus_client  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise ConfigError(f"kiln serve needs {exc.name or 'fastapi'}: install kiln with its "
                          "serve extra (pip install 'kiln[serve]')") from None

    from kiln.cmp.keymemo import KeyMemo
    from kiln.cmp.server import private_workdir
    from kiln.cmp.service import CmpService
    from kiln.core.engine import Engine
    from kiln.serve.app import AppConfig, create_app
    from kiln.serve.auth import BearerAuth, check_exposure
    from kiln.serve.service import ServeService
    from kiln.server.lifecycle import ServerCore
    from kiln.server.metrics import ServerMetrics
    from kiln.server.requestlog import install

    if options.parallelism < 1:
        raise ConfigError("must be at least 1", source="--parallelism")
    check_exposure(options.host, options.token, options.tls)
    body_limit = max_body_bytes(env)
    timeout = request_timeout(env)
    roots = [_root(r) for r in options.roots]
    engine_args: dict[str, Any] = {}
    if options.max_cache_bytes is not None:
        engine_args["max_cache_bytes"] = options.max_cache_bytes
    engine = Engine(cache_dir=options.cache_dir, use_cache=options.use_cache,
                    cache_url=options.cache_url, env=env, **engine_args)
    _ = (engine.plugins.renderers, engine.plugins.resolvers)  # set up once, before any thread
    kiln_log = logging.getLogger("kiln")
    if kiln_log.level == logging.NOTSET or kiln_log.level > logging.INFO:
        kiln_log.setLevel(logging.INFO)
    install(kiln_log, engine.redactor)
    uv_log = logging.getLogger("uvicorn")
    uv_log.setLevel(logging.WARNING)
    install(uv_log, engine.redactor)
    metrics = ServerMetrics()
    core = ServerCore(options.parallelism, metrics)
    from kiln.server.distlock import install_distlock

    install_distlock(core, engine.store)
    git = _git_sources(options, env, engine)
    workdir = private_workdir(Path(env.get("TMPDIR") or "/tmp"))
    try:
        cmp = CmpService(engine, operator_env=env, workdir=workdir, core=core, memo=KeyMemo())
        service = ServeService(cmp, roots=roots, git=git)
        redactor = engine.redactor
        app = create_app(service, AppConfig(max_body_bytes=body_limit, timeout=timeout,
                                            auth=BearerAuth(options.token) if options.token
                                            else None, workers=4 * options.parallelism + 8),
                         redact=lambda text: _private_out(redactor.redact(text), workdir),
                         readiness=lambda: _readiness(core, engine, git))
        tls = options.tls.uvicorn_settings() if options.tls is not None else {}
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                server_header=False, proxy_headers=False,
                                timeout_graceful_shutdown=int(DRAIN_GRACE), **tls)
        try:
            config.load()
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"cannot load the TLS files: {exc.__class__.__name__}: "
                              f"{getattr(exc, 'strerror', None) or exc}",
                              source="--tls-cert/--tls-key/--tls-client-ca") from None
        sock = bind(options.host, options.port)
        host, port = sock.getsockname()[:2]
        scheme = "https" if options.tls is not None else "http"
        log.info("serving on %s://%s:%d (parallelism %d, %d allowed root(s), auth: %s)",
                 scheme, f"[{host}]" if ":" in host else host, port, options.parallelism,
                 len(roots), _auth_name(options))
        server = _Server(config, core, options.drain_seconds)
        server.run(sockets=[sock])
        log.info("stopped%s", "" if server.drained else
                 " (in-flight requests cut off after the drain)")
    finally:
        if git is not None:
            git.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _root(text: Path) -> Path:
    real = Path(os.path.realpath(text))
    if not real.is_dir():
        raise ConfigError("not a directory", source=f"--allow-root {text}")
    return real


def _auth_name(options: ServeOptions) -> str:
    if options.tls is not None and options.tls.mutual:
        return "mTLS" + (" and bearer token" if options.token else "")
    return "bearer token" if options.token else "none (loopback only)"


def _private_out(text: str, workdir: Path) -> str:
    """``text`` without the server's private directories (errors name repository paths)."""
    import re

    return re.sub(re.escape(str(workdir)) + r"/[^/\s]+/?", "", text)


class _Server:
    """uvicorn's server with kiln's signal handling: the first SIGTERM/SIGINT drains (see
    the module docstring), a second one stops waiting; no signal is re-raised afterwards."""

    def __init__(self, config: Any, core: ServerCore, drain_seconds: float) -> None:
        import uvicorn

        outer = self

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                if threading.current_thread() is not threading.main_thread():
                    yield
                    return
                previous = {sig: signal.signal(sig, outer.on_signal)
                            for sig in (signal.SIGTERM, signal.SIGINT)}
                try:
                    yield
                finally:
                    for sig, handler in previous.items():
                        signal.signal(sig, handler)

        self.server = Server(config)
        self.core = core
        self.drain_seconds = drain_seconds
        self.drained = True
        self._draining: threading.Thread | None = None

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """The first signal starts the drain in a thread; the next ones hurry it."""
        if self._draining is not None:
            for scope in self.core.active():
                scope.deadline.cancel("the server is shutting down")
            self.server.force_exit = True
            return
        log.info("%s: draining (up to %gs for the requests in flight)",
                 signal.Signals(signum).name, self.drain_seconds)
        self._draining = threading.Thread(target=self._drain, name="kiln-serve-drain",
                                          daemon=True)
        self._draining.start()

    def _drain(self) -> None:
        try:
            self.drained = self.core.drain(self.drain_seconds, grace=DRAIN_GRACE)
        finally:
            self.server.should_exit = True

    def run(self, sockets: list[socket.socket]) -> None:
        """Serve on ``sockets`` until the drain ends."""
        self.server.run(sockets=sockets)


__all__ = ["ServeOptions", "bind", "max_body_bytes", "request_timeout", "serve"]
