"""The ``kiln`` command: a thin face over :class:`kiln.core.engine.Engine`.

Output contract (what Argo CD's CMP relies on): stdout receives the whole stream at once, only
after every step succeeded. Any error prints one line ``kiln: error: …`` on stderr (plus the
collected details, and a traceback with ``--debug``), nothing on stdout, and exits 1 (2 for
usage errors, with a pointer to ``--help`` on the same line). SIGTERM or SIGINT stops the tools
(their whole process group) and removes every private tree before kiln exits ``128 + signum``
with ``kiln: error: interrupted by SIGTERM``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from kiln.clikit import State, register_commands, run_group
from kiln.clikit import redact as _redact
from kiln.core.faces import Entry, Flag, entry_item, set_option

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.core.deadline import Deadline
    from kiln.core.engine import Engine, RenderResult
    from kiln.core.redact import RedactingFilter

F = TypeVar("F", bound=Callable[..., Any])

# built-in command groups, registered as a plugin would
_FACES = ("kiln.cmp.commands", "kiln.apply.commands", "kiln.diff.commands",
          "kiln.hydrate.commands")


class _State(State):
    """The CLI's per-invocation state: the error handler's, plus the declared app flags."""

    def __init__(self, args: list[str] | None = None) -> None:
        super().__init__(args)
        self._flags: tuple[Flag, ...] | None = None
        self._options: tuple[click.Option, ...] | None = None

    def app_flags(self) -> tuple[Flag, ...]:
        """Every flag kiln and the plugins the environment loads declare (loaded once)."""
        if self._flags is None:
            import os

            from kiln.core.faces import all_flags, declared, load_plugins

            self._flags = tuple(all_flags(declared(load_plugins(os.environ))))
        return self._flags

    def app_options(self) -> tuple[click.Option, ...]:
        """The click options of :meth:`app_flags` (built once, so parsing and processing see
        the same objects)."""
        if self._options is None:
            self._options = tuple(_click_option(i, f) for i, f in enumerate(self.app_flags()))
        return self._options


def _setup_logging(debug: bool) -> RedactingFilter:
    """Send the ``kiln`` logger to stderr as ``kiln: LEVEL: message``, once per record.

    Set up before the Engine exists, so what plugin loading reports (a broken plugin) gets
    the same prefix; the returned filter is pointed at the engine's redactor afterwards.
    """
    import logging

    from kiln.core.redact import RedactingFilter, Redactor

    logger = logging.getLogger("kiln")
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("kiln: %(levelname)s: %(message)s"))
    redacting = RedactingFilter(Redactor())
    handler.addFilter(redacting)
    logger.handlers[:] = [handler]
    logger.propagate = False
    return redacting


def _engine(state: _State, cache_dir: str | None, no_cache: bool, debug: bool,
            cache_url: str | None = None, max_bytes: str | None = None) -> Engine:
    state.debug = debug
    from kiln.core.engine import Engine

    redacting = _setup_logging(debug)
    engine = Engine(cache_dir=cache_dir, use_cache=not no_cache, cache_url=cache_url,
                    max_cache_bytes=_max_cache_bytes(max_bytes))
    state.redactor = redacting.redactor = engine.redactor
    return engine


def _max_cache_bytes(flag: str | None) -> int:
    """``flag`` (else the running command's ``--cache-max-bytes``), else
    ``$KILN_CACHE_MAX_BYTES``, else 1 GiB."""
    import os

    from kiln.core.cache.fs import DEFAULT_MAX_BYTES
    from kiln.core.cache.size import max_bytes_setting

    ctx = click.get_current_context(silent=True)
    if flag is None and ctx is not None:
        flag = ctx.params.get("cache_max_bytes")
    return max_bytes_setting(flag, os.environ, DEFAULT_MAX_BYTES)


def _parse_option(text: str) -> tuple[list[str], Any]:
    """``SECTION.KEY=VALUE``: the value read as YAML by the rules kiln.yaml is read with
    (go-yaml v2: ``y`` is true, ``12:30`` a string); text that is not YAML stays a string."""
    from kiln.core.errors import InputError, UsageError
    from kiln.core.manifests import load_yaml_documents

    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--option expects SECTION.KEY=VALUE, got {text!r}")
    try:
        docs = list(load_yaml_documents(raw, f"-O {key}")) if raw else [""]
    except InputError:
        docs = [raw]
    return key.split("."), docs[0] if len(docs) == 1 else raw


def _pairs(values: tuple[str, ...] | None, flag: str) -> list[tuple[str, str]]:
    from kiln.core.errors import UsageError

    pairs = []
    for text in values or ():
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} expects KEY=VALUE, got {text!r}")
        pairs.append((key, value))
    return pairs


def _settings(declared: Sequence[Flag], **flags: Any) -> dict[str, Any]:
    """Turn command-line flags into kiln.yaml-shaped settings (flags absent stay absent).

    ``declared`` are the flags kiln and the plugins declare, their values under
    ``flags[_dest(i)]``; ``-O`` options apply last, over them."""
    settings: dict[str, Any] = {}
    for index, flag in enumerate(declared):
        value = _flag_value(flag, flags.get(_dest(index)))
        if value is not None:
            set_option(settings, flag.path, value)
    for text in flags.get("options") or ():
        path, value = _parse_option(text)
        target = settings
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return {k: v for k, v in settings.items() if v is not None}


def _flag_value(flag: Flag, raw: Any) -> Any:
    """The option value a flag's command-line value gives (None: the flag was not given)."""
    name = flag.names[-1]
    if flag.shape == "bool":
        return True if raw else None
    if flag.shape in ("str", "int"):
        return None if raw is None else _integer(flag, raw) if flag.shape == "int" else raw
    if not raw:
        return None
    if flag.shape == "list":
        return list(raw)
    if flag.shape == "map":
        return dict(_pairs(raw, name))
    entry = flag.entry or Entry()
    return [entry_item(entry, k, _integer(flag, v) if entry.integer else v)
            for k, v in _pairs(raw, name)]


def _integer(flag: Flag, text: str) -> int:
    from kiln.core.errors import UsageError

    try:
        return int(text)
    except ValueError:
        what = f"{flag.entry.value} " if flag.entry is not None else ""
        raise UsageError(f"{flag.names[-1]} expects {flag.metavar or 'an integer'}, got "
                         f"{what}{text!r}") from None


def _dest(index: int) -> str:
    """The keyword a declared flag's value reaches the command under."""
    return f"declared_{index}"


def _click_option(index: int, flag: Flag) -> click.Option:
    """The click option for a declared flag."""
    attrs: dict[str, Any] = {"help": flag.help or None}
    if flag.shape == "bool":
        attrs["is_flag"] = True
    if flag.multiple:
        attrs["multiple"] = True
    if flag.choices:
        attrs["type"] = click.Choice(list(flag.choices))
    if flag.metavar:
        attrs["metavar"] = flag.metavar
    return click.Option([*flag.names, _dest(index)], **attrs)


class _AppCommand(click.Command):
    """``render`` and ``generate``: their app flags are the ones kiln and the loaded plugins
    declare (:mod:`kiln.core.faces`), built when the command parses or shows its help."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        """The command's own parameters with the declared flags before ``--source-root``."""
        params = super().get_params(ctx)
        state = ctx.find_object(_State) or _State()
        at = next(i for i, p in enumerate(params) if p.name == "source_root")
        return [*params[:at], *state.app_options(), *params[at:]]


_APP_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--source-root",), {"metavar": "DIR", "help": "Files outside DIR are refused (default: "
                          "the git work tree holding PATH, else PATH)."}),
    (("-O", "--option", "options"), {"multiple": True, "metavar": "SECTION.KEY=VALUE",
                                     "help": "Set any kiln.yaml option, e.g. "
                                     "-O helm.skipCrds=true (VALUE is YAML)."}),
]


