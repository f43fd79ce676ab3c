"""Plumbing every kiln command group shares: per-run state, the error contract, registration.

:func:`run_group` runs a click group (``kiln``, or ``kiln cmp`` on its own) so that any failure
ends as one redacted ``kiln: error:`` line on stderr, nothing on stdout and a non-zero exit.
:func:`register_commands` adds the command groups that modules contribute through the
``kiln_register_commands`` hook, the way a plugin adds a command. :mod:`kiln.cli` and the faces
(:mod:`kiln.cmp.commands`) import this module; it imports neither.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from kiln.core.redact import Redactor


class State:
    """Per-invocation state shared by the error handler (no module-global state)."""

    def __init__(self, args: list[str] | None = None) -> None:
        self.args = args or []
        self.debug = False
        self.redactor: Redactor | None = None


def redact(state: State, text: str) -> str:
    """``text`` with every secret of this run and every credential shape masked."""
    from kiln.core.redact import Redactor

    return (state.redactor or Redactor()).redact(text)  # credential shapes even with no secrets


def run_group(group: click.Group, argv: list[str] | None, prog_name: str, *,
              make_state: Callable[[list[str]], State] = State) -> None:
    """Run ``group`` (the CLI, or one face of it run standalone) with kiln's error contract:
    one ``kiln: error:`` line on stderr, nothing on stdout, a non-zero exit (2 for a usage
    error; ``128 + signum`` when SIGTERM/SIGINT stopped it, after every cleanup ran).
    ``make_state`` builds the per-run state commands find as ``ctx.obj``."""
    from kiln.core.interrupt import Interrupted, signals_raise
    from kiln.entry import exit_interrupted

    args = sys.argv[1:] if argv is None else argv
    state = make_state(args)
    # click >= 8.2 raises this for a bare group ('kiln', 'kiln cmp'); older click prints the help
    no_args: type[Exception] | tuple[()] = getattr(click.exceptions, "NoArgsIsHelpError", ())
    try:
        with signals_raise():
            group.main(args=args, prog_name=prog_name, obj=state, standalone_mode=False)
    except Interrupted as exc:
        exit_interrupted(exc)
    except KeyboardInterrupt:  # a SIGINT before the handler was in place
        import signal

        exit_interrupted(Interrupted(signal.SIGINT))
    except click.exceptions.Abort:
        sys.stderr.write("kiln: error: aborted\n")
        sys.exit(1)
    except no_args as exc:
        assert isinstance(exc, click.ClickException)
        exc.show()  # the help is what a bare group asks for
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        _click_failure(exc, _command_path(group, args, prog_name))
    except Exception as exc:  # noqa: BLE001 - every failure ends as one redacted line
        _fail(state, exc)


def _click_failure(exc: click.ClickException, command_path: str) -> None:
    """Click's own errors (unknown option, missing argument, bad value...) as one line, with
    a pointer to the command's ``--help``; exit 2 for usage errors."""
    from kiln.core.redact import mask_credentials

    # The message echoes what was typed (an extra argument, a bad value): treat it as published.
    text = mask_credentials(" ".join(exc.format_message().split()))
    if isinstance(exc, click.UsageError):
        ctx = exc.ctx  # the parser's own errors (an option without its value) carry none
        where = ctx.command_path if ctx is not None else command_path
        text = f"{text.removesuffix('.')} (see '{where} --help')"
    sys.stderr.write(f"kiln: error: {text}\n")
    sys.exit(exc.exit_code)


def _command_path(group: click.Group, args: list[str], prog_name: str) -> str:
    """``prog_name`` and the subcommands ``args`` name, as far as they name existing ones."""
    words = [prog_name]
    command: click.Command = group
    for arg in args:
        sub = command.commands.get(arg) if isinstance(command, click.Group) else None
        if sub is None:
            break
        words.append(arg)
        command = sub
    return " ".join(words)


def _fail(state: State, exc: BaseException) -> None:
    import traceback

    from kiln.core.errors import KilnError

    if state.debug:
        text = "".join(traceback.format_exception(exc))
        sys.stderr.write(redact(state, text))
    if isinstance(exc, KilnError):
        sys.stderr.write(redact(state, f"kiln: error: {exc.one_line()}\n"))
        for line in exc.details():
            sys.stderr.write(redact(state, f"  - {line}\n"))
        sys.exit(exc.exit_code)
    sys.stderr.write(redact(state, f"kiln: error: internal error: {type(exc).__name__}: "
                                    f"{' '.join(str(exc).split())}\n"))
    if not state.debug:
        sys.stderr.write("kiln: run again with --debug for a traceback\n")
    sys.exit(1)


def register_commands(group: click.Group, modules: Iterable[str]) -> None:
    """Let each module (by import name) add its commands to ``group`` through its
    ``kiln_register_commands`` hook implementation; a name ``group`` already has is an error."""
    import importlib

    import pluggy

    from kiln.core import hookspecs

    pm = pluggy.PluginManager("kiln")
    pm.add_hookspecs(hookspecs)
    for name in modules:
        pm.register(importlib.import_module(name), name=name)
    pm.hook.kiln_register_commands(registry=_CommandRegistry(group))


class _CommandRegistry:
    """What a ``kiln_register_commands`` implementation receives: ``add(command)``."""

    def __init__(self, group: click.Group) -> None:
        self._group = group

    def add(self, command: click.Command) -> None:
        """Add ``command`` (a click command or group) under its own name."""
        if command.name in self._group.commands:
            from kiln.core.errors import PluginError

            raise PluginError(f"two command groups are called {command.name!r}")
        self._group.add_command(command)
