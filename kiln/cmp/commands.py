"""The ``kiln cmp`` command group: what the Argo CD sidecar calls besides ``kiln generate``.

- ``kiln cmp plugin-yaml``: print the ConfigManagementPlugin (or a ConfigMap holding it).
- ``kiln cmp discover [PATH]``: print the renderer kiln would use and exit 0 when kiln can
  render PATH; print nothing and exit 1 otherwise (the engine's one detection, see
  :mod:`kiln.cmp.detect`).
- ``kiln cmp parameters [PATH]``: print the dynamic ParameterAnnouncement JSON list.

stdout is written once, only after the command succeeded; errors go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from kiln.clikit import run_group
from kiln.core.hookspecs import hookimpl


def _emit(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


@click.group("cmp")
def cmp() -> None:
    """Argo CD Config Management Plugin (sidecar) commands."""


@cmp.command("plugin-yaml")
@click.option("--configmap", "configmap", is_flag=True,
              help="Wrap plugin.yaml in a ConfigMap (to mount with subPath).")
@click.option("--name", default=None, metavar="NAME",
              help="ConfigMap name (default kiln-cmp-plugin).")
@click.option("--namespace", default=None, metavar="NS", help="ConfigMap namespace.")
def plugin_yaml(configmap: bool, name: str | None, namespace: str | None) -> None:
    """Print the ConfigManagementPlugin for Argo CD's repo-server sidecar."""
    from kiln.cmp import plugin_yaml as py

    if configmap:
        _emit(py.configmap_yaml(name or py.CONFIGMAP_NAME, namespace))
    else:
        _emit(py.plugin_yaml())


@cmp.command("discover")
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=str))
def discover(path: str) -> None:
    """Print the renderer kiln would use and exit 0 if kiln can render PATH; else print
    nothing and exit 1."""
    from kiln.cmp.detect import discover as discover_kind

    kind = discover_kind(Path(path), os.environ)
    if kind is None:
        sys.exit(1)
    _emit(f"{kind}\n")


@cmp.command("parameters")
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=str))
def parameters(path: str) -> None:
    """Print the parameter announcements (JSON) for the app in PATH."""
    from kiln.cmp.announce import announcements

    found = announcements(Path(path), os.environ)
    _emit(json.dumps(found, indent=2, ensure_ascii=False) + "\n")


@cmp.command("serve")
@click.option("--socket", "socket", default=None, metavar="PATH",
              help="Unix socket to listen on (default $ARGOCD_PLUGINSOCKFILEPATH/kiln.sock, "
              "else /home/argocd/cmp-server/plugins/kiln.sock).")
@click.option("--parallelism", type=int, default=None, metavar="N",
              help="Renders at once; more wait in a queue (default: the CPU count).")
@click.option("--metrics-addr", default=None, metavar="HOST:PORT",
              help="Serve Prometheus metrics over HTTP there (default: off).")
@click.option("--drain-seconds", type=float, default=30.0, show_default=True, metavar="S",
              help="On SIGTERM, how long calls in flight may take to finish.")
@click.option("--discovery/--no-discovery", default=True, show_default=True,
              help="Say discovery is configured. With --no-discovery, Applications that name "
              "the plugin (plugin.name: kiln) skip MatchRepository, one repository stream "
              "less per refresh; 'plugin: {}' Applications then never pick kiln.")
def serve(socket: str | None, parallelism: int | None, metrics_addr: str | None,
          drain_seconds: float, discovery: bool) -> None:
    """Serve Argo CD's CMP gRPC protocol on a unix socket, in place of argocd-cmp-server:
    one warm process renders every app (no process per request)."""
    from kiln.cmp.server import ServeOptions, socket_path
    from kiln.cmp.server import serve as run

    env = dict(os.environ)
    options = ServeOptions(socket=socket_path(env, socket),
                           parallelism=(parallelism if parallelism is not None
                                        else os.cpu_count() or 1),
                           metrics_addr=metrics_addr, drain_seconds=drain_seconds,
                           discovery=discovery)
    run(options, env)


def main(argv: list[str] | None = None) -> None:
    """Run the ``cmp`` group standalone (``python -m kiln.cmp``) with kiln's error contract:
    one ``kiln: error:`` line on stderr, nothing on stdout, exit 1."""
    run_group(cmp, argv, "kiln cmp")


@hookimpl
def kiln_register_commands(registry: Any) -> None:
    """Add the ``cmp`` group to the ``kiln`` command line."""
    registry.add(cmp)