def _app_options(func: F) -> F:
    """The app flags kiln adds besides the declared ones, shared by ``render`` and
    ``generate``."""
    for decls, attrs in reversed(_APP_OPTIONS):
        func = click.option(*decls, **attrs)(func)
    return func


def _common_cache_options(func: F) -> F:
    func = click.option("--cache-dir", envvar="KILN_CACHE_DIR", metavar="DIR",
                        help="Cache directory (default $XDG_CACHE_HOME/kiln).")(func)
    func = click.option("--cache-url", envvar="KILN_CACHE_URL", metavar="URL",
                        help="Keep manifests in Redis (redis://host:port/db) instead.")(func)
    func = click.option("--cache-max-bytes", metavar="SIZE",
                        help="Size bound of the cache directory, e.g. 500MiB or 2GiB "
                        "(default $KILN_CACHE_MAX_BYTES, else 1GiB).")(func)
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


@cli.command(cls=_AppCommand)
@click.argument("paths", nargs=-1, metavar="PATH...",
                type=click.Path(file_okay=True, dir_okay=True, path_type=str))
@_app_options
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True)
@click.option("--no-secrets", is_flag=True, help="Leave secret references unresolved.")
@click.option("--applications", metavar="FILE|DIR", help="Render the Argo CD Applications "
              "(and ApplicationSets) of FILE or DIR instead of PATHs: docs/many-apps.md.")
