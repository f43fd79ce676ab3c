"""Follow a kustomization's local references to list every file a build reads.

Starting at the app's kustomization, :func:`walk` follows ``resources``/``bases``,
``components``, ``patches`` (and the deprecated patch fields), generator ``files``/``envs``,
``crds``, ``configurations``, ``replacements``, ``openapi``, generator/transformer/validator
configs (and the files *their* built-in configs name), and ``helmCharts`` (the whole local chart
directory plus values files), recursively through local directories. Every path is normalised as
Go's ``filepath.Join`` does, then traced hop by hop so a symlink out of the source root is refused;
symlinks inside the root are recorded so the private build tree can reproduce them.

Remote references (URLs, git) are collected with whether they are pinned: a git ``ref``/``version``
that is a full commit id or a version-like tag, or a Helm chart with an exact version.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kiln.core.errors import InputError
from kiln.core.manifests import load_yaml_documents
from kiln.core.paths import confine, read_bytes_capped
from kiln.plugins.kustomize.helmcharts import check_chart

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
MAX_KUSTOMIZATION_BYTES = 4 << 20
DEFAULT_CHART_HOME = "charts"

_REMOTE_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::|^[A-Za-z][A-Za-z0-9+.-]*://")
_REMOTE_HOSTS = ("github.com/", "gitlab.com/", "bitbucket.org/", "git@")
_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_TAG = re.compile(r"^v?\d+(?:\.\d+){0,3}(?:[-+][0-9A-Za-z.-]+)?$")
_EXACT_CHART_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


@dataclass
class Closure:
    """What one build reads: real paths inside ``root``, plus remote references.

    ``files`` are regular files (kustomization files included), ``opaque`` those of them that
    kustomize reads as data rather than as YAML objects (generator files, charts, values),
    ``dirs`` the kustomization roots and chart directories, ``links`` symlinks inside the root
    (location -> link text),
    ``remote`` every remote reference and ``unpinned`` those that make the render uncacheable.
    ``top`` is the app's own kustomization file, ``helm`` tells whether any kustomization
    inflates Helm charts, ``helm_kustomizations`` lists those kustomization files.
    ``secret_sources`` maps the files Flux decrypts before a build (``secretGenerator``
    ``files``/``envs``, ``patches[].path``) to (what, the name their format comes from: the key
    of a ``files`` entry, else the path); ``resource_files`` are the files listed as resources.
    """

    root: Path
    top: Path
    files: set[Path] = field(default_factory=set)
    dirs: set[Path] = field(default_factory=set)
    links: dict[Path, str] = field(default_factory=dict)
    opaque: set[Path] = field(default_factory=set)
    remote: list[str] = field(default_factory=list)
    unpinned: list[str] = field(default_factory=list)
    helm_kustomizations: list[Path] = field(default_factory=list)
    secret_sources: dict[Path, tuple[str, str]] = field(default_factory=dict)
    resource_files: set[Path] = field(default_factory=set)

    @property
    def helm(self) -> bool:
        """True when some kustomization in the closure has ``helmCharts``."""
        return bool(self.helm_kustomizations)


def find_kustomization(directory: Path) -> Path | None:
    """Return the kustomization file in ``directory`` (None when there is none).

    More than one (``kustomization.yaml`` and ``Kustomization``, say) is an InputError, as
    kustomize itself refuses it.
    """
    found = [directory / n for n in KUSTOMIZATION_NAMES if (directory / n).is_file()]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise InputError(f"found more than one kustomization file ({names})",
                         source=str(directory))
    return found[0] if found else None


def load_kustomization(path: Path) -> dict[str, Any]:
    """Parse a kustomization file (one YAML mapping; an empty file is an empty mapping)."""
    text = read_bytes_capped(path, MAX_KUSTOMIZATION_BYTES).decode("utf-8", "replace")
    docs = [d for d in load_yaml_documents(text, str(path)) if d is not None]
    if not docs:
        return {}
    if len(docs) > 1 or not isinstance(docs[0], dict):
        raise InputError("a kustomization must be one YAML mapping", source=str(path))
    return docs[0]


def is_remote(ref: str) -> bool:
    """Tell whether a reference names something remote (a URL or a git repository)."""
    return bool(_REMOTE_SCHEME.match(ref)) or ref.startswith(_REMOTE_HOSTS)


def remote_pinned(ref: str) -> bool:
    """A remote reference is pinned when its ``ref``/``version`` query is a commit id or a tag.

    A tag counts when it looks like a version (``v1.2.3``, ``1.4``); a branch name does not.
    A plain file URL (no ``ref``) is never pinned.
    """
    query = urlsplit(ref.split("::", 1)[-1]).query
    params = parse_qs(query)
    for key in ("ref", "version"):
        for value in params.get(key, []):
            if _COMMIT.match(value) or _TAG.match(value):
                return True
    return False


def walk(app_dir: Path, root: Path, top_data: Mapping[str, Any] | None = None) -> Closure:
    """Return the closure of the kustomization in ``app_dir``, everything confined to ``root``.

    ``top_data`` replaces the parsed app kustomization (the options already applied to it).
    Missing local references, cycles, and paths or symlinks leaving ``root`` raise InputError.
    """
    real_root = Path(os.path.realpath(root))
    real_app = confine(app_dir, real_root, what="app directory")
    top = find_kustomization(real_app)
    if top is None:
        raise InputError("no kustomization.yaml, kustomization.yml or Kustomization",
                         source=str(app_dir))
    walker = _Walker(Closure(real_root, top))
    walker.visit(real_app, [], top_data)
    return walker.closure


class _Walker:
    def __init__(self, closure: Closure) -> None:
        self.closure = closure
        self.done: set[Path] = set()

    # -- paths ---------------------------------------------------------------------------------

    def trace(self, base: Path, ref: str, source: Path) -> Path:
        """Resolve ``ref`` from ``base`` hop by hop; record in-root symlinks, refuse the rest."""
        root = self.closure.root
        if os.path.isabs(ref):
            raise InputError(f"{ref!r}: absolute paths are not supported (a kustomization must "
                             "be relocatable)", source=str(source))
        logical = Path(os.path.normpath(os.path.join(base, ref)))
        try:
            rel = logical.relative_to(root)
        except ValueError:
            raise InputError(f"{ref!r} lies outside the source root {root}",
                             source=str(source)) from None
        current = root
        for part in rel.parts:
            entry = current / part
            if entry.is_symlink():
                target = Path(os.path.realpath(entry))
                if target != root and root not in target.parents:
                    raise InputError(f"{ref!r} resolves outside the source root {root} "
                                     f"(symlink {entry})", source=str(source))
                self.closure.links[entry] = os.path.relpath(target, current)
                current = target
            else:
                current = entry
        return current

    def local(self, base: Path, ref: str, source: Path, what: str) -> Path | None:
        """Resolve a local reference, or record a remote one (returning None)."""
        if not isinstance(ref, str) or not ref:
            raise InputError(f"{what}: expected a non-empty path, got {ref!r}", source=str(source))
        if is_remote(ref) and not os.path.lexists(os.path.join(base, ref)):
            self.closure.remote.append(ref)
            if not remote_pinned(ref):
                self.closure.unpinned.append(f"{what} {ref} is not pinned to a commit or tag")
            return None
        path = self.trace(base, ref, source)
        if not path.exists():
            raise InputError(f"{what} {ref!r}: no such file or directory", source=str(source))
        return path

    def add_file(self, base: Path, ref: str, source: Path, what: str,
                 opaque: bool = False) -> Path | None:
        path = self.local(base, ref, source, what)
        if path is None:
            return None
        if path.is_dir():
            raise InputError(f"{what} {ref!r} is a directory, expected a file", source=str(source))
        self.closure.files.add(path)
        if opaque:
            self.closure.opaque.add(path)
        return path

    def add_tree(self, directory: Path, source: Path) -> None:
        """Add every file under ``directory`` (a chart), confined, symlinks traced."""
        root = self.closure.root
        if directory in self.closure.dirs:
            return
        self.closure.dirs.add(directory)
        for dirpath, dirnames, filenames in os.walk(directory):
            here = Path(dirpath)
            for name in [*dirnames, *filenames]:
                entry = here / name
                if entry.is_symlink():
                    target = confine(entry, root, what="chart file")
                    self.closure.links[entry] = os.path.relpath(target, here)
                    if target.is_dir():
                        self.add_tree(target, source)
                    else:
                        self.closure.files.add(target)
                        self.closure.opaque.add(target)
                elif name in filenames:
                    self.closure.files.add(entry)
                    self.closure.opaque.add(entry)

    # -- kustomizations ------------------------------------------------------------------------

    def visit(self, directory: Path, stack: list[Path],
              data: Mapping[str, Any] | None = None) -> None:
        if directory in stack:
            chain = " -> ".join(str(p) for p in [*stack, directory])
            raise InputError(f"kustomization cycle: {chain}", source=str(directory))
        if directory in self.done:
            return
        kfile = find_kustomization(directory)
        if kfile is None:
            raise InputError("directory has no kustomization.yaml, kustomization.yml or "
                             "Kustomization", source=str(directory))
        kfile = self.trace(directory, kfile.name, kfile)
        self.closure.files.add(kfile)
        self.closure.dirs.add(directory)
        if data is None:
            data = load_kustomization(kfile)
        stack = [*stack, directory]
        self.scan(directory, kfile, data, stack)
        self.done.add(directory)

    def visit_ref(self, base: Path, ref: str, source: Path, what: str, stack: list[Path]) -> None:
        path = self.local(base, ref, source, what)
        if path is None:
            return
        if path.is_dir():
            self.visit(path, stack)
        else:
            self.closure.files.add(path)
            if what == "resource":
                self.closure.resource_files.add(path)

    def scan(self, d: Path, kfile: Path, data: Mapping[str, Any], stack: list[Path]) -> None:
        for key in ("resources", "bases"):
            for ref in _strings(data, key, kfile):
                self.visit_ref(d, ref, kfile, "resource", stack)
        for ref in _strings(data, "components", kfile):
            path = self.local(d, ref, kfile, "component")
            if path is not None:
                if not path.is_dir():
                    raise InputError(f"component {ref!r} is not a directory", source=str(kfile))
                self.visit(path, stack)
        for key in ("crds", "configurations"):
            for ref in _strings(data, key, kfile):
                self.add_file(d, ref, kfile, key[:-1])
        for i, ref in enumerate(_strings(data, "patchesStrategicMerge", kfile)):
            if "\n" not in ref and os.path.lexists(os.path.join(d, ref)):
                self.add_file(d, ref, kfile, "patch")
            else:
                _check_yaml(ref, kfile, f"patchesStrategicMerge[{i}]")
        for key in ("patches", "patchesJson6902", "replacements"):
            for i, entry in enumerate(_entries(data, key, kfile)):
                if entry.get("path"):
                    path = self.add_file(d, entry["path"], kfile, key.rstrip("s"))
                    if key == "patches" and path is not None:
                        self.closure.secret_sources.setdefault(path, ("patch", entry["path"]))
                if isinstance(entry.get("patch"), str):
                    _check_yaml(entry["patch"], kfile, f"{key}[{i}].patch")
        self.generators(d, kfile, data)
        openapi = data.get("openapi")
        if isinstance(openapi, dict) and openapi.get("path"):
            self.add_file(d, openapi["path"], kfile, "openapi", opaque=True)
        for key in ("generators", "transformers", "validators"):
            for ref in _strings(data, key, kfile):
                self.plugin_ref(d, ref, kfile, key, stack)
        raw_globals = data.get("helmGlobals")
        globals_: Mapping[str, Any] = raw_globals if isinstance(raw_globals, dict) else {}
        charts = _entries(data, "helmCharts", kfile)
        for chart in charts:
            self.helm_chart(d, kfile, chart, str(globals_.get("chartHome") or DEFAULT_CHART_HOME))
        for old in _entries(data, "helmChartInflationGenerator", kfile):
            self.helm_chart(d, kfile, {
                "name": old.get("chartName"), "repo": old.get("chartRepoUrl"),
                "version": old.get("chartVersion"), "valuesFile": old.get("values"),
            }, str(old.get("chartHome") or DEFAULT_CHART_HOME))
        if charts or data.get("helmChartInflationGenerator"):
            self.closure.helm_kustomizations.append(kfile)

    def generators(self, d: Path, kfile: Path, data: Mapping[str, Any]) -> None:
        for key in ("configMapGenerator", "secretGenerator"):
            for gen in _entries(data, key, kfile):
                self.generator_files(d, kfile, gen, secret=key == "secretGenerator")

    def generator_files(self, d: Path, kfile: Path, gen: Mapping[str, Any],
                        secret: bool = False) -> None:
        sources = self.closure.secret_sources
        for source in _strings(gen, "files", kfile):
            key, sep, path = source.partition("=")
            found = self.add_file(d, path if sep else source, kfile, "generator file",
                                  opaque=True)
            if secret and found is not None:
                sources.setdefault(found, ("secretGenerator file", key))
        envs = list(_strings(gen, "envs", kfile))
        if isinstance(gen.get("env"), str) and gen["env"]:
            envs.append(gen["env"])
        for env in envs:
            found = self.add_file(d, env, kfile, "generator env file", opaque=True)
            if secret and found is not None:
                sources.setdefault(found, ("secretGenerator env file", env))

    def plugin_ref(self, d: Path, ref: str, kfile: Path, key: str, stack: list[Path]) -> None:
        if "\n" in ref or ref.lstrip().startswith("{"):
            configs = list(load_yaml_documents(ref, f"{kfile} ({key})"))
        else:
            path = self.local(d, ref, kfile, key[:-1])
            if path is None:
                return
            if path.is_dir():
                self.visit(path, stack)
                return
            self.closure.files.add(path)
            text = read_bytes_capped(path, MAX_KUSTOMIZATION_BYTES).decode("utf-8", "replace")
            configs = list(load_yaml_documents(text, str(path)))
        for config in configs:
            if isinstance(config, dict):
                self.plugin_config(d, kfile, config)

    def plugin_config(self, d: Path, kfile: Path, config: Mapping[str, Any]) -> None:
        kind = config.get("kind")
        if kind in ("PatchTransformer", "PatchJson6902Transformer") and config.get("path"):
            self.add_file(d, config["path"], kfile, "patch")
        elif kind == "PatchStrategicMergeTransformer":
            for ref in _strings(config, "paths", kfile):
                self.add_file(d, ref, kfile, "patch")
        elif kind in ("ConfigMapGenerator", "SecretGenerator"):
            self.generator_files(d, kfile, config, secret=kind == "SecretGenerator")
        elif kind == "ReplacementTransformer":
            for entry in _entries(config, "replacements", kfile):
                if entry.get("path"):
                    self.add_file(d, entry["path"], kfile, "replacement")
        elif kind == "HelmChartInflationGenerator":
            self.helm_chart(d, kfile, config, str(config.get("chartHome") or DEFAULT_CHART_HOME))

    def helm_chart(self, d: Path, kfile: Path, chart: Mapping[str, Any], home: str) -> None:
        name = chart.get("name")
        if not isinstance(name, str) or not name:
            raise InputError("helmCharts: a chart needs a name", source=str(kfile))
        check_chart(chart, kfile)
        repo, version = chart.get("repo") or "", str(chart.get("version") or "")
        where = os.path.join(f"{name}-{version}", name) if version and repo else name
        chart_dir = self.trace(d, os.path.join(home, where), kfile)
        if chart_dir.is_dir():
            self.add_tree(chart_dir, kfile)
        elif not repo:
            raise InputError(f"helm chart {name!r}: no repo to pull from and no chart at "
                             f"{os.path.join(home, where)}", source=str(kfile))
        else:
            ref = f"helm chart {name} {version or '(latest)'} from {repo}"
            self.closure.remote.append(ref)
            if not _EXACT_CHART_VERSION.match(version):
                self.closure.unpinned.append(f"{ref} has no exact version")
        for key in ("valuesFile",):
            if isinstance(chart.get(key), str) and chart[key]:
                self.add_file(d, chart[key], kfile, "helm values file", opaque=True)
        for ref in _strings(chart, "additionalValuesFiles", kfile):
            self.add_file(d, ref, kfile, "helm values file", opaque=True)


def _check_yaml(text: str, kfile: Path, where: str) -> None:
    """Parse an inline patch so a malformed one is reported on one line, naming its place
    (kustomize's own message for it spans several lines)."""
    try:
        for _ in load_yaml_documents(text, str(kfile)):
            pass
    except InputError as exc:
        raise InputError(f"{where}: {exc.message}", source=str(kfile)) from None


def _strings(data: Mapping[str, Any], key: str, source: Path) -> Iterable[str]:
    value = data.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"'{key}' must be a list of strings", source=str(source))
    return value


def _entries(data: Mapping[str, Any], key: str, source: Path) -> list[Mapping[str, Any]]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InputError(f"'{key}' must be a list of mappings", source=str(source))
    return value
