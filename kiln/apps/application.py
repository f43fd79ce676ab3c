"""One Argo CD ``Application`` object as the AppSpecs kiln renders for it.

A single-source Application (``spec.source``) is one AppSpec named ``metadata.name``. A
multi-source Application (``spec.sources``) is one AppSpec per source that is rendered (a
``ref`` source without ``path`` or ``chart`` only provides ``$ref/...`` files): named
``metadata.name`` when one source is rendered, else ``<name>/<source name>`` (the source's
``name``, else its index in ``spec.sources``). ``spec.sourceHydrator.drySource`` is the source
of a hydrated Application.
"""

from __future__ import annotations

from typing import Any

from kiln.apps.fields import Fields
from kiln.apps.model import AppSpec
from kiln.apps.source import Checkout, Mapped, RefSource, map_source, repo_path

API_VERSION = "argoproj.io/v1alpha1"

OBJECT_META = ("name", "namespace", "labels", "annotations", "finalizers", "generateName",
               "uid", "resourceVersion", "generation", "creationTimestamp",
               "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences",
               "managedFields", "selfLink")
"""Kubernetes ObjectMeta fields: none changes what is rendered (name is read)."""

IGNORED_SPEC = ("syncPolicy", "ignoreDifferences", "info", "revisionHistoryLimit")
"""ApplicationSpec fields that only matter to syncing and the UI."""

DEFAULT_PROJECT = "default"


def object_header(doc: dict[str, Any], file: str, kind: str, *, prefix: str = "",
                  context: str | None = None,
                  ignored: tuple[str, ...] = ("apiVersion", "kind", "status")
                  ) -> tuple[str, Fields]:
    """Read the top level of the Argo CD object ``doc`` (an Application or ApplicationSet
    read from ``file``): its ``metadata.name`` (required; the other ObjectMeta fields are
    ignored) and the Fields of its ``spec`` (required). Top-level fields besides metadata,
    spec and ``ignored`` are errors. ``context`` ends every error line (default: `` (<kind>
    <name>)``)."""
    raw_meta = doc.get("metadata")
    raw_name = raw_meta.get("name") if isinstance(raw_meta, dict) else None
    if context is None:
        context = f" ({kind} {raw_name})" if isinstance(raw_name, str) and raw_name else ""
    top = Fields(doc, prefix, file, context)
    top.ignore(*ignored)
    meta = top.mapping("metadata")
    if meta is None:
        raise top.error("metadata", "is required")
    name = meta.string("name", required=True)
    meta.ignore(*OBJECT_META)
    meta.done()
    spec = top.mapping("spec")
    if spec is None:
        raise top.error("spec", "is required")
    top.done()
    return name, spec


def specs_of_application(doc: dict[str, Any], file: str, checkout: Checkout, *,
                         origin: str | None = None, prefix: str = "",
                         context: str | None = None) -> list[AppSpec]:
    """The AppSpecs of the Application ``doc`` read from ``file`` (see the module docstring).

    An ApplicationSet's generated Application passes ``origin`` (naming the set), ``prefix``
    (``spec.template``: where its fields are in the file) and ``context``. Raises ConfigError
    naming ``file`` and the field.
    """
    name, spec = object_header(doc, file, "Application", prefix=prefix, context=context,
                               ignored=("apiVersion", "kind", "status", "operation"))
    origin = origin or f"{file}: Application {name}"
    destination = spec.mapping("destination")
    namespace = ""
    if destination is not None:
        namespace = destination.string("namespace")
        destination.string("server")
        destination.string("name")
        destination.done()
    project = spec.string("project") or DEFAULT_PROJECT
    spec.ignore(*IGNORED_SPEC)
    build_env = {
        "ARGOCD_APP_NAME": name,
        "ARGOCD_APP_NAMESPACE": namespace,
        "ARGOCD_APP_PROJECT_NAME": project,
    }
    sources, hydrate_path = _sources(spec)
    mapped: list[tuple[str, Mapped]] = []
    refs = _refs(sources) if len(sources) > 1 or spec.has("sources") else {}
    multi = spec.has("sources")
    for src in sources:
        one = map_source(src, checkout, refs, build_env, multi=multi)
        if one is not None:
            mapped.append((_label(src, multi), one))
    spec.done()
    if not mapped:
        raise spec.error("sources", "no source has a path or chart: nothing to render")
    out: list[AppSpec] = []
    for label, one in mapped:
        settings: dict[str, Any] = {"name": name}
        if namespace:
            settings["namespace"] = namespace
        settings.update(one.settings)
        env = {**build_env, **one.env}
        spec_name = name if len(mapped) == 1 else f"{name}/{label}"
        where = origin if len(mapped) == 1 else f"{origin} source {label}"
        out.append(AppSpec(name=spec_name, path=one.path, app_settings=settings,
                           env=dict(sorted(env.items())), origin=where,
                           hydrate_path=hydrate_path))
    return out


def _sources(spec: Fields) -> tuple[list[Fields], str | None]:
    """The Application's sources as Fields: ``spec.sources``, ``spec.source`` or the hydrator's
    dry source (exactly one of them); and, for a hydrator, ``syncSource.path`` (where Argo CD
    writes the hydrated manifests), else None."""
    present = [k for k in ("source", "sources", "sourceHydrator") if spec.has(k)]
    if len(present) > 1:
        raise spec.error(None, f"set one of spec.source, spec.sources and "
                         f"spec.sourceHydrator, not {' and '.join(present)}")
    if not present:
        raise spec.error("source", "is required (or spec.sources)")
    if present[0] == "sources":
        items = list(spec.items("sources"))
        if not items:
            raise spec.error("sources", "is empty")
        return items, None
    if present[0] == "source":
        single = spec.mapping("source")
        assert single is not None
        return [single], None
    hydrator = spec.mapping("sourceHydrator")
    assert hydrator is not None
    dry = hydrator.mapping("drySource")
    if dry is None:
        raise hydrator.error("drySource", "is required")
    sync = hydrator.mapping("syncSource")
    if sync is None:
        raise hydrator.error("syncSource", "is required")
    hydrate_path = repo_path(sync.string("path", required=True), sync, "path")
    if hydrate_path == ".":
        raise sync.error("path", "Argo CD refuses to hydrate to the repository root")
    sync.ignore("targetBranch")  # the branch: kiln hydrate's --branch
    sync.done()
    hydrator.ignore("hydrateTo")  # a staging branch before syncSource's
    hydrator.done()
    return [dry], hydrate_path


def _refs(sources: list[Fields]) -> dict[str, RefSource]:
    refs: dict[str, RefSource] = {}
    for src in sources:
        ref = src.data.get("ref")
        if isinstance(ref, str) and ref:
            if ref in refs:
                raise src.error("ref", f"{ref!r} is also the ref of {refs[ref].field}")
            refs[ref] = RefSource(ref, src.path)
    return refs


def _label(src: Fields, multi: bool) -> str:
    """The source's part of a multi-source AppSpec name: its ``name``, else its index."""
    name = src.data.get("name")
    if isinstance(name, str) and name:
        return name
    return src.path.rpartition("[")[2].rstrip("]") if multi else "0"