@click.option("--output-dir", metavar="DIR", help="Write DIR/<app path>/manifest.yaml per "
              "app (secrets never resolved) instead of printing.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), metavar="N",
              help="Apps rendered at once (default: the CPU count).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@_common_cache_options
@click.pass_obj
def render(state: _State, /, paths: tuple[str, ...], output: str, cache_dir: str | None,
           no_cache: bool, debug: bool, cache_url: str | None, source_root: str | None,
           no_secrets: bool, applications: str | None, output_dir: str | None,
           jobs: int | None, quiet: bool, **flags: Any) -> None:
    """Render the app in PATH (or several: PATH..., --applications) and print its manifests."""
    from kiln.many.command import is_many

    if not paths and applications is None:
        raise click.UsageError("Missing argument 'PATH...' (or --applications FILE|DIR)")
    if is_many(paths, applications, output_dir):
        _render_many(state, paths, output, cache_dir, no_cache, debug, cache_url, source_root,
                     no_secrets, applications, output_dir, jobs, quiet, flags)
        return
    path = paths[0]
    engine = _engine(state, cache_dir, no_cache, debug, cache_url)
    app = engine.load_app(path, _settings(state.app_flags(), **flags), source_root=source_root)
    result = engine.render(app, secrets=not no_secrets)
    text = result.to_json() if output == "json" else result.to_yaml()
    if not no_secrets:
        _warn_unresolved(result)
    _emit(text)
    _remember_for_fastpath(state, engine, app, result, text)


def _render_many(state: _State, paths: tuple[str, ...], output: str, cache_dir: str | None,
                 no_cache: bool, debug: bool, cache_url: str | None, source_root: str | None,
                 no_secrets: bool, applications: str | None, output_dir: str | None,
                 jobs: int | None, quiet: bool, flags: dict[str, Any]) -> None:
    """``kiln render`` of several apps (:mod:`kiln.many.command`)."""
    from kiln.many.command import Request, check_request, run

    request = Request(paths=paths, applications=applications, output=output,
                      output_dir=output_dir, jobs=jobs, quiet=quiet, secrets=not no_secrets,
                      settings=_settings(state.app_flags(), **flags), source_root=source_root,
                      debug=debug)
    check_request(request)
    engine = _engine(state, cache_dir, no_cache, debug, cache_url)
    done = run(engine, request, lambda text: _redact(state, text))
    if done.stdout is not None:
        _emit(done.stdout)
    if done.exit_code:
        sys.exit(done.exit_code)


def _warn_unresolved(result: RenderResult) -> None:
    """One warning on stderr when references were left because no backend handles them
    (``kiln generate`` fails instead): how many, and the first as written, never a value."""
    from kiln.core import placeholders

    if not placeholders.may_hold_references(result.to_yaml()):
        return
    leftover = result.unresolved()
    if leftover:
        import logging

        first = leftover[0].one_line().partition(": no secrets backend")[0]
        logging.getLogger("kiln").warning(
            "%d secret reference(s) left unresolved: no backend configured (first: %s)",
            len(leftover), first)


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


def _stream_app(engine: Engine, settings: dict[str, Any]) -> App | None:
    """The secrets settings given by flags for a stream read from stdin or a file (there is no
    app directory, so no kiln.yaml is read); None when no flag set any."""
    if not settings.get("secrets"):
        return None
    from pathlib import Path

    from kiln.core.app import build_app

    resolvers = engine.plugins.resolvers
    return build_app(Path.cwd(), {"secrets": settings["secrets"]}, renderer_types={},
                     resolver_types=resolvers.options_types(),
                     source="command line")


def _emit(text: str) -> None:
    """Write the whole output at once (only ever called after everything succeeded)."""
    sys.stdout.write(text)
    sys.stdout.flush()


@cli.command(cls=_AppCommand)
@click.argument("path", type=click.Path(file_okay=True, dir_okay=True, allow_dash=True,
                                        path_type=str))
@_app_options
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True)
@click.option("--strip-annotations", is_flag=True,
              help="Drop the avp.kubernetes.io/* annotations from the output.")
