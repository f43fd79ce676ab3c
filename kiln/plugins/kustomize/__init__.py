"""The Kustomize renderer, with Argo CD's kustomize options and no writes to the checkout.

Argo CD applies its ``kustomize:`` options by running ``kustomize edit`` inside the checkout, so
it must serialise renders of one repository. kiln instead copies the files the build reads (the
same set it hashes for the cache key) into a private build tree laid out like the source root,
applies the options to the *copy* of the app's kustomization with ``kustomize edit``'s own rules
(:mod:`.edit`), and builds the copy with ``kubectl kustomize`` (or ``$KILN_KUSTOMIZE``).
SOPS-encrypted generator and patch files are decrypted into that copy only, and encrypted
resources have their MAC checked at the source (:mod:`.encrypted`). See docs/kustomize.md.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.core.errors import ConfigError, InputError, ToolError
from kiln.core.faces import Entry, Faces, Flag, Parameter
from kiln.core.hookspecs import hookimpl
from kiln.core.registry import Inputs, RendererBase, RendererRegistry
from kiln.core.tools import find_tool
from kiln.plugins.kustomize.encrypted import Encrypted, find_encrypted, find_sealed_resources
from kiln.plugins.kustomize.options import (
    BuildFlags,
    KustomizeOptions,
    check_app_values,
    parse_build_options,
)
from kiln.plugins.kustomize.walk import KUSTOMIZATION_NAMES, Closure, load_kustomization, walk

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.core.context import RenderContext

log = logging.getLogger("kiln.kustomize")

SECTION = "kustomize"

FACES = Faces(
    flags=(
        Flag(("--nameprefix",), "kustomize.namePrefix", metavar="P", argv_bound=True,
             help="Kustomize: namePrefix."),
        Flag(("--namesuffix",), "kustomize.nameSuffix", metavar="S", argv_bound=True,
             help="Kustomize: nameSuffix."),
        Flag(("--kustomize-image",), "kustomize.images", "list", metavar="IMAGE",
             argv_bound=True, help="Kustomize: an image override (repeatable)."),
        Flag(("--kustomize-replica",), "kustomize.replicas", "entries", metavar="NAME=COUNT",
             entry=Entry("count", integer=True), argv_bound=True,
             help="Kustomize: a replica count (repeatable)."),
        Flag(("--kustomize-common-label",), "kustomize.commonLabels", "map", metavar="K=V",
             argv_bound=True, help="Kustomize: a common label (repeatable)."),
        Flag(("--kustomize-common-annotation",), "kustomize.commonAnnotations", "map",
             metavar="K=V", argv_bound=True, help="Kustomize: a common annotation."),
        Flag(("--kustomize-namespace",), "kustomize.namespace", metavar="NS", argv_bound=True,
             help="Kustomize: namespace."),
        Flag(("--kustomize-build-options",), "kustomize.buildOptions", metavar="OPTS",
             argv_bound=True, help="Kustomize: build options, e.g. --enable-helm."),
    ),
    parameters=(
        Parameter("kustomize-images", "kustomize.images", "list", "Kustomize images",
                  "Image overrides like kustomize edit set image (name=newName:tag).",
                  argv_bound=True),
        Parameter("kustomize-name-prefix", "kustomize.namePrefix", "str", "Name prefix",
                  "Prefix added to every resource name.", argv_bound=True),
        Parameter("kustomize-name-suffix", "kustomize.nameSuffix", "str", "Name suffix",
                  "Suffix added to every resource name.", argv_bound=True),
        Parameter("kustomize-namespace", "kustomize.namespace", "str", "Kustomize namespace",
                  "Namespace set on every namespaced resource.", argv_bound=True),
        Parameter("kustomize-common-labels", "kustomize.commonLabels", "map", "Common labels",
                  "Labels added to every resource.", argv_bound=True),
        Parameter("kustomize-force-common-labels", "kustomize.forceCommonLabels", "bool",
                  "Force common labels", "Overwrite existing labels with the common labels."),
        Parameter("kustomize-common-annotations", "kustomize.commonAnnotations", "map",
                  "Common annotations", "Annotations added to every resource.",
                  argv_bound=True),
        Parameter("kustomize-force-common-annotations", "kustomize.forceCommonAnnotations",
                  "bool", "Force common annotations",
                  "Overwrite existing annotations with the common annotations."),
        Parameter("kustomize-replicas", "kustomize.replicas", "entries", "Replicas",
                  "Replica counts by workload name (NAME: COUNT).",
                  entry=Entry("count", integer=True), argv_bound=True),
        Parameter("kustomize-components", "kustomize.components", "list", "Components",
                  "Kustomize components added to the kustomization.", argv_bound=True),
        Parameter("kustomize-ignore-missing-components", "kustomize.ignoreMissingComponents",
                  "bool", "Ignore missing components", "Skip components that do not exist."),
        Parameter("kustomize-build-options", "kustomize.buildOptions", "str", "Build options",
                  "Extra kustomize build flags, e.g. --enable-helm.", argv_bound=True),
    ),
    tools=("kubectl", "kustomize"),
)
"""The Kustomize renderer's flags, CMP parameters and tools."""


