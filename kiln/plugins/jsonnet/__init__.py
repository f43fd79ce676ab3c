"""The Jsonnet renderer: go-jsonnet in a resource-limited worker, Argo CD's and Tanka's semantics.

Detection: ``main.jsonnet``, or a single ``*.jsonnet``, at the app root (``jsonnet.main`` names
another entry). Options (``jsonnet:``): Argo CD's ``extVars``, ``tlas`` (``{name, value, code}``,
values env-substituted) and ``libs`` (JPATH directories relative to the source root), plus the
evaluation limits. The JPATH also holds Tanka's ``lib/`` and ``vendor/`` (see
:mod:`kiln.plugins.jsonnet.jpath`). The output may be an object, an array, or any nesting of
them holding Kubernetes objects (see :mod:`kiln.plugins.jsonnet.flatten`). The input digest is
the import closure found by a static scan through the same resolver the evaluation uses.
go-jsonnet is imported only in the worker, so a cache hit never loads it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.core.app import App
from kiln.core.context import ChartRequest
from kiln.core.envsubst import envsubst
from kiln.core.errors import ConfigError, InputError, RenderError, ToolError
from kiln.core.faces import Entry, Faces, Flag, Parameter
from kiln.core.hookspecs import hookimpl
from kiln.core.paths import confine, join_inside
from kiln.core.registry import Inputs, RendererBase, RendererRegistry
from kiln.plugins.jsonnet.jpath import Resolver, build_jpath
from kiln.plugins.jsonnet.options import JsonnetOptions, JsonnetVar

if TYPE_CHECKING:
    from kiln.core.context import RenderContext

log = logging.getLogger("kiln.jsonnet")

MAIN_FILE = "main.jsonnet"
SUFFIX = ".jsonnet"



FACES = Faces(
    flags=(
        Flag(("--jsonnet-ext-str",), "jsonnet.extVars", "entries", metavar="K=V",
             entry=Entry(), argv_bound=True, help="Jsonnet: extVar."),
        Flag(("--jsonnet-ext-code",), "jsonnet.extVars", "entries", metavar="K=CODE",
             entry=Entry(extra=(("code", True),)), argv_bound=True,
             help="Jsonnet: extVar (code)."),
        Flag(("--jsonnet-tla-str",), "jsonnet.tlas", "entries", metavar="K=V", entry=Entry(),
             argv_bound=True, help="Jsonnet: TLA."),
        Flag(("--jsonnet-tla-code",), "jsonnet.tlas", "entries", metavar="K=CODE",
             entry=Entry(extra=(("code", True),)), argv_bound=True,
             help="Jsonnet: TLA (code)."),
        Flag(("--jsonnet-libs",), "jsonnet.libs", "list", metavar="DIR", argv_bound=True,
             help="Jsonnet: a library dir, relative to the source root."),
    ),
    parameters=(
        Parameter("jsonnet-main", "jsonnet.main", "str", "Jsonnet entry file",
                  "The main .jsonnet file (default: detected).", argv_bound=True),
        Parameter("jsonnet-tlas", "jsonnet.tlas", "entries", "Top-level arguments",
                  "Top-level arguments as strings (NAME: VALUE).", entry=Entry(),
                  argv_bound=True),
        Parameter("jsonnet-tlas-code", "jsonnet.tlas", "entries",
                  "Top-level arguments (code)",
                  "Top-level arguments as Jsonnet code (NAME: CODE).",
                  entry=Entry(extra=(("code", True),)), argv_bound=True),
        Parameter("jsonnet-ext-vars", "jsonnet.extVars", "entries", "External variables",
                  "External variables as strings (NAME: VALUE).", entry=Entry(),
                  argv_bound=True),
        Parameter("jsonnet-ext-vars-code", "jsonnet.extVars", "entries",
                  "External variables (code)",
                  "External variables as Jsonnet code (NAME: CODE).",
                  entry=Entry(extra=(("code", True),)), argv_bound=True),
        Parameter("jsonnet-libs", "jsonnet.libs", "list", "Library paths",
                  "Library search paths, relative to the repository root.", argv_bound=True),
    ),
    tools=("jsonnet",),
)
"""The Jsonnet renderer's flags, CMP parameters and tool."""


@dataclass(frozen=True)
class Plan:
    """Everything one evaluation needs, worked out from the app and its options."""

    entry: str
    jpath: tuple[Path, ...]
    ext_vars: dict[str, str]
    ext_codes: dict[str, str]
    tla_vars: dict[str, str]
    tla_codes: dict[str, str]
    options: JsonnetOptions


