"""A start-up-free cache hit for a repeated ``kiln generate .`` (Argo CD's sidecar) or
``kiln render PATH``.

Argo CD starts a new ``kiln generate .`` process for every manifest request, and CI loops run
``kiln render`` over and over. On a cache hit most of such a process's time goes to importing
click, msgspec, pluggy and every plugin, before the cache is even looked at. This module
answers a repeated request with the standard library only.

It has no notion of "unchanged" of its own: :func:`record` runs after a successful normal run
and writes a *memo* holding the engine's cache key (:class:`kiln.core.digest.KeyRecipe`) and,
for every part of that key, what the standard library can re-check without the engine:

- the input files: the path the renderer declared, where it resolves (symlinks followed,
  relative to the source root, which it must not leave) and the sha256 of its content;
- the tools: every binary the renderer asked for its version (resolved path, size, mtime),
  and every tool a loaded plugin declares (``Faces.tools``) as installed beside this Python;
- the renderer's code when it comes from a third-party plugin: the sha256 of its loaded
  modules and of its distribution's metadata (its version lives there or in the code);
- kiln's own code and the installed distributions (:func:`code_stamp`), the app's
  options (the request: kiln.yaml, Argo CD's variables and parameters, ``KILN_*`` settings,
  and the values of the build-env variables the options reference);
- the app's location, when the renderer said its output depends on it;
- the shape of the source tree (every path, and every symlink's target), which stands for
  whatever else the renderer derived from the tree (``Inputs.portable``).

The file and shape re-checks (:func:`recheck_inputs`, :func:`recheck_shape`) read the tree
through a :class:`kiln.core.treeview.TreeView`: here :class:`kiln.core.disktree.DiskTree`
over the source root, in the CMP server the request's tree held in memory
(:mod:`kiln.cmp.keymemo`), so both answer from the same checks.

:func:`serve` returns the printed output only when every re-check passes, so the engine's key
would be the same; anything else is a miss and the caller takes the normal path (which refuses
what must be refused, e.g. a symlink now leaving the source root). The memo file carries the
sha256 of its body, and an HMAC-SHA256 with ``$KILN_CACHE_HMAC_KEY`` when the operator set
one: a memo that fails either check is a miss. ``KILN_DEBUG_FASTPATH=1`` writes each decision
to stderr (``kiln: fastpath: miss: <reason>``).

Only renders that needed no secret resolution and no post-render hook, rendered at least one
object, and that every enabled secret resolver leaves alone are memoised: a memo never holds a
secret and never stands for anything the re-checks do not determine. A resolver that declared
``markers`` leaves an output alone when none is in its YAML text, whatever its configuration;
one without markers is asked ``wants()``, and as its "no" may depend on its configuration the
memo is then bound to the whole environment as well (a salted HMAC, see :func:`_env_seal`).
The code of every third-party renderer and resolver involved is stamped.

Wiring: :mod:`kiln.entry` calls :func:`serve_args` before importing click; ``kiln generate``
and ``kiln render`` call :func:`record` after a successful run of a request
:func:`request_for` accepts. ``KILN_CMP_FASTPATH=0`` turns both off.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.cmp.environment import KUBE_VARS, PARAM_PREFIX
from kiln.core.digest import file_digest
from kiln.core.disktree import DiskTree, tree_digest
from kiln.core.errors import InputError
from kiln.core.paths import default_cache_dir
from kiln.core.treeview import TreeTooLarge, TreeView

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.core.engine import Engine, RenderResult

FORMAT = 2
MAGIC = "kiln-memo-2"
MEMO_DIR = "cmp-fast"
REQUEST_VARS = ("ARGOCD_APP_NAME", "ARGOCD_APP_NAMESPACE", "ARGOCD_APP_PARAMETERS",
                "ARGOCD_APP_SOURCE_PATH", *KUBE_VARS, "KILN_DISABLE_PLUGINS",
                "KILN_STRICT_PLUGINS", "PATH")
HMAC_ENV = "KILN_CACHE_HMAC_KEY"
HMAC_FILE_ENV = "KILN_CACHE_HMAC_KEY_FILE"
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 4096
DEBUG_ENV = "KILN_DEBUG_FASTPATH"
NOT_REQUEST_VARS = frozenset({HMAC_ENV, HMAC_FILE_ENV, DEBUG_ENV, "KILN_CMP_FASTPATH"})
"""``KILN_*`` settings that do not shape the render (and a secret that must not name a file)."""
REVISION_VARS = frozenset({"ARGOCD_APP_REVISION", "ARGOCD_APP_REVISION_SHORT",
                           "ARGOCD_APP_REVISION_SHORT_8"})
"""Argo CD's per-commit variables: a new commit of unchanged files is the same render."""


