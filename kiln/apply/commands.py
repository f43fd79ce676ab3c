"""The ``kiln apply`` command: render the apps in PATH... and apply them to a cluster.

Registered on the ``kiln`` command line through ``kiln_register_commands`` (as a plugin
would). It takes the same app flags as ``kiln render`` (what kiln and the plugins declare,
``-O``, ``--source-root``) and the cache options. stdout receives the result only, once,
after everything succeeded: one ``Kind/namespace/name action`` line per change and a count
line, or with ``-o json`` the JSON summary. Progress goes to stderr, on a terminal only.
Importing this module imports neither the ``kubernetes`` client nor the engine.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import click

from kiln import cli as _cli
from kiln.core.hookspecs import hookimpl

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration (``90s``, ``5m``, ``1h30m``, ``250ms``) or a bare number
    of seconds; anything else is a UsageError naming ``--timeout``."""
    from kiln.core.errors import UsageError

    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        pos, seconds = 0, 0.0
        for match in _DURATION.finditer(value):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(value) or not value:
            raise UsageError(f"--timeout expects a duration such as 90s, 5m or 1h, got "
                             f"{text[:40]!r}") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise UsageError(f"--timeout expects a duration such as 90s, 5m or 1h, got {text[:40]!r}")
    return seconds


@click.command("apply", cls=_cli._AppCommand)
@click.argument("paths", nargs=-1, required=True, metavar="PATH...",
                type=click.Path(file_okay=False, dir_okay=True, path_type=str))
@_cli._app_options
@click.option("--kubeconfig", metavar="FILE",
              help="kubeconfig file (default $KUBECONFIG, else ~/.kube/config, else the "
              "in-cluster service account).")
@click.option("--context", metavar="NAME", help="kubeconfig context (default: current).")
@click.option("--field-manager", default="kiln", show_default=True, metavar="NAME",
              help="Server-side apply field manager.")
@click.option("--dry-run", "dry_run", type=click.Choice(["none", "server"]), default="none",
              show_default=True, help="server: ask the API server what would change, change "
              "nothing.")
@click.option("--prune", is_flag=True,
              help="Delete members of the ApplySet that left the render.")
@click.option("--force", is_flag=True,
              help="Delete and recreate objects whose immutable fields changed.")
@click.option("--force-conflicts", is_flag=True,
              help="Take over fields other field managers own.")
@click.option("--wait", is_flag=True, help="Wait for every object to be Current (kstatus).")
@click.option("--timeout", default="5m", show_default=True, metavar="DURATION",
              help="How long to wait (90s, 5m, 1h).")
@click.option("--applyset", metavar="[secret|configmap/]NAME",
              help="The ApplySet parent (default kiln-<app name>, a Secret in the app's "
              "namespace, else the context's).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@_cli._common_cache_options
@click.pass_obj
def apply(state: Any, /, paths: tuple[str, ...], kubeconfig: str | None, context: str | None,
          field_manager: str, dry_run: str, prune: bool, force: bool, force_conflicts: bool,
          wait: bool, timeout: str, applyset: str | None, output: str, cache_dir: str | None,
          no_cache: bool, debug: bool, cache_url: str | None, source_root: str | None,
          **flags: Any) -> None:
    """Render the apps in PATH... (secrets resolved, in memory) and server-side apply them,
    staged and drift-first, into one ApplySet; --prune deletes what left the render."""
    from kiln.apply.applier import (
        Applier,
        ApplyOptions,
        parse_applyset,
        resolved_objects,
    )
    from kiln.apply.applyset import default_name
    from kiln.apply.cluster import ClusterOptions, connect
    from kiln.apply.progress import progress_for
    from kiln.core.errors import UsageError

    options = ApplyOptions(field_manager=field_manager, dry_run=dry_run == "server",
                           prune=prune, force=force, force_conflicts=force_conflicts,
                           wait=wait, timeout=parse_duration(timeout))
    if len(paths) > 1 and not applyset:
        raise UsageError("several PATHs form one ApplySet: name it with --applyset")
    engine = _cli._engine(state, cache_dir, no_cache, debug, cache_url)
    settings = _cli._settings(state.app_flags(), **flags)
    apps = [engine.load_app(path, settings, source_root=source_root) for path in paths]
    objects = [obj for app in apps for obj in resolved_objects(engine, app)]
    with connect(ClusterOptions(kubeconfig, context), engine.env) as conn:
        namespace = apps[0].namespace or conn.namespace
        target = parse_applyset(applyset, default_name(apps[0].display_name), namespace)
        applier = Applier(conn, options, applyset=target, redactor=engine.redactor,
                          progress=progress_for(sys.stderr), namespace=namespace)
        report = applier.apply(objects)
    if output == "json":
        _cli._emit(json.dumps(report.to_json(), indent=2) + "\n")
        return
    lines = [f"{ref} {report.actions.get(ref, 'configured')}" for ref in report.applied]
    lines += [f"{ref} pruned" for ref in report.pruned]
    suffix = " (server dry run)" if report.dry_run else ""
    lines.append(f"{len(report.applied)} applied, {len(report.unchanged)} unchanged, "
                 f"{len(report.pruned)} pruned{suffix}")
    _cli._emit("\n".join(lines) + "\n")


@hookimpl
def kiln_register_commands(registry: Any) -> None:
    """Add ``apply`` to the ``kiln`` command line."""
    registry.add(apply)