def entry_file(app: App, opts: JsonnetOptions) -> Path:
    """The entry file: ``jsonnet.main``, else ``main.jsonnet``, else the only ``*.jsonnet``."""
    if opts.main:
        path = join_inside(app.path, opts.main, app.root, what="jsonnet entry file")
        if not path.is_file():
            raise InputError("jsonnet entry file does not exist", source=str(app.path / opts.main))
        return Path(os.path.normpath(app.path / opts.main))
    main_exists = (app.path / MAIN_FILE).is_file()
    candidates = [MAIN_FILE] if main_exists else _jsonnet_files(app.path)
    if not candidates:
        raise InputError(f"no {MAIN_FILE} or other *{SUFFIX} file at the app root",
                         source=str(app.path))
    if len(candidates) > 1:
        raise ConfigError(f"several *{SUFFIX} files ({', '.join(candidates)}): name the entry "
                          "file with jsonnet.main", source=str(app.path))
    path = app.path / candidates[0]
    confine(path, app.root, what="jsonnet entry file")
    return path


def _jsonnet_files(directory: Path) -> list[str]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(n for n in names if n.endswith(SUFFIX) and (directory / n).is_file())


def _split_vars(variables: tuple[JsonnetVar, ...], env: Any, what: str
                ) -> tuple[dict[str, str], dict[str, str]]:
    strings: dict[str, str] = {}
    codes: dict[str, str] = {}
    for var in variables:
        if not var.name:
            raise ConfigError(f"jsonnet.{what}: a variable has no name")
        if var.name in strings or var.name in codes:
            raise ConfigError(f"jsonnet.{what}: {var.name!r} is given twice")
        (codes if var.code else strings)[var.name] = envsubst(var.value, env)
    return strings, codes


def make_plan(app: App) -> Plan:
    """Work out the entry file, JPATH and variables of ``app`` (ConfigError/InputError if bad)."""
    opts: JsonnetOptions = app.options_for("jsonnet", JsonnetOptions)
    entry = entry_file(app, opts)
    jpath = build_jpath(app.path, app.root, opts.libs)
    ext_vars, ext_codes = _split_vars(opts.ext_vars, app.env, "extVars")
    tla_vars, tla_codes = _split_vars(opts.tlas, app.env, "tlas")
    return Plan(str(entry), tuple(jpath), ext_vars, ext_codes, tla_vars, tla_codes, opts)


