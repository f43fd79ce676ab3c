"""The ``kiln`` console script: answer what needs no framework before importing the CLI.

Every Argo CD refresh spawns one ``kiln generate .``, so start-up is paid per request.
``--version`` and a repeated ``generate .`` (in Argo CD's sidecar) or ``render PATH`` whose
memo still holds (see :mod:`kiln.cmp.fastpath`) are answered with the standard library only;
everything else goes to :func:`kiln.cli.main`. ``KILN_CMP_FASTPATH=0`` turns the memo off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


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
        sys.stdout.write(version_text(os.environ))
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


def version_text(env: os._Environ[str] | dict[str, str]) -> str:
    """``kiln X.Y.Z`` and one line per external tool the registered plugins use (version and
    binary, or why it is missing). Remembered beside the cache while nothing it depends on
    changed (:func:`kiln.core.tools.listing_key`, the binaries' size and mtime), so a repeated
    ``--version`` imports no plugin and runs no tool; else the plugins are loaded and asked."""
    from kiln import __version__
    from kiln.core.paths import default_cache_dir
    from kiln.core.tool_listing import listing_key, remembered_listing

    directory = default_cache_dir(env)
    key = listing_key(env, __version__)
    lines = remembered_listing(directory, key)
    if lines is None:
        lines = _ask_plugins(env, directory, key)
    return "".join(f"{line}\n" for line in [f"kiln {__version__}", *lines])


def _ask_plugins(env: os._Environ[str] | dict[str, str], directory: Path, key: str
                 ) -> list[str]:
    from kiln.core.engine import Engine
    from kiln.core.errors import KilnError
    from kiln.core.tool_listing import listed_tools, listing_lines, remember_listing

    _warnings_to_stderr()
    try:
        # No manifest is read or written: a local store, whatever KILN_CACHE_URL says.
        from kiln.core.cache.fs import FsStore

        engine = Engine(cache_dir=directory, use_cache=False, env=env,
                        store=FsStore(directory))
        entries = listed_tools(engine.plugins, engine.render_context(secrets=False),
                               engine.tool_versions)
    except KilnError as exc:  # e.g. a broken plugin (strict mode): say so, kiln's version stands
        return [f"tools: cannot list them: {exc.one_line()}"]
    remember_listing(directory, key, entries)
    return listing_lines(entries)


def _warnings_to_stderr() -> None:
    """What loading plugins warns about, as the CLI prints it: ``kiln: WARNING: ...``, masked."""
    import logging

    from kiln.core.redact import RedactingFilter, Redactor

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("kiln: %(levelname)s: %(message)s"))
    handler.addFilter(RedactingFilter(Redactor()))
    logger = logging.getLogger("kiln")
    logger.setLevel(logging.WARNING)
    logger.handlers[:] = [handler]
    logger.propagate = False


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
