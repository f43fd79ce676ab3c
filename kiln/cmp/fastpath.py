"""A start-up-free cache hit for a repeated ``kiln generate .`` (Argo CD's sidecar) or
``kiln render PATH``.

Argo CD starts a new ``kiln generate .`` process for every manifest request, and CI loops run
``kiln render`` over and over. On a cache hit most of such a process's time goes to importing
click, msgspec, pluggy and every plugin, before the cache is even looked at. This module
answers a repeated request with the standard library only:

- :func:`record` runs after a successful normal run and writes a *memo* under
  ``<cache dir>/cmp-fast/``: the exact output printed, the sha256 of every input file the
  renderer declared, the values of the build-env variables the options reference, and a
  digest of the source tree's *shape* (every file and directory path under the source root).
- :func:`serve` looks the memo up by the request (the command, CMP settings, ``KILN_*``
  settings, kiln code, tool and installed-distribution stamps) and returns the output only
  when the tree shape, every input file and every referenced variable are unchanged; anything
  else returns None and the caller takes the normal path.

Only renders that needed no secret resolution, no post-render hook and no non-file input
(``Inputs.extra``), and whose output holds nothing a secret resolver would look at, are
memoised: a memo never holds a secret and never stands for anything the files do not
determine. Adding or removing any file under the source root invalidates every memo of that
tree (a miss, never a stale hit).

Wiring: :mod:`kiln.entry` calls :func:`serve_args` before importing click; ``kiln generate``
and ``kiln render`` call :func:`record` after a successful run of a request
:func:`request_for` accepts. ``KILN_CMP_FASTPATH=0`` turns both off.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.cmp.environment import KUBE_VARS, PARAM_PREFIX

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.core.engine import Engine, RenderResult

FORMAT = 1
MEMO_DIR = "cmp-fast"
TOOLS = ("helm", "kubectl", "kustomize", "sops", "jsonnet")
REQUEST_VARS = ("ARGOCD_APP_NAME", "ARGOCD_APP_NAMESPACE", "ARGOCD_APP_PARAMETERS",
                "ARGOCD_APP_SOURCE_PATH", *KUBE_VARS, "KILN_DISABLE_PLUGINS",
                "KILN_STRICT_PLUGINS")
SKIPPED_DIRS = frozenset({".git"})
MAX_TREE_ENTRIES = 20_000
"""Largest source tree (files and directories) a memo is kept for."""


def cache_dir(env: Mapping[str, str]) -> Path:
    """The cache directory, as :func:`kiln.core.engine.default_cache_dir` decides it."""
    if env.get("KILN_CACHE_DIR"):
        return Path(env["KILN_CACHE_DIR"])
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kiln"


@dataclass(frozen=True)
class Request:
    """A command the memo can answer: the app directory, the command's arguments (the app
    path left out, so an unpacked copy elsewhere is the same request) and the cache dir."""

    app_dir: Path
    command: tuple[str, ...]
    directory: Path


def request_for(args: Sequence[str], env: Mapping[str, str],
                cwd: str | Path | None = None) -> Request | None:
    """The memoisable request ``args`` make, or None when they are not one.

    Two shapes qualify: ``generate .`` inside Argo CD's sidecar (``ARGOCD_APP_NAME`` set), and
    ``render PATH`` with only ``--cache-dir DIR`` and ``-o/--output FORMAT`` besides. Anything
    else (other flags, ``--debug``, ``--no-cache``) takes the normal path every time.
    """
    base = Path(os.path.abspath(cwd if cwd is not None else os.getcwd()))
    if list(args) == ["generate", "."]:
        if not env.get("ARGOCD_APP_NAME"):
            return None
        return Request(base, ("generate", "."), cache_dir(env))
    if len(args) < 2 or args[0] != "render" or args[1].startswith("-"):
        return None
    directory = cache_dir(env)
    command = ["render"]
    rest = list(args[2:])
    while rest:
        flag = rest.pop(0)
        name, eq, inline = flag.partition("=")
        if name not in ("--cache-dir", "-o", "--output"):
            return None
        value = inline if eq else (rest.pop(0) if rest else None)
        if value is None:
            return None
        if name == "--cache-dir":
            directory = Path(os.path.join(base, value))
        else:
            command += ["--output", value]
    return Request(Path(os.path.join(base, args[1])), tuple(command), directory)


def serve_args(args: Sequence[str], env: Mapping[str, str],
               cwd: str | Path | None = None) -> str | None:
    """What :func:`serve` answers for the request ``args`` make (None when they make none)."""
    request = request_for(args, env, cwd)
    return serve(request, env) if request is not None else None


def serve(request: Request, env: Mapping[str, str]) -> str | None:
    """The output a previous run printed for this very request, if nothing it depends on
    changed; None otherwise (including on any read problem)."""
    try:
        app_path = request.app_dir
        memo_path = _memo_path(request, env)
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
        if memo.get("format") != FORMAT:
            return None
        if memo["tree"] != tree_digest(app_path / memo["root"]):
            return None
        for rel, digest in memo["files"].items():
            if _sha256(app_path / rel) != digest:
                return None
        for name, value in memo["env"].items():
            if env.get(name, "") != value:
                return None
        text = memo["yaml"]
        return text if isinstance(text, str) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record(engine: Engine, app: App, result: RenderResult, text: str,
           env: Mapping[str, str], request: Request) -> bool:
    """Memoise a successful run of ``request`` for ``app`` that printed ``text``; True if
    written.

    Skipped (False) when the render was uncacheable, resolved secrets, ran post-render hooks,
    depends on anything but files, or when its output holds anything a secret resolver looks
    at (its ``markers``: a reference left for lack of a backend must not be served once a
    backend is configured). The memo therefore never holds a secret value.
    """
    if result.key is None or result.secrets_resolved or request.directory != engine.cache_dir:
        return False
    if engine.plugins.has_post_render():
        return False
    for resolver in engine.plugins.resolvers.ordered():
        markers = getattr(resolver, "markers", None)
        if markers is None or any(m in text for m in markers):
            return False
    renderer = engine.renderer_for(app)
    inputs = renderer.inputs(app, engine.render_context())
    if not inputs.cacheable or inputs.extra:
        return False
    try:
        tree = tree_digest(app.root)
    except TreeTooLarge:
        return False
    real_app = os.path.realpath(app.path)
    files = {os.path.relpath(os.path.realpath(path), real_app): _sha256(Path(path))
             for path in inputs.files}
    memo = {
        "format": FORMAT,
        "root": os.path.relpath(os.path.realpath(app.root), real_app),
        "tree": tree,
        "files": dict(sorted(files.items())),
        "env": dict(app.identity().get("env", {})),
        "yaml": text,
    }
    path = _memo_path(request, env)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".memo-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(memo, handle)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return False
    return True


class TreeTooLarge(ValueError):
    """The source tree has more paths than the memo is worth walking for."""


def tree_digest(root: Path, limit: int = MAX_TREE_ENTRIES) -> str:
    """sha256 over every file and directory path under ``root`` (``.git`` skipped): changes
    when anything is added, removed or renamed, not when contents change. A tree of more than
    ``limit`` paths raises TreeTooLarge (walking it would cost more than the memo saves)."""
    entries: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        rel = os.path.relpath(dirpath, root)
        entries.extend(f"d {rel}/{d}" for d in dirnames)
        entries.extend(f"f {rel}/{f}" for f in filenames)
        if len(entries) > limit:
            raise TreeTooLarge(f"more than {limit} paths under {root}")
    return hashlib.sha256("\n".join(sorted(entries)).encode("utf-8", "surrogateescape")
                          ).hexdigest()


def request_key(request: Request, env: Mapping[str, str]) -> str:
    """The memo's name: the command, the CMP request (settings, PARAM_* forms), every KILN_*
    setting such as a tool override, plus stamps of kiln's code and tools, so an upgrade in
    place never serves an old render."""
    variables: dict[str, Any] = {k: env.get(k) for k in REQUEST_VARS}
    variables.update({k: v for k, v in env.items() if k.startswith((PARAM_PREFIX, "KILN_"))})
    for name, value in env.items():  # a tool named by KILN_HELM etc. replaced in place
        if name.startswith("KILN_") and os.path.isfile(value):
            st = os.stat(value)
            variables[f"{name}@stat"] = [st.st_size, st.st_mtime_ns]
    return hashlib.sha256(json.dumps({
        "format": FORMAT,
        "command": list(request.command),
        "request": variables,
        "appFile": _sha256_or_none(request.app_dir / "kiln.yaml"),
        "code": code_stamp(),
    }, sort_keys=True).encode()).hexdigest()


def code_stamp() -> list[Any]:
    """(path, size, mtime) of kiln's own modules and of the tools beside this Python."""
    import kiln

    stamp: list[Any] = [sys.version, getattr(kiln, "__version__", "")]
    package = Path(kiln.__file__).parent
    for dirpath, dirnames, filenames in os.walk(package):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                st = os.stat(os.path.join(dirpath, name))
                stamp.append((os.path.relpath(os.path.join(dirpath, name), package),
                              st.st_size, st.st_mtime_ns))
    bindir = Path(sys.executable).parent
    for tool in TOOLS:
        try:
            st = os.stat(bindir / tool)
        except OSError:
            continue
        stamp.append((tool, st.st_size, st.st_mtime_ns))
    # Installed distributions (a third-party plugin added or removed): the mtimes of the
    # directories distributions are installed into.
    for entry in sys.path:
        if entry.endswith(("site-packages", "dist-packages")):
            try:
                stamp.append((entry, os.stat(entry).st_mtime_ns))
            except OSError:
                stamp.append((entry, None))
    return stamp


def _memo_path(request: Request, env: Mapping[str, str]) -> Path:
    return request.directory / MEMO_DIR / f"{request_key(request, env)}.json"


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _sha256_or_none(path: Path) -> str | None:
    try:
        return _sha256(path)
    except OSError:
        return None


__all__ = ["Request", "code_stamp", "record", "request_for", "request_key", "serve", "serve_args",
           "tree_digest"]