@dataclass(frozen=True)
class _Plan:
    """Everything one render needs: options, flags, the edited app kustomization, the closure,
    the encrypted sources to decrypt and the encrypted resource files to verify."""

    opts: KustomizeOptions
    flags: BuildFlags
    top_data: dict[str, Any] | None
    closure: Closure
    encrypted: tuple[Encrypted, ...]
    sealed: tuple[Path, ...]


class KustomizeRenderer(RendererBase):
    """Renders a kustomization directory; wins over Helm when both markers exist (as Argo CD)."""

    name = "kustomize"
    faces = FACES
    priority = 30
    options_type = KustomizeOptions

    def __init__(self) -> None:
        from kiln import __version__

        self.version = __version__
        # The plan inputs() made, handed to the render() that follows it for the same App object
        # (the engine always calls them in that order), so the closure is walked once and the
        # files copied are the files hashed. Taken, never reused: a lone render() walks afresh.
        self._handoff: tuple[App, _Plan] | None = None

    def detect(self, app: App) -> bool:
        """True when the app holds kustomization.yaml, kustomization.yml or Kustomization."""
        return any((app.path / name).is_file() for name in KUSTOMIZATION_NAMES)

    def current_parameters(self, app: App, ctx: RenderContext) -> dict[str, Any]:
        """``kiln cmp parameters``: the kustomization's images, namespace, name prefix/suffix,
        labels, annotations and components, read from the file (no kustomize run)."""
        from kiln.plugins.kustomize.announce import announce

        return announce(app.path)

    def tool_version(self, ctx: RenderContext) -> str:
        """The kustomize version (``kubectl version --client``), memoised on disk."""
        from kiln.plugins.kustomize.tool import locate

        return locate(ctx.env).version(ctx)

    def inputs(self, app: App, ctx: RenderContext) -> Inputs:
        """Every local file the build reads; remote references unpinned make it uncacheable,
        and so do SOPS-encrypted generator/patch files (the output holds their plaintext).

        Encrypted resource files have their MAC verified here, on every render, cache hit or
        not: kustomize reorders fields, so the check cannot happen after the build.
        """
        from kiln.plugins.kustomize.encrypted import verify_resources

        plan = self._plan(app, ctx.env)
        self._handoff = (app, plan)
        closure = plan.closure
        verified = verify_resources(app, ctx, plan.sealed)
        extra: dict[str, Any] = {
            "edited": plan.top_data,
            "remote": sorted(closure.remote),
            "buildOptions": plan.flags.argv,
            "loadRestrictor": plan.flags.load_restrictor,
        }
        reasons = list(closure.unpinned)
        if plan.encrypted:
            reasons.append("SOPS-encrypted " + ", ".join(sorted({e.what for e in plan.encrypted}))
                           + " decrypted before the build: the output holds plaintext")
        if reasons:
            return Inputs(files=sorted(closure.files), extra=extra, cacheable=False,
                          reason="; ".join(reasons), verified=verified)
        if plan.flags.enable_helm and closure.helm:
            helm = find_tool("helm", "KILN_HELM", ctx.env)
            extra["helm"] = ctx.tool_versions.get(helm, ["version", "--short"], env=ctx.env)
        return Inputs(files=sorted(closure.files), extra=extra, verified=verified)

    def render(self, app: App, ctx: RenderContext) -> str:
        """Build a private copy of the app with the options applied; return kustomize's stream."""
        from kiln.core.interrupt import shielded
        from kiln.plugins.kustomize.encrypted import decrypt_sources, place, private_base
        from kiln.plugins.kustomize.mirror import lay_out, mirror_path
        from kiln.plugins.kustomize.tool import locate

        handoff, self._handoff = self._handoff, None
        plan = handoff[1] if handoff is not None and handoff[0] is app else self._plan(app, ctx.env)
        closure, flags = plan.closure, plan.flags
        tool = locate(ctx.env)
        builds = ctx.tool_dir(self.name) / "builds"
        builds.mkdir(parents=True, exist_ok=True)
        plain = decrypt_sources(app, ctx, plan.encrypted) if plan.encrypted else {}
        # mkdtemp makes the tree 0700; one holding plaintext lives in memory when it can.
        work = Path(tempfile.mkdtemp(prefix="kiln-kustomize-" if plain else "build-",
                                     dir=private_base(builds) if plain else builds))
        src = work / "src"
        try:
            helm_home = None
            extra_argv: list[str] = []
            if flags.enable_helm:
                extra_argv.append("--enable-helm")
                if closure.helm:
                    helm_home = ctx.tool_dir("helm") / "config"
                    extra_argv.append("--helm-command=" + find_tool("helm", "KILN_HELM", ctx.env))
                # As Argo CD: the app's versions come after buildOptions' own, so its kube
                # version wins and the API version lists add up.
                kube_version = app.kube_version or flags.helm_kube_version
                if kube_version:
                    extra_argv.append(f"--helm-kube-version={kube_version}")
                for api in (*flags.helm_api_versions, *app.api_versions):
                    extra_argv.append(f"--helm-api-versions={api}")
            lay_out(closure, src, plan.top_data, helm_home)
            for path, data in plain.items():
                place(mirror_path(closure, src, path), data)
            plain.clear()
            target = mirror_path(closure, src, closure.top.parent)
            argv = tool.build_argv(target)
            if flags.load_restrictor != "LoadRestrictionsRootOnly":
                argv.append(f"--load-restrictor={flags.load_restrictor}")
            argv += [*flags.argv, *extra_argv]
            env = {**ctx.env, "TMPDIR": str(work)}
            out = ctx.run(argv, what=str(app.path), cwd=work, env=env)
        except ToolError as exc:
            _diagnose(closure)
            message = exc.message.replace(str(src), str(closure.root)).replace(str(work), "<tmp>")
            raise ToolError(message, source=str(app.path)) from None
        finally:
            with shielded():  # a SIGTERM must not cut the removal of plaintext in half
                shutil.rmtree(work, ignore_errors=True)
        return out.decode("utf-8", "replace")

    def _plan(self, app: App, operator: Mapping[str, str]) -> _Plan:
        opts: KustomizeOptions = app.options_for(SECTION, KustomizeOptions)
        try:
            flags = parse_build_options(opts.build_options, operator)
            check_app_values(app, opts, flags)
        except ConfigError as exc:
            raise ConfigError(exc.message, source=exc.source or str(app.path)) from None
        top_data: dict[str, Any] | None = None
        if opts.edits_app():
            from kiln.plugins.kustomize.edit import apply_edits

            first = walk_top(app)
            try:
                top_data = apply_edits(load_kustomization(first), opts, app.env, first.parent,
                                       first.name)
            except ConfigError as exc:
                raise ConfigError(exc.message, source=exc.source or str(first)) from None
        closure = walk(app.path, app.root, top_data)
        if closure.helm and not flags.enable_helm:
            raise ConfigError("helmCharts need kustomize.buildOptions '--enable-helm'",
                              source=str(closure.helm_kustomizations[0]))
        return _Plan(opts, flags, top_data, closure, find_encrypted(closure),
                     find_sealed_resources(closure))


