"""The ``kiln`` console script: answer what needs no framework before importing the CLI.

Every Argo CD refresh spawns one ``kiln generate .``, so start-up is paid per request.
``--version`` and a repeated ``generate .`` (in Argo CD's sidecar) or ``render PATH`` whose
memo still holds (see :mod:`kiln.cmp.fastpath`) are answered with the standard library only;
everything else goes to :func:`kiln.cli.main`. ``KILN_CMP_FASTPATH=0`` turns the memo off.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    """Run kiln: the fast answers first, else the full CLI. SIGTERM/SIGINT unwind every step
    (see :mod:`kiln.core.interrupt`) and end in :func:`exit_interrupted`."""
    from kiln.core.interrupt import Interrupted, signals_raise

    try:
        with signals_raise():
            _main(sys.argv[1:] if argv is None else argv)
    except Interrupted as exc:
        exit_interrupted(exc)


def _main(args: list[str]) -> None:
    if args == ["--version"]:
        from kiln import __version__

        sys.stdout.write(f"kiln {__version__}\n")
        return
    if args[:1] in (["generate"], ["render"]) and os.environ.get("KILN_CMP_FASTPATH") != "0":
        from kiln.cmp.fastpath import serve_args

        text = serve_args(args, os.environ)
        if text is not None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
    from kiln.cli import main as cli_main

    cli_main(args)


def exit_interrupted(exc: BaseException) -> None:
    """End the process after a signal, once every ``finally`` block has run: one line on
    stderr, nothing more on stdout (what is still buffered is dropped), exit ``128 + signum``.

    ``os._exit`` so that no exit hook waits for a thread still talking to a secret backend.
    """
    code = getattr(exc, "exit_code", 130)
    try:
        sys.stderr.write(f"kiln: error: {exc}\n")
        sys.stderr.flush()
    finally:
        os._exit(code)
