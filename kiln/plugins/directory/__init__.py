"""The plain-directory renderer, with Argo CD's directory-app semantics.

Reads ``*.yaml``, ``*.yml`` and ``*.json`` files in the app directory (sub-directories too with
``recurse``), filtered by ``include``/``exclude`` globs on the path relative to the app directory
(``*`` crosses ``/``; ``{a,b}`` alternatives allowed). Files holding the marker
``+argocd:skip-file-rendering`` are skipped, ``kiln.yaml`` is configuration and never a manifest.
Objects come out in lexical file-path order, then document order.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.core.app import Options
from kiln.core.errors import InputError
from kiln.core.faces import Discovery, Faces, Flag, Parameter
from kiln.core.hookspecs import hookimpl
from kiln.core.manifests import load_json, load_yaml_documents, normalise
from kiln.core.paths import Confiner, read_bytes_capped
from kiln.core.registry import Inputs, RendererBase, RendererRegistry

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.core.context import RenderContext

SKIP_MARKER = b"+argocd:skip-file-rendering"
EXTENSIONS = (".yaml", ".yml", ".json")
NOT_MANIFESTS = frozenset({"kiln.yaml"})
SKIPPED_DIRS = frozenset({".git"})
DEFAULT_MAX_BYTES = 10 * 1024 * 1024



FACES = Faces(
    flags=(
        Flag(("--recurse",), "directory.recurse", "bool",
             help="Directory: read sub-directories too."),
        Flag(("--include",), "directory.include", metavar="GLOB",
             help="Directory: only files matching GLOB."),
        Flag(("--exclude",), "directory.exclude", metavar="GLOB",
             help="Directory: skip files matching GLOB."),
    ),
    parameters=(
        Parameter("directory-recurse", "directory.recurse", "bool", "Recurse",
                  "Read manifests in sub-directories too."),
        Parameter("directory-include", "directory.include", "str", "Include glob",
                  "Only read files matching this glob, e.g. '{a.yaml,b/*.yaml}'."),
        Parameter("directory-exclude", "directory.exclude", "str", "Exclude glob",
                  "Skip files matching this glob."),
    ),
    discovery=Discovery(objects=True),
)
"""The directory renderer's flags and CMP parameters; discovery claims a plain directory only
when one of its manifest files holds a Kubernetes object."""


class DirectoryOptions(Options, frozen=True):
    """The ``directory:`` section of kiln.yaml (Argo CD's ``spec.source.directory``)."""

    recurse: bool = False
    include: str = ""
    exclude: str = ""
    max_combined_bytes: int = DEFAULT_MAX_BYTES


class DirectoryRenderer(RendererBase):
    """Renders a directory of YAML/JSON manifests; the fallback when nothing else matches."""

    name = "directory"
    faces = FACES
    options_type = DirectoryOptions

    def __init__(self) -> None:
        from kiln import __version__

        self.version = __version__

    def detect(self, app: App) -> bool:
        """Always true: a directory with no other markers is a plain directory app."""
        return True

    def inputs(self, app: App, ctx: RenderContext) -> Inputs:
        """List the manifest files (as found, symlinks unresolved: the engine resolves and
        confines them), checked to lie in the source root and within the size cap."""
        return Inputs(files=[app.path / rel for rel, _ in self._files(app)])

    def render(self, app: App, ctx: RenderContext) -> list[dict[str, Any]]:
        """Parse every manifest file in lexical path order."""
        objects: list[dict[str, Any]] = []
        opts: DirectoryOptions = app.options_for(self.name, DirectoryOptions)
        for rel, path in self._files(app):
            data = read_bytes_capped(path, opts.max_combined_bytes)
            if SKIP_MARKER in data:
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError("not UTF-8 text", source=rel) from None
            source = str(app.path / rel)
            if rel.endswith(".json"):
                docs: Any = [load_json(text, source)] if text.strip() else []
            else:
                docs = load_yaml_documents(text, source)
            # YAML documents come out of the loader conformed already; JSON ones are not.
            objects.extend(normalise(docs, source, conform=rel.endswith(".json")))
        return objects

    def _files(self, app: App) -> list[tuple[str, Path]]:
        opts: DirectoryOptions = app.options_for(self.name, DirectoryOptions)
        matcher = _matcher(opts.include, opts.exclude)
        confiner = Confiner(app.root)
        found: list[tuple[str, Path]] = []
        total = 0
        for rel in _walk(app.path, opts.recurse):
            if matcher is not None and not matcher(rel):
                continue
            real = confiner.resolve(os.path.join(app.path, rel))
            try:
                total += os.stat(real).st_size
            except OSError as exc:
                raise InputError(f"cannot read: {exc.strerror}",
                                 source=str(app.path / rel)) from None
            if total > opts.max_combined_bytes:
                raise InputError(
                    f"manifests exceed the combined size limit of {opts.max_combined_bytes} "
                    "bytes (directory.maxCombinedBytes)",
                    source=str(app.path),
                )
            found.append((rel, Path(real)))
        return found


def _walk(top: Path, recurse: bool) -> list[str]:
    """Relative paths of manifest files under ``top``, sorted lexically."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(top):
        rel_dir = os.path.relpath(dirpath, top)
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS] if recurse else []
        for name in filenames:
            if not name.endswith(EXTENSIONS):
                continue
            if rel_dir == "." and name in NOT_MANIFESTS:
                continue
            found.append(name if rel_dir == "." else f"{rel_dir}/{name}")
    return sorted(found)


def _matcher(include: str, exclude: str) -> Any:
    if not include and not exclude:
        return None
    from wcmatch import fnmatch

    flags = fnmatch.BRACE | fnmatch.DOTMATCH

    def matches(rel: str) -> bool:
        if include and not fnmatch.fnmatch(rel, include, flags=flags):
            return False
        return not (exclude and fnmatch.fnmatch(rel, exclude, flags=flags))

    return matches


@hookimpl
def kiln_register_renderers(registry: RendererRegistry) -> None:
    """Register the plain-directory renderer."""
    registry.add(DirectoryRenderer())
