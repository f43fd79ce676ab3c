"""The ``kiln`` command: a thin face over :class:`kiln.core.engine.Engine`.

Output contract (what Argo CD's CMP relies on): stdout receives the whole stream at once, only
after every step succeeded. Any error prints one line ``kiln: error: …`` on stderr (plus the
collected details, and a traceback with ``--debug``), nothing on stdout, and exits 1 (2 for
usage errors).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from kiln.core.engine import Engine
    from kiln.core.redact import Redactor

F = TypeVar("F", bound=Callable[..., Any])


class _State:
    """Per-invocation state shared by the error handler (no module-global state)."""

    def __init__(self) -> None:
        self.debug = False
        self.redactor: Redactor | None = None


def _redact(state: _State, text: str) -> str:
    return state.redactor.redact(text) if state.redactor else text


def _setup_logging(debug: bool, engine: Engine) -> None:
    import logging

    from kiln.core.redact import RedactingFilter

    logger = logging.getLogger("kiln")
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("kiln: %(levelname)s: %(message)s"))
    handler.addFilter(RedactingFilter(engine.redactor))
    logger.handlers[:] = [handler]
    logger.propagate = False


def _engine(state: _State, cache_dir: str | None, no_cache: bool, debug: bool,
            cache_url: str | None = None) -> Engine:
    state.debug = debug
    from kiln.core.engine import Engine

    engine = Engine(cache_dir=cache_dir, use_cache=not no_cache, cache_url=cache_url)
    state.redactor = engine.redactor
    _setup_logging(debug, engine)
    return engine


def _parse_option(text: str) -> tuple[list[str], Any]:
    import yaml

    from kiln.core.errors import UsageError

    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--option expects SECTION.KEY=VALUE, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def _settings(**flags: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "type": flags.get("app_type"),
        "name": flags.get("app_name"),
        "namespace": flags.get("namespace"),
    }
    directory = {
        "recurse": True if flags.get("recurse") else None,
        "include": flags.get("include"),
        "exclude": flags.get("exclude"),
    }
    if any(v is not None for v in directory.values()):
        settings["directory"] = {k: v for k, v in directory.items() if v is not None}
    for text in flags.get("options") or ():
        path, value = _parse_option(text)
        target = settings
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return {k: v for k, v in settings.items() if v is not None}


def _common_cache_options(func: F) -> F:
    func = click.option("--cache-dir", envvar="KILN_CACHE_DIR", metavar="DIR",
                        help="Cache directory (default $XDG_CACHE_HOME/kiln).")(func)
    func = click.option("--cache-url", envvar="KILN_CACHE_URL", metavar="URL",
                        help="Keep manifests in Redis (redis://host:port/db) instead.")(func)
    func = click.option("--no-cache", is_flag=True, help="Render without reading or "
                        "writing the cache.")(func)
    func = click.option("--debug", is_flag=True, help="Log every step and show tracebacks.")(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kiln", prog_name="kiln", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """kiln renders Kubernetes manifests (Helm, Kustomize, Jsonnet, plain YAML) and fills in
    secrets last, in memory, behind a content-addressed cache."""
    ctx.ensure_object(_State)


@cli.command()
@click.argument("path", type=click.Path(file_okay=True, dir_okay=True, path_type=str))
@click.option("--type", "app_type", metavar="TYPE",
              help="Renderer: directory, helm, kustomize, jsonnet or a plugin's name.")
@click.option("-n", "--namespace", help="Namespace to render into.")
@click.option("--app-name", help="App name (Helm's release name by default).")
@click.option("--source-root", metavar="DIR", help="Files outside DIR are refused "
              "(default: the git work tree holding PATH, else PATH).")
@click.option("--recurse", is_flag=True, help="Directory apps: read sub-directories too.")
@click.option("--include", metavar="GLOB", help="Directory apps: only files matching GLOB.")
@click.option("--exclude", metavar="GLOB", help="Directory apps: skip files matching GLOB.")
@click.option("-O", "--option", "options", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Set any kiln.yaml option, e.g. -O helm.skipCrds=true (VALUE is YAML).")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True)
@click.option("--no-secrets", is_flag=True, help="Leave secret references unresolved.")
@_common_cache_options
@click.pass_obj
def render(state: _State, /, path: str, output: str, cache_dir: str | None, no_cache: bool,
           debug: bool, cache_url: str | None, source_root: str | None, no_secrets: bool,
           **flags: Any) -> None:
    """Render the app in PATH and print its manifests."""
    engine = _engine(state, cache_dir, no_cache, debug, cache_url)
    app = engine.load_app(path, _settings(**flags), source_root=source_root)
    result = engine.render(app, secrets=not no_secrets)
    _emit(result.to_json() if output == "json" else result.to_yaml())


STREAM_MAX_BYTES = 256 << 20
"""Largest manifest stream ``kiln generate`` reads from stdin or a file."""


def _read_stream(path: str) -> str:
    """Read a manifest stream from stdin (``-``) or a file, capped and decoded as UTF-8."""
    from pathlib import Path

    from kiln.core.errors import InputError
    from kiln.core.paths import read_bytes_capped

    source = "<stdin>" if path == "-" else path
    if path == "-":
        data = sys.stdin.buffer.read(STREAM_MAX_BYTES + 1)
        if len(data) > STREAM_MAX_BYTES:
            raise InputError(f"larger than the {STREAM_MAX_BYTES}-byte limit", source=source)
    else:
        data = read_bytes_capped(Path(path), STREAM_MAX_BYTES)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", source=source) from None


def _cmp_settings(path: str) -> Any:
    """The Argo CD CMP environment (``ARGOCD_APP_*``, parameters, ``KUBE_*``) as app settings,
    via :mod:`kiln.cmp.environment` when that module is installed; None otherwise."""
    import importlib
    import os

    try:
        module = importlib.import_module("kiln.cmp.environment")
    except ModuleNotFoundError:
        return None
    return module.settings_from_environment(os.environ, app_dir=os.path.abspath(path))


def _emit(text: str) -> None:
    """Write the whole output at once (only ever called after everything succeeded)."""
    sys.stdout.write(text)
    sys.stdout.flush()


@cli.command()
@click.argument("path", type=click.Path(file_okay=True, dir_okay=True, allow_dash=True,
                                        path_type=str))
@click.option("--type", "app_type", metavar="TYPE",
              help="Renderer: directory, helm, kustomize, jsonnet or a plugin's name.")
@click.option("-n", "--namespace", help="Namespace to render into.")
@click.option("--app-name", help="App name (Helm's release name by default).")
@click.option("--source-root", metavar="DIR", help="Files outside DIR are refused.")
@click.option("-O", "--option", "options", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Set any kiln.yaml option (VALUE is YAML).")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True)
@click.option("--strip-annotations", is_flag=True,
              help="Drop the avp.kubernetes.io/* annotations from the output.")
@_common_cache_options
@click.pass_obj
def generate(state: _State, /, path: str, output: str, cache_dir: str | None, no_cache: bool,
             debug: bool, source_root: str | None, strip_annotations: bool,
             **flags: Any) -> None:
    """Render the app in PATH and resolve its secrets. With PATH '-' (or a file), only resolve
    the YAML/JSON stream read from stdin (or that file): a drop-in for
    'argocd-vault-plugin generate -'."""
    import os

    from kiln.core import manifests, secrets
    from kiln.core.errors import SecretErrors

    # --cache-url exists once the shared-cache options are merged; pass it through when given.
    cache_url = flags.pop("cache_url", None)
    engine = _engine(state, cache_dir, no_cache, debug,
                     **({"cache_url": cache_url} if cache_url else {}))
    if path == "-" or os.path.isfile(path):
        source = "<stdin>" if path == "-" else path
        objects = engine.resolve(manifests.parse_stream(_read_stream(path), source))
    else:
        settings, build_env, root = _settings(**flags), None, source_root
        cmp = _cmp_settings(path)
        if cmp is not None:  # Argo CD's plugin environment, under the command-line flags
            from kiln.core.app import merge_settings

            settings = merge_settings(cmp.settings, settings)
            build_env, root = cmp.build_env, root or cmp.source_root
        app = engine.load_app(path, settings, source_root=root, build_env=build_env)
        objects = engine.render(app, secrets=True).objects
    leftover = secrets.unresolved(objects)
    if leftover:
        raise SecretErrors(leftover)
    if strip_annotations:
        objects = secrets.strip_avp_annotations(objects)
    _emit(manifests.dump_json(objects) if output == "json"
          else manifests.dump_yaml_stream(objects))


@cli.group()
def cache() -> None:
    """Inspect or empty the manifest cache."""


def _store_options(func: F) -> F:
    func = click.option("--cache-dir", envvar="KILN_CACHE_DIR", metavar="DIR")(func)
    func = click.option("--cache-url", envvar="KILN_CACHE_URL", metavar="URL")(func)
    return func


@cache.command("stats")
@_store_options
@click.pass_obj
def cache_stats(state: _State, cache_dir: str | None, cache_url: str | None) -> None:
    """Show where the cache is and how much it holds."""
    engine = _engine(state, cache_dir, False, False, cache_url)
    stats = engine.store.stats()
    click.echo(f"location: {stats.location}\nentries: {stats.entries}\nbytes: {stats.bytes}\n"
               f"max-bytes: {stats.max_bytes}")


@cache.command("clear")
@_store_options
@click.pass_obj
def cache_clear(state: _State, cache_dir: str | None, cache_url: str | None) -> None:
    """Remove every cached render."""
    engine = _engine(state, cache_dir, False, False, cache_url)
    click.echo(f"removed {engine.store.clear()} entries")


@cache.command("gc")
@_store_options
@click.pass_obj
def cache_gc(state: _State, cache_dir: str | None, cache_url: str | None) -> None:
    """Evict least-recently-used renders until the cache is under its size bound."""
    engine = _engine(state, cache_dir, False, False, cache_url)
    click.echo(f"evicted {engine.store.gc()} entries")


@cli.command()
@click.pass_obj
def plugins(state: _State) -> None:
    """List the loaded plugins, their versions and what each registers."""
    engine = _engine(state, None, True, False)
    lines = []
    for info in engine.plugins.describe():
        origin = "built-in" if info.builtin else info.distribution
        what = ", ".join(info.registers) or "nothing"
        lines.append(f"{info.name} {info.version} ({origin}): {what}")
    for warning in engine.plugins.warnings:
        lines.append(f"warning: {warning}")
    click.echo("\n".join(lines))


def _add_faces() -> None:
    from kiln.cmp.commands import cmp

    cli.add_command(cmp)


_add_faces()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn every KilnError into one line on stderr and a non-zero exit."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:  # answered before importing anything else
        from kiln import __version__

        sys.stdout.write(f"kiln {__version__}\n")
        return
    state = _State()
    try:
        cli.main(args=args, prog_name="kiln", obj=state, standalone_mode=False)
    except click.exceptions.Abort:
        sys.stderr.write("kiln: aborted\n")
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - every failure ends as one redacted line
        _fail(state, exc)


def _fail(state: _State, exc: BaseException) -> None:
    import traceback

    from kiln.core.errors import KilnError

    if state.debug:
        text = "".join(traceback.format_exception(exc))
        sys.stderr.write(_redact(state, text))
    if isinstance(exc, KilnError):
        sys.stderr.write(_redact(state, f"kiln: error: {exc.one_line()}\n"))
        for line in exc.details():
            sys.stderr.write(_redact(state, f"  - {line}\n"))
        sys.exit(exc.exit_code)
    sys.stderr.write(_redact(state, f"kiln: error: internal error: {type(exc).__name__}: "
                                    f"{' '.join(str(exc).split())}\n"))
    if not state.debug:
        sys.stderr.write("kiln: run again with --debug for a traceback\n")
    sys.exit(1)