@dataclass(frozen=True)
class Request:
    """A command the memo can answer: the app directory, the command's arguments (the app
    path left out, so an unpacked copy elsewhere is the same request) and the cache dir."""

    app_dir: Path
    command: tuple[str, ...]
    directory: Path


@dataclass(frozen=True)
class Outcome:
    """What the fast path decided: ``ok`` (served or recorded), why, and the text served."""

    ok: bool
    reason: str
    text: str | None = None

    def __bool__(self) -> bool:
        return self.ok


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
        return Request(base, ("generate", "."), default_cache_dir(env))
    if len(args) < 2 or args[0] != "render" or args[1].startswith("-"):
        return None
    directory = default_cache_dir(env)
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
    return Request(Path(os.path.abspath(os.path.join(base, args[1]))), tuple(command),
                   directory)


def serve_args(args: Sequence[str], env: Mapping[str, str],
               cwd: str | Path | None = None) -> str | None:
    """What :func:`serve` answers for the request ``args`` make (None when they make none).
    With ``KILN_DEBUG_FASTPATH=1`` the decision and its reason go to stderr."""
    request = request_for(args, env, cwd)
    if request is None:
        _debug(env, "miss: not a memoisable request")
        return None
    outcome = check(request, env)
    _debug(env, "hit" if outcome.ok else f"miss: {outcome.reason}")
    return outcome.text


def serve(request: Request, env: Mapping[str, str]) -> str | None:
    """The output a previous run printed for this very request, if nothing it depends on
    changed; None otherwise (including on any read problem)."""
    return check(request, env).text


def check(request: Request, env: Mapping[str, str]) -> Outcome:
    """Serve ``request`` from its memo, or say why not (the first re-check that failed)."""
    try:
        path = _memo_path(request, env)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return Outcome(False, "no memo for this request")
        memo, problem = _open(blob, env)
        if memo is None:
            return Outcome(False, problem)
        problem = _recheck(memo, request, env)
        if problem:
            return Outcome(False, problem)
        text = memo["yaml"]
        if not isinstance(text, str):
            return Outcome(False, "memo holds no text")
        return Outcome(True, "every part of the key re-checked", text)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        return Outcome(False, f"memo unreadable ({type(exc).__name__})")


def _recheck(memo: dict[str, Any], request: Request, env: Mapping[str, str]) -> str:
    """The first part of the engine's key that may have changed since ``memo`` ("" if none)."""
    app_dir = request.app_dir
    if memo.get("format") != FORMAT:
        return "memo of another format"
    location = memo["location"]
    if location is not None and location != str(app_dir):
        return f"the render depends on the app's location ({location}), not {app_dir}"
    for name, value in memo["env"].items():
        if env.get(name, "") != value:
            return f"build-env variable {name} changed"
    sealed_env = memo["resolverEnv"]
    if sealed_env is not None and _env_seal(env, sealed_env[0]) != sealed_env:
        return "the environment changed (a secret resolver without markers may act now)"
    problem = recheck_tools(memo["tools"])
    if problem:
        return problem
    for code, digest in memo["code"]:
        if _sha256_or_none(Path(code)) != digest:
            return f"plugin code {code} changed"
    root = os.path.normpath(app_dir / memo["root"])
    tree = DiskTree(root)
    app_in_root = os.path.relpath(app_dir, root)
    problem = recheck_inputs(
        tree, ((declared, os.path.normpath(os.path.join(app_in_root, declared)), real_rel,
                digest) for declared, real_rel, digest in memo["files"]),
        escapes=tree.escapes)
    return problem or recheck_shape(tree, "", memo["tree"])


def recheck_tools(tools: Iterable[Sequence[Any]]) -> str:
    """The first of ``tools`` (``[path, size, mtime_ns]``; size None: it was absent) whose
    ``os.stat`` differs now, as a reason ("" when none does)."""
    for tool, size, mtime in tools:
        try:
            st = os.stat(tool)
        except OSError:
            if size is None:
                continue  # a declared tool that was not installed beside kiln, and still is not
            return f"tool {tool} is gone"
        if (st.st_size, st.st_mtime_ns) != (size, mtime):
            return f"tool {tool} changed"
    return ""


