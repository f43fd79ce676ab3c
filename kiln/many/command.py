"""``kiln render PATH...`` / ``kiln render --applications FILE|DIR``: the multi-app face.

:func:`run` finds the repository root and the app list (PATH arguments, or the Argo CD
Applications of a file or directory), renders them with :func:`kiln.many.runner.render_many`
under a progress display (stderr, a terminal only), and hands back what goes to stdout:

* ``--output-dir DIR``: one ``DIR/<app path>/manifest.yaml`` per app, secrets never resolved
  (rule 1: no plaintext secret in a file kiln writes); stdout stays empty.
* ``-o json``: one ``{"apps": [...]}`` document, failed apps included with their error.
* otherwise one YAML stream, each app's documents after a ``# Source: <app>`` comment, and
  only when every app rendered (a half stream is worse than none).

Every failed app is one ``kiln: error: <app>: <problem>`` line on stderr (its details
indented below it), the others complete, and the exit code is 1 when any failed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.core.errors import UsageError

if TYPE_CHECKING:
    from kiln.apps.model import AppSpec
    from kiln.core.engine import Engine
    from kiln.many.runner import AppOutcome

GIT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Request:
    """What the command line asked: the apps (``paths`` or ``applications``) and how to
    render and print them."""

    paths: tuple[str, ...]
    applications: str | None
    output: str
    output_dir: str | None
    jobs: int | None
    quiet: bool
    secrets: bool
    settings: Mapping[str, Any]
    source_root: str | None
    debug: bool = False


@dataclass(frozen=True)
class Done:
    """What :func:`run` leaves the CLI: ``stdout`` to print (None: nothing) and the exit
    code."""

    stdout: str | None
    exit_code: int


def is_many(paths: Sequence[str], applications: str | None, output_dir: str | None) -> bool:
    """Whether the command line asks for the multi-app face (else one PATH renders as it
    always did, byte for byte)."""
    return len(paths) != 1 or applications is not None or output_dir is not None


def check_request(request: Request) -> None:
    """Refuse (UsageError) what does not go together."""
    if request.applications is not None and request.paths:
        raise UsageError("give PATH arguments or --applications, not both")
    if request.applications is None and not request.paths:
        raise UsageError("missing argument 'PATH...' (or --applications FILE|DIR)")
    if request.output_dir is not None and request.output == "json":
        raise UsageError("--output-dir writes YAML files: -o json prints to stdout instead, "
                         "give one of them")


def run(engine: Engine, request: Request, redact: Callable[[str], str]) -> Done:
    """Render the apps ``request`` names (see the module doc); ``redact`` hides every secret
    of the run in the lines written to stderr and in the JSON errors."""
    from kiln.many.output import (
        check_output_dir,
        json_document,
        warn_unresolved,
        write_tree,
        yaml_stream,
    )
    from kiln.many.progress import progress_for
    from kiln.many.runner import render_many

    check_request(request)
    root, specs = app_list(request)
    out_dir = Path(request.output_dir) if request.output_dir is not None else None
    # Rule 1: a file kiln writes never holds a resolved secret, so a tree is rendered with
    # references and ciphertext left as they are.
    secrets = request.secrets and out_dir is None
    if out_dir is not None:
        check_output_dir(out_dir, root, specs)
    with progress_for(sys.stderr, total=len(specs), quiet=request.quiet,
                      label="render") as progress:
        outcomes = render_many(engine, root, specs, settings=request.settings,
                               secrets=secrets, jobs=request.jobs, progress=progress)
    failed = [o for o in outcomes if o.error is not None]
    if secrets:
        warn_unresolved(outcomes)
    stdout: str | None = None
    if out_dir is not None:
        write_tree(out_dir, outcomes)
    elif request.output == "json":
        stdout = json_document(outcomes, redact)
    elif not failed:
        stdout = yaml_stream(outcomes)
    report_failures(failed, redact, debug=request.debug)
    return Done(stdout, 1 if failed else 0)


def report_failures(failed: Sequence[AppOutcome], redact: Callable[[str], str], *,
                    debug: bool = False) -> None:
    """One ``kiln: error:`` line per failed app on stderr (its details below it; the
    traceback first with ``debug``), every line redacted."""
    import traceback

    for outcome in failed:
        error = outcome.error
        assert error is not None
        if debug:
            cause = getattr(error, "cause", error)
            sys.stderr.write(redact("".join(traceback.format_exception(cause))))
        sys.stderr.write(redact(f"kiln: error: {error.one_line()}") + "\n")
        for line in error.details():
            sys.stderr.write(redact(f"  - {line}") + "\n")
    sys.stderr.flush()


# -- the app list ------------------------------------------------------------------------------

def app_list(request: Request) -> tuple[Path, list[AppSpec]]:
    """The repository root and the apps to render, in order."""
    if request.applications is not None:
        return applications_list(request.applications, request.source_root)
    return paths_list(request.paths, request.source_root)


def paths_list(paths: Sequence[str], source_root: str | None) -> tuple[Path, list[AppSpec]]:
    """PATH arguments: the root is ``--source-root``, else the git work tree holding every
    PATH (a single PATH outside git is its own root, as ``kiln render PATH`` has it)."""
    from kiln.apps import specs_for_paths
    from kiln.core.app import find_source_root
    from kiln.core.errors import InputError

    for path in paths:
        if not os.path.isdir(path):
            raise InputError("no such directory" if not os.path.exists(path) else
                             "not a directory (an app is a directory)", source=path)
    if source_root is not None:
        root = Path(os.path.abspath(source_root))
    else:
        roots = {find_source_root(Path(os.path.abspath(p))) for p in paths}
        if len(roots) != 1:
            raise UsageError("the PATHs are not in one git work tree (each would be its own "
                             "source root): pass --source-root DIR")
        root = roots.pop()
    return root, list(specs_for_paths(list(paths), repo_root=root))


def applications_list(target: str, source_root: str | None) -> tuple[Path, list[AppSpec]]:
    """The Applications of ``target``: the root is ``--source-root``, else the git top level
    of the target's directory; the URLs of every remote there mean "this checkout"."""
    from kiln.apps import load_applications
    from kiln.core.errors import InputError

    where = Path(os.path.abspath(target))
    if not where.exists():
        raise InputError("no such file or directory", source=target)
    directory = where if where.is_dir() else where.parent
    top = git_toplevel(directory)
    if source_root is not None:
        root = Path(os.path.abspath(source_root))
    elif top is not None:
        root = top
    else:
        raise UsageError(f"--applications {target} is not inside a git work tree: pass "
                         "--source-root DIR (the repository root the Applications' paths "
                         "are relative to)")
    urls = remote_urls(top) if top is not None else []
    return root, list(load_applications(where, repo_root=root, repo_urls=urls))


def _git(directory: Path, *args: str) -> str | None:
    """``git -C directory args...``'s output, stripped; None when git says no."""
    from kiln.core.errors import ToolError
    from kiln.core.tools import run_tool

    try:
        out = run_tool(["git", "-C", str(directory), *args], what=f"git {args[0]}",
                       timeout=GIT_TIMEOUT)
    except ToolError:
        return None
    return out.decode("utf-8", "replace").strip()


def git_toplevel(directory: Path) -> Path | None:
    """The top of the git work tree holding ``directory`` (None: not in one)."""
    top = _git(directory, "rev-parse", "--show-toplevel")
    return Path(top) if top else None


def remote_urls(top: Path) -> list[str]:
    """The URL of every remote of the repository at ``top`` (fetch URLs, in ``git remote``
    order)."""
    names = _git(top, "remote") or ""
    urls = []
    for name in names.split():
        url = _git(top, "remote", "get-url", "--", name)
        if url:
            urls.append(url)
    return urls


__all__ = ["Done", "Request", "app_list", "check_request", "git_toplevel", "is_many",
           "remote_urls", "run"]
