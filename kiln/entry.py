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
    """Run kiln: the fast answers first, else the full CLI."""
    args = sys.argv[1:] if argv is None else argv
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