def _diagnose(closure: Closure) -> None:
    """After kustomize failed: if an input is malformed YAML, raise that one-line InputError.

    kustomize spreads some parse errors (duplicate keys, say) over several lines with the file
    name far from the cause; kiln's own parser names the file, line and problem. Runs only on
    failure, so a good build never pays for parsing its inputs twice.
    """
    from kiln.core.manifests import load_yaml_documents
    from kiln.core.paths import read_bytes_capped
    from kiln.plugins.kustomize.walk import MAX_KUSTOMIZATION_BYTES

    for path in sorted(closure.files - closure.opaque):
        try:
            text = read_bytes_capped(path, MAX_KUSTOMIZATION_BYTES).decode("utf-8")
        except (InputError, UnicodeDecodeError):
            continue
        for _ in load_yaml_documents(text, str(path)):
            pass


def walk_top(app: App) -> Path:
    """The app's own kustomization file (confined to the source root)."""
    from kiln.core.paths import confine
    from kiln.plugins.kustomize.walk import find_kustomization

    real = confine(app.path, app.root, what="app directory")
    found = find_kustomization(real)
    if found is None:
        raise InputError("no kustomization.yaml, kustomization.yml or Kustomization",
                         source=str(app.path))
    return found


@hookimpl
def kiln_register_renderers(registry: RendererRegistry) -> None:
    """Register the Kustomize renderer."""
    registry.add(KustomizeRenderer())