@_common_cache_options
@click.pass_obj
def generate(state: _State, /, path: str, output: str, cache_dir: str | None, no_cache: bool,
             debug: bool, cache_url: str | None, source_root: str | None,
             strip_annotations: bool, **flags: Any) -> None:
    """Render the app in PATH and resolve its secrets. With PATH '-' (or a file), only resolve
    the YAML/JSON stream read from stdin (or that file): a drop-in for
    'argocd-vault-plugin generate -'."""
    import os

    from kiln.core import manifests, placeholders
    from kiln.core.errors import SecretErrors

    engine = _engine(state, cache_dir, no_cache, debug, cache_url)
    deadline = _deadline(state)
    objects: list[dict[str, Any]] | None
    text: str | None = None
    if path == "-" or os.path.isfile(path):
        source = "<stdin>" if path == "-" else path
        deadline.pending = f"reading the manifest stream {source}"
        stream = manifests.parse_stream(_read_stream(path), source)
        result = engine.resolve_result(stream, _stream_app(engine, _settings(state.app_flags(),
                                                                          **flags)),
                                       deadline=deadline)
        leftover = result.unresolved()
        if leftover:
            raise SecretErrors(leftover)
        objects = result.objects
        if strip_annotations:
            objects = placeholders.strip_avp_annotations(objects)
    else:
        from kiln.cmp.generate import generate as generate_app

        # Argo CD's plugin environment (ARGOCD_APP_*, parameters, KUBE_*: application level),
        # under the flags (operator level).
        done = generate_app(engine, path, os.environ, settings=_settings(state.app_flags(),
                                                                         **flags),
                            source_root=source_root, deadline=deadline,
                            strip_annotations=strip_annotations, want_objects=output == "json")
        app, result, text, objects = done.app, done.result, done.text, done.objects
    deadline.close()
    if output == "json":
        _emit(manifests.dump_json(objects or []))
        return
    if text is None:
        _emit(manifests.dump_yaml_stream(objects or []))
        return
    _emit(text)
    _remember_for_fastpath(state, engine, app, result, text)


def _deadline(state: _State) -> Deadline:
    """``kiln generate``'s deadline (KILN_TIMEOUT, default 55 s: before Argo CD's 60 s), with
    the watchdog that ends the process with the one-line error if a step outlives it."""
    import os

    from kiln.core.deadline import DEFAULT_GENERATE_SECONDS, Deadline

    def expire(line: str) -> None:
        sys.stderr.write(f"kiln: error: {_redact(state, line)}\n")
        sys.stderr.flush()
        os._exit(1)

    deadline = Deadline.from_env(os.environ, DEFAULT_GENERATE_SECONDS)
    deadline.watch(expire)
    return deadline


def _remember_for_fastpath(state: _State, engine: Engine, app: App, result: RenderResult,
                           text: str) -> None:
    """Let the next identical command skip start-up (see :mod:`kiln.cmp.fastpath`)."""
    import logging
    import os

    if os.environ.get("KILN_CMP_FASTPATH") == "0" or state.debug:
        return
    from kiln.cmp.fastpath import record, request_for

    request = request_for(state.args, os.environ)
    if request is None:
        return
    try:
        record(engine, app, result, text, os.environ, request)
    except Exception as exc:  # noqa: BLE001 - the output is already out; a memo is optional
        logging.getLogger("kiln.cmp").debug("fast-path memo not written: %s", exc)


@cli.group()
def cache() -> None:
    """Inspect or empty the manifest cache."""


def _store_options(func: F) -> F:
    func = click.option("--cache-dir", envvar="KILN_CACHE_DIR", metavar="DIR")(func)
    func = click.option("--cache-url", envvar="KILN_CACHE_URL", metavar="URL")(func)
    func = click.option("--cache-max-bytes", metavar="SIZE",
                        help="Size bound of the cache directory, e.g. 500MiB or 2GiB "
                        "(default $KILN_CACHE_MAX_BYTES, else 1GiB).")(func)
    return func


@cache.command("stats")
@_store_options
@click.pass_obj
def cache_stats(state: _State, cache_dir: str | None, cache_url: str | None,
                cache_max_bytes: str | None) -> None:
    """Show where the cache is and how much it holds."""
    engine = _engine(state, cache_dir, False, False, cache_url, cache_max_bytes)
    stats = engine.store.stats()
    click.echo(f"location: {stats.location}\nentries: {stats.entries}\nbytes: {stats.bytes}\n"
               f"max-bytes: {stats.max_bytes}")


@cache.command("clear")
@_store_options
@click.pass_obj
def cache_clear(state: _State, cache_dir: str | None, cache_url: str | None,
                cache_max_bytes: str | None) -> None:
    """Remove every cached render."""
    engine = _engine(state, cache_dir, False, False, cache_url, cache_max_bytes)
    click.echo(f"removed {engine.store.clear()} entries")


@cache.command("gc")
@_store_options
@click.pass_obj
def cache_gc(state: _State, cache_dir: str | None, cache_url: str | None,
             cache_max_bytes: str | None) -> None:
    """Evict least-recently-used renders until the cache is under its size bound."""
    engine = _engine(state, cache_dir, False, False, cache_url, cache_max_bytes)
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
    click.echo("\n".join(lines))


register_commands(cli, _FACES)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn every KilnError into one line on stderr and a non-zero exit."""
    run_group(cli, argv, "kiln", make_state=_State)