class JsonnetRenderer(RendererBase):
    """Renders a Jsonnet program with go-jsonnet (PyPI ``gojsonnet``), in a limited worker."""

    name = "jsonnet"
    faces = FACES
    priority = 10
    options_type = JsonnetOptions

    def __init__(self) -> None:
        from kiln import __version__

        self.version = __version__

    def detect(self, app: App) -> bool:
        """True when the app root holds a ``*.jsonnet`` file or ``jsonnet.main`` is set.

        Several ``*.jsonnet`` files and no ``main.jsonnet`` still make a jsonnet app, whose
        render then fails asking for ``jsonnet.main``: falling back to the plain-directory
        renderer would print an empty stream, and Argo CD would prune the whole app.
        """
        if _jsonnet_files(app.path):
            return True
        raw = app.options.get(self.name)
        return raw is not None and bool(app.options_for(self.name, JsonnetOptions).main)

    def current_parameters(self, app: App, ctx: RenderContext) -> dict[str, Any]:
        """``kiln cmp parameters``: the entry file (``main.jsonnet``, else the first)."""
        files = _jsonnet_files(app.path)
        if not files:
            return {}
        return {"jsonnet-main": "main.jsonnet" if "main.jsonnet" in files else files[0]}

    def tool_version(self, ctx: RenderContext) -> str:
        """The installed gojsonnet package's version (read from its metadata, no process)."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"gojsonnet {version('gojsonnet')}"
        except PackageNotFoundError:
            raise ToolError("gojsonnet is not installed (pip install gojsonnet)") from None

    def inputs(self, app: App, ctx: RenderContext) -> Inputs:
        """The import closure of the entry file, plus the substituted variables as identity.

        Files imported by ext-code or TLA code values are inputs too. A program that mentions
        ``helmTemplate`` is not cached: the charts it renders are known only once it runs (each
        nested Helm render is still cached on its own). One that mentions ``thisFile`` is
        keyed by the app's location (``std.thisFile`` is an absolute path, as in Argo CD).
        """
        from kiln.plugins.jsonnet.scan import ImportMemo, import_closure

        plan = make_plan(app)
        try:
            memo = ImportMemo(ctx.tool_dir(self.name))
        except OSError as exc:  # a read-only state directory only costs speed
            log.debug("jsonnet import memo disabled: %s", exc)
            memo = ImportMemo(None)
        snippets = [(f"<extcode:{k}>", v) for k, v in sorted(plan.ext_codes.items())]
        snippets += [(f"<tlacode:{k}>", v) for k, v in sorted(plan.tla_codes.items())]
        closure = import_closure(plan.entry, Resolver(app.root, plan.jpath), memo, snippets)
        extra = {
            "extVars": plan.ext_vars, "extCodes": plan.ext_codes,
            "tlaVars": plan.tla_vars, "tlaCodes": plan.tla_codes,
            "jpath": [os.path.relpath(p, app.path) for p in plan.jpath],
            "missing": sorted({(os.path.relpath(f, app.path), imp)
                               for f, imp in closure.missing}),
        }
        return Inputs(
            files=[Path(f) for f in closure.files],
            extra=extra,
            cacheable=not closure.uses_helm,
            reason="uses helmTemplate: the charts it renders are known only after evaluation"
            if closure.uses_helm else "",
            located=closure.uses_this_file,
            portable=True,
        )

    def render(self, app: App, ctx: RenderContext) -> list[dict[str, Any]]:
        """Evaluate the entry file in a worker and flatten its output into objects."""
        import msgspec

        from kiln.plugins.jsonnet.flatten import flatten
        from kiln.plugins.jsonnet.runner import evaluate

        plan = make_plan(app)
        opts = plan.options
        request = {
            "entry": plan.entry,
            "appDir": str(app.path),
            "root": str(app.root),
            "jpath": [str(p) for p in plan.jpath],
            "extVars": plan.ext_vars, "extCodes": plan.ext_codes,
            "tlaVars": plan.tla_vars, "tlaCodes": plan.tla_codes,
            "maxStack": opts.max_stack,
            "maxMemory": opts.max_memory_bytes,
            "maxOutput": opts.max_output_bytes,
        }
        done = evaluate(request, timeout=opts.timeout or ctx.timeout, source=plan.entry,
                        on_helm=lambda msg: _nested_helm(app, ctx, msg), deadline=ctx.deadline)
        try:
            output = msgspec.json.decode(done["json"])
        except msgspec.DecodeError as exc:
            raise RenderError(f"jsonnet output is not JSON: {exc}", source=plan.entry) from None
        return flatten(output, plan.entry)


def _nested_helm(app: App, ctx: RenderContext, msg: dict[str, Any]) -> list[dict[str, Any]]:
    """Render ``helmTemplate``'s chart through the engine's chart renderer (by capability)."""
    where = "helmTemplate"
    if ctx.render_chart is None:
        raise RenderError("helmTemplate needs kiln's engine (no chart renderer here)")
    namespace = msg.get("namespace") or app.namespace
    kube_version = msg.get("kubeVersion") or app.kube_version
    api_versions = msg.get("apiVersions") or list(app.api_versions)
    if namespace is not None and not isinstance(namespace, str):
        raise ConfigError(f"{where}: conf.namespace must be a string")
    if kube_version is not None and not isinstance(kube_version, str):
        raise ConfigError(f"{where}: conf.kubeVersion must be a string")
    if not isinstance(api_versions, list) or not all(isinstance(v, str) for v in api_versions):
        raise ConfigError(f"{where}: conf.apiVersions must be a list of strings")
    values = msg.get("values")
    if values is not None and not isinstance(values, dict):
        raise ConfigError(f"{where}: conf.values must be an object")
    return ctx.render_chart(ChartRequest(
        parent=app, chart=Path(msg["chart"]), release=msg["name"], namespace=namespace,
        kube_version=kube_version, api_versions=tuple(api_versions), values=values,
        include_crds=bool(msg.get("includeCrds", True)),
        skip_tests=bool(msg.get("skipTests", False))))


@hookimpl
def kiln_register_renderers(registry: RendererRegistry) -> None:
    """Register the Jsonnet renderer."""
    registry.add(JsonnetRenderer())