def recheck_inputs(tree: TreeView, inputs: Iterable[Sequence[str]],
                   escapes: Callable[[str], bool] | None = None) -> str:
    """The first input file that may have changed in ``tree``, as a reason ("" when none).

    ``inputs`` are ``(shown, rel, real_rel, sha256)``: the name used in the reason, the path
    the renderer declared (relative to the tree's root), where it resolved and its digest. An
    input resolves as recorded and has the recorded digest, or the check fails. ``escapes``
    (e.g. :meth:`DiskTree.escapes`) tells a file that left the source root from one that is
    merely gone, for the reason's wording only.
    """
    for shown, rel, real_rel, digest in inputs:
        real = tree.realpath(rel)
        if real is None:
            if escapes is None:
                return f"input {shown} is gone or resolves outside the source root"
            if escapes(rel):
                return f"input {shown} resolves outside the source root"
            return f"input {shown} changed"
        if real != real_rel:
            return f"input {shown} now resolves to another file"
        if tree.file_digest(real) != digest:
            return f"input {shown} changed"
    return ""


def recheck_shape(tree: TreeView, rel: str, shape: str) -> str:
    """Why the shape of ``tree``'s subtree at ``rel`` is not ``shape`` ("" when it is)."""
    try:
        if tree.shape_digest(rel) == shape:
            return ""
    except TreeTooLarge:
        return "the source tree grew too large"
    except (OSError, KeyError, ValueError):
        pass  # the subtree is gone or is no directory now
    return "the source tree changed (a path added, removed, renamed or retargeted)"


def record(engine: Engine, app: App, result: RenderResult, text: str,
           env: Mapping[str, str], request: Request) -> Outcome:
    """Memoise a successful run of ``request`` for ``app`` that printed ``text``; the outcome
    is true when the memo was written, else says why not.

    Skipped when the render was uncacheable, resolved secrets, ran post-render hooks, printed
    no object, depends on anything the re-checks cannot see (``Inputs.extra`` not portable),
    or when a secret resolver may act on its output (a marker in the text, or ``wants()`` for
    a resolver without markers: a reference left for lack of a backend must not be served
    once a backend is configured, see :func:`_resolvers_idle`). The memo therefore never
    holds a secret value.
    """
    outcome = _record(engine, app, result, text, env, request)
    _debug(env, "recorded" if outcome.ok else f"not recorded: {outcome.reason}")
    return outcome


def _record(engine: Engine, app: App, result: RenderResult, text: str,
            env: Mapping[str, str], request: Request) -> Outcome:
    recipe = result.recipe
    if recipe is None or recipe.key is None or result.key != recipe.key:
        return Outcome(False, "the render has no cache key (uncacheable or --no-cache)")
    if result.secrets_resolved:
        return Outcome(False, "secrets were resolved")
    if request.directory != engine.cache_dir:
        return Outcome(False, "another cache directory")
    if engine.plugins.has_post_render():
        return Outcome(False, "a post-render hook ran")
    if result.is_empty():
        return Outcome(False, "the render has no object")
    unmarked, problem = _resolvers_idle(engine, app, result)
    if problem:
        return Outcome(False, problem)
    if not recipe.portable:
        return Outcome(False, f"{recipe.renderer}'s key depends on more than the files")
    if os.path.abspath(app.path) != str(request.app_dir):
        return Outcome(False, "the app is not the request's directory")
    try:
        tree = tree_digest(app.root)
    except TreeTooLarge:
        return Outcome(False, "the source tree is too large")
    real_root = os.path.realpath(app.root)
    memo = {
        "format": FORMAT,
        "key": recipe.key,
        "renderer": [recipe.renderer, recipe.renderer_version, dict(recipe.plugin)],
        "root": os.path.relpath(app.root, app.path),
        "tree": tree,
        "files": [[os.path.relpath(f.declared, app.path), os.path.relpath(f.real, real_root),
                   f.sha256] for f in recipe.inputs],
        "tools": [[t.path, t.size, t.mtime_ns] for t in recipe.tools] + _declared_tools(engine),
        "code": _plugin_code(engine, recipe.renderer),
        "location": recipe.location,
        "env": dict(app.identity().get("env", {})),
        "resolverEnv": _env_seal(env, os.urandom(16).hex()) if unmarked else None,
        "yaml": text,
    }
    try:
        sealed = _seal(json.dumps(memo, sort_keys=True).encode(), env)
    except KeyUnusable as exc:
        return Outcome(False, f"{exc}")
    path = _memo_path(request, env)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".memo-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(sealed)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        return Outcome(False, f"cannot write the memo: {exc.strerror}")
    return Outcome(True, "recorded")


