"""The ``kiln serve`` command: an HTTP/JSON repo-server (see :mod:`kiln.serve`).

A face: registered through ``kiln_register_commands``; nothing heavy is imported until the
command runs (FastAPI and uvicorn only then).
"""

from __future__ import annotations

import os
from typing import Any

import click

from kiln.core.hookspecs import hookimpl

DEFAULT_LISTEN = "127.0.0.1:8080"


@click.command("serve")
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT",
              help="Address to listen on ([IPv6]:PORT; :PORT for every IPv4 interface). "
              "Beyond loopback only with --token-file or mTLS.")
@click.option("--allow-root", "roots", multiple=True, envvar="KILN_SERVE_ROOTS",
              type=click.Path(file_okay=False, path_type=str), metavar="DIR",
              help="A directory path requests may name (repeatable; $KILN_SERVE_ROOTS, "
              "':'-separated). None: path requests are refused.")
@click.option("--allow-repo", "repos", multiple=True, metavar="PATTERN",
              help="Repository URL pattern (fnmatch) git requests may name (repeatable, "
              "added to $KILN_GIT_ALLOWED_URLS). Default: any.")
@click.option("--git-cache-dir", envvar="KILN_SERVE_GIT_CACHE_DIR", metavar="DIR",
              help="Where the bare mirrors live (default: kiln-git beside the cache "
              "directory).")
@click.option("--token-file", envvar="KILN_SERVE_TOKEN_FILE", metavar="FILE",
              help="Require 'Authorization: Bearer <token>' with the token in FILE.")
@click.option("--tls-cert", metavar="FILE", help="Serve TLS with this certificate (PEM).")
@click.option("--tls-key", metavar="FILE", help="The certificate's private key (PEM).")
@click.option("--tls-client-ca", metavar="FILE",
              help="Require client certificates signed by this CA (mTLS).")
@click.option("--parallelism", type=int, default=None, metavar="N",
              help="Renders at once; more wait in a queue (default: the CPU count).")
@click.option("--drain-seconds", type=float, default=30.0, show_default=True, metavar="S",
              help="On SIGTERM, how long requests in flight may take to finish.")
@click.option("--cache-dir", envvar="KILN_CACHE_DIR", metavar="DIR",
              help="Cache directory (default $XDG_CACHE_HOME/kiln).")
@click.option("--cache-url", envvar="KILN_CACHE_URL", metavar="URL",
              help="Keep manifests in Redis (redis://host:port/db), shared by replicas.")
@click.option("--cache-max-bytes", metavar="SIZE",
              help="Size bound of the cache directory, e.g. 500MiB or 2GiB (default "
              "$KILN_CACHE_MAX_BYTES, else 1GiB).")
@click.option("--no-cache", is_flag=True, help="Render without reading or writing the cache.")
def serve(listen: str, roots: tuple[str, ...], repos: tuple[str, ...],
          git_cache_dir: str | None, token_file: str | None, tls_cert: str | None,
          tls_key: str | None, tls_client_ca: str | None, parallelism: int | None,
          drain_seconds: float, cache_dir: str | None, cache_url: str | None,
          cache_max_bytes: str | None, no_cache: bool) -> None:
    """Serve kiln over HTTP/JSON (POST /v1/render, /openapi.json, /healthz, /readyz,
    /metrics) for other controllers and CI: render an app from an allowed directory or a git
    repository at a revision. Needs the serve extra (pip install 'kiln[serve]')."""
    from pathlib import Path

    from kiln.core.cache.fs import DEFAULT_MAX_BYTES
    from kiln.core.cache.size import max_bytes_setting
    from kiln.core.errors import ConfigError
    from kiln.serve.auth import TLSFiles, parse_listen, read_token
    from kiln.serve.runner import ServeOptions
    from kiln.serve.runner import serve as run

    env = dict(os.environ)
    host, port = parse_listen(listen)
    if drain_seconds < 0:
        raise ConfigError("must not be negative", source="--drain-seconds")
    options = ServeOptions(
        host=host, port=port,
        parallelism=parallelism if parallelism is not None else os.cpu_count() or 1,
        roots=[Path(r) for r in roots if r], repos=list(repos),
        git_cache_dir=Path(git_cache_dir) if git_cache_dir else None,
        token=read_token(token_file) if token_file else None,
        tls=TLSFiles.from_flags(tls_cert, tls_key, tls_client_ca),
        drain_seconds=drain_seconds, cache_dir=cache_dir, cache_url=cache_url,
        max_cache_bytes=max_bytes_setting(cache_max_bytes, env, DEFAULT_MAX_BYTES),
        use_cache=not no_cache)
    run(options, env)


@hookimpl
def kiln_register_commands(registry: Any) -> None:
    """Add ``serve`` to the ``kiln`` command line."""
    registry.add(serve)