def _resolvers_idle(engine: Engine, app: App, result: RenderResult) -> tuple[bool, str]:
    """Whether every enabled secret resolver leaves this output alone, whatever backend is
    configured later: ``(unmarked, problem)``.

    A resolver that declared ``markers`` is idle when none is in the YAML text (its promise
    holds under any configuration). One without markers is asked ``wants()`` now; its "no"
    may depend on its configuration, so ``unmarked`` says the memo must also re-check the
    environment (:func:`_env_seal`). ``problem`` names the first resolver that may act.
    """
    registry = engine.plugins.resolvers
    yaml_text = result.to_yaml()  # markers are promised about the YAML text, whatever -o says
    unmarked = False
    ctx = None
    for resolver in registry.ordered():
        markers = registry.markers_of(resolver)
        if markers is not None:
            if any(m in yaml_text for m in markers):
                return unmarked, f"the output may hold references for {resolver.name}"
            continue
        ctx = ctx or engine.secret_context(app)
        if resolver.wants(result.objects, ctx):
            return unmarked, f"the output holds references for {resolver.name}"
        unmarked = True
    return unmarked, ""


def _env_seal(env: Mapping[str, str], salt: str) -> list[str]:
    """``[salt, HMAC-SHA256(salt, environment)]``: stands for the whole process environment a
    resolver could read (Argo CD's per-commit ``ARGOCD_APP_REVISION*`` and the fast path's own
    switches left out), without writing any of its values (credentials among them)."""
    body = json.dumps(sorted((k, v) for k, v in env.items()
                             if k not in NOT_REQUEST_VARS and k not in REVISION_VARS))
    return [salt, hmac.new(salt.encode(), body.encode(), hashlib.sha256).hexdigest()]


def _plugin_code(engine: Engine, renderer: str) -> list[list[str]]:
    """(path, sha256) of the loaded modules and distribution metadata of the third-party
    plugins behind the renderer and every enabled secret resolver.

    Built-in plugins are kiln's code (see :func:`code_stamp`). For another plugin, every
    loaded module of the top-level packages holding the registered object and the plugin
    object is stamped, with its distribution's ``METADATA`` and ``entry_points.txt``: its
    version lives in one or the other, and neither can change without a stamp changing. A
    resolver's code is stamped because the memo relies on its ``markers`` or ``wants()``.
    """
    import types

    renderers, resolvers = engine.plugins.renderers, engine.plugins.resolvers
    registered: list[tuple[str, object]] = [(renderers.owner(renderer), renderers.get(renderer))]
    registered += [(resolvers.owner(r.name), r) for r in resolvers.ordered()]
    tops: set[str] = set()
    files: set[str] = set()
    for owner, item in registered:
        info = engine.plugins.info(owner)
        if info is not None and info.builtin:
            continue
        for obj in (item, engine.plugins.pm.get_plugin(owner)):
            if obj is None:
                continue
            module = obj.__name__ if isinstance(obj, types.ModuleType) else type(obj).__module__
            tops.add(module.partition(".")[0])
        if info is not None and info.distribution not in ("", "(library)"):
            files.update(_metadata_files(info.distribution))
    for name, loaded in list(sys.modules.items()):
        file = getattr(loaded, "__file__", None)
        if file and name.partition(".")[0] in tops:
            files.add(os.path.realpath(file))
    stamped: list[list[str]] = []
    for file in sorted(files):
        digest = _sha256_or_none(Path(file))
        if digest is not None:
            stamped.append([file, digest])
    return stamped


def _metadata_files(distribution: str) -> list[str]:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import distribution as find

    try:
        dist = find(distribution)
    except PackageNotFoundError:
        return []
    found = []
    for name in ("METADATA", "PKG-INFO", "entry_points.txt"):
        if dist.read_text(name) is None:
            continue
        base = getattr(dist, "_path", None)  # PathDistribution: its .dist-info directory
        if base is not None:
            found.append(os.path.realpath(os.path.join(str(base), name)))
    return found


class KeyUnusable(ValueError):
    """The operator's HMAC key settings are unusable (the engine reports why)."""


def _mac_key(env: Mapping[str, str]) -> bytes | None:
    """The operator's cache HMAC key, read as the cache reads it: ``$KILN_CACHE_HMAC_KEY``, or
    the file ``$KILN_CACHE_HMAC_KEY_FILE`` names (whitespace stripped); None when neither is
    set. KeyUnusable when both are set, the file is unreadable, or the key is too short/long."""
    value, path = env.get(HMAC_ENV, ""), env.get(HMAC_FILE_ENV, "")
    if value and path:
        raise KeyUnusable("both HMAC key variables are set")
    if path:
        try:
            with open(path, "rb") as handle:
                key = handle.read(MAX_KEY_BYTES + 1).strip()
        except OSError:
            raise KeyUnusable("the HMAC key file cannot be read") from None
    elif value:
        key = value.encode()
    else:
        return None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise KeyUnusable("the HMAC key has an unusable length")
    return key


def _seal(body: bytes, env: Mapping[str, str]) -> bytes:
    """The memo file: a header with the body's sha256 and HMAC (``-`` without a key)."""
    digest = hashlib.sha256(body).hexdigest()
    key = _mac_key(env)
    mac = hmac.new(key, body, hashlib.sha256).hexdigest() if key else "-"
    return f"{MAGIC} {digest} {mac}\n".encode() + body


def _open(blob: bytes, env: Mapping[str, str]) -> tuple[dict[str, Any] | None, str]:
    """The memo's body if its integrity holds, else None and why."""
    header, _, body = blob.partition(b"\n")
    parts = header.decode("ascii", "replace").split(" ")
    if len(parts) != 3 or parts[0] != MAGIC:
        return None, "memo of another format"
    if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), parts[1]):
        return None, "memo failed its integrity check (sha256)"
    try:
        key = _mac_key(env)
    except KeyUnusable as exc:
        return None, f"{exc}"
    if key:
        expected = hmac.new(key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts[2]):
            return None, f"memo failed its integrity check (HMAC with {HMAC_ENV})"
    memo = json.loads(body)
    if not isinstance(memo, dict):
        return None, "memo of another format"
    return memo, ""


def request_key(request: Request, env: Mapping[str, str]) -> str:
    """The memo's name: the command, the app directory's name (a default release name), the
    CMP request (settings, PARAM_* forms), every KILN_* setting such as a tool override, PATH,
    plus stamps of kiln's code and tools, so an upgrade in place never serves an old render."""
    variables: dict[str, Any] = {k: env.get(k) for k in REQUEST_VARS}
    variables.update({k: v for k, v in env.items() if k.startswith((PARAM_PREFIX, "KILN_"))
                      and k not in NOT_REQUEST_VARS})
    for name, value in env.items():  # a tool named by KILN_HELM etc. replaced in place
        if name.startswith("KILN_") and name not in NOT_REQUEST_VARS and os.path.isfile(value):
            st = os.stat(value)
            variables[f"{name}@stat"] = [st.st_size, st.st_mtime_ns]
    return hashlib.sha256(json.dumps({
        "format": FORMAT,
        "command": list(request.command),
        "dirName": request.app_dir.name,
        "request": variables,
        "appFile": _sha256_or_none(request.app_dir / "kiln.yaml"),
        "code": code_stamp(),
    }, sort_keys=True).encode()).hexdigest()


def code_stamp() -> list[Any]:
    """(path, size, mtime) of kiln's own modules and the installed distributions (the tools
    plugins declare are stamped in the memo itself, see :func:`_declared_tools`)."""
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
    # Installed distributions (a third-party plugin added or removed): the mtimes of the
    # directories distributions are installed into.
    for entry in sys.path:
        if entry.endswith(("site-packages", "dist-packages")):
            try:
                stamp.append((entry, os.stat(entry).st_mtime_ns))
            except OSError:
                stamp.append((entry, None))
    return stamp


def _declared_tools(engine: Engine) -> list[list[Any]]:
    """[path, size, mtime] of every tool a loaded plugin declares, as installed beside this
    Python ([path, None, None] when it is not there): one replaced or added there is a miss."""
    from kiln.core.faces import all_tools, declared

    bindir = Path(sys.executable).parent
    stamps: list[list[Any]] = []
    for tool in all_tools(declared(engine.plugins)):
        path = str(bindir / tool)
        try:
            st = os.stat(path)
        except OSError:
            stamps.append([path, None, None])
            continue
        stamps.append([path, st.st_size, st.st_mtime_ns])
    return stamps


def _memo_path(request: Request, env: Mapping[str, str]) -> Path:
    return request.directory / MEMO_DIR / f"{request_key(request, env)}.memo"


def _debug(env: Mapping[str, str], message: str) -> None:
    if env.get(DEBUG_ENV, "") not in ("", "0"):
        sys.stderr.write(f"kiln: fastpath: {message}\n")


def _sha256_or_none(path: Path) -> str | None:
    """The file's digest by the engine's own helper; None when it cannot be read."""
    try:
        return file_digest(path)
    except InputError:
        return None


__all__ = [
    "DiskTree",
    "Outcome",
    "Request",
    "TreeTooLarge",
    "check",
    "code_stamp",
    "recheck_inputs",
    "recheck_shape",
    "recheck_tools",
    "record",
    "request_for",
    "request_key",
    "serve",
    "serve_args",
    "tree_digest",
]
