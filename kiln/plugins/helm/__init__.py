"""The Helm renderer plugin: exact ``helm template`` output with Argo CD's Helm options.

Modules: :mod:`.options` (the ``helm:`` section), :mod:`.command` (the helm binary, its private
homes and the ``helm template`` command line, shared with other plugins), :mod:`.values`
(value files, parameters), :mod:`.chartfiles` (what a local chart consists of),
:mod:`.remote` (remote chart references, credentials), :mod:`.store` (the shared chart
store, imported only when a remote chart or a dependency build needs it) and :mod:`.renderer`.
"""

from __future__ import annotations

from kiln.core.faces import Entry, Faces, Flag, Parameter, with_faces
from kiln.core.hookspecs import hookimpl
from kiln.core.registry import RendererRegistry
from kiln.plugins.helm.renderer import HelmRenderer

__all__ = ["FACES", "HelmRenderer"]

FACES = Faces(
    flags=(
        Flag(("-f", "--values"), "helm.valueFiles", "list", metavar="FILE", argv_bound=True,
             help="Helm: a value file, relative to PATH (repeatable)."),
        Flag(("--set",), "helm.parameters", "entries", metavar="K=V", entry=Entry(),
             argv_bound=True, help="Helm: --set (repeatable)."),
        Flag(("--set-string",), "helm.parameters", "entries", metavar="K=V",
             entry=Entry(extra=(("forceString", True),)), argv_bound=True,
             help="Helm: --set-string."),
        Flag(("--set-file",), "helm.fileParameters", "entries", metavar="K=FILE",
             entry=Entry("path"), argv_bound=True, help="Helm: --set-file."),
        Flag(("--release-name",), "helm.releaseName", metavar="NAME", argv_bound=True,
             help="Helm: release name."),
        Flag(("--helm-namespace",), "helm.namespace", metavar="NS", argv_bound=True,
             help="Helm: the namespace helm template renders with (default: -n)."),
        Flag(("--skip-crds",), "helm.skipCrds", "bool", help="Helm: leave out crds/."),
        Flag(("--skip-tests",), "helm.skipTests", "bool", help="Helm: leave out test hooks."),
        Flag(("--skip-schema-validation",), "helm.skipSchemaValidation", "bool",
             help="Helm: skip values.schema."),
        Flag(("--repo",), "helm.repoURL", metavar="URL", argv_bound=True,
             help="Helm: chart repository (https:// or oci://)."),
        Flag(("--chart",), "helm.chart", metavar="NAME", argv_bound=True,
             help="Helm: chart name in --repo."),
        Flag(("--chart-version",), "helm.version", metavar="V", argv_bound=True,
             help="Helm: chart version in --repo."),
    ),
    parameters=(
        Parameter("helm-release-name", "helm.releaseName", "str", "Helm release name",
                  "Release name (default: the Argo CD application name).", argv_bound=True),
        Parameter("helm-namespace", "helm.namespace", "str", "Helm namespace",
                  "Namespace helm template renders with (default: the application's "
                  "namespace).", argv_bound=True),
        Parameter("helm-values-files", "helm.valueFiles", "list", "Helm value files",
                  "Value files, relative to the chart directory, applied in order.",
                  argv_bound=True),
        Parameter("helm-ignore-missing-value-files", "helm.ignoreMissingValueFiles", "bool",
                  "Ignore missing value files",
                  "Skip value files that do not exist instead of failing."),
        Parameter("helm-values", "helm.values", "str", "Helm values (YAML)",
                  "Inline values YAML, applied after the value files."),
        Parameter("helm-parameters", "helm.parameters", "entries", "Helm parameters",
                  "Values set like helm --set NAME=VALUE (highest precedence).",
                  entry=Entry(), argv_bound=True),
        Parameter("helm-string-parameters", "helm.parameters", "entries",
                  "Helm string parameters", "Values set like helm --set-string NAME=VALUE.",
                  entry=Entry(extra=(("forceString", True),)), argv_bound=True),
        Parameter("helm-file-parameters", "helm.fileParameters", "entries",
                  "Helm file parameters",
                  "Values read from files like helm --set-file NAME=PATH.",
                  entry=Entry("path"), argv_bound=True),
        Parameter("helm-skip-crds", "helm.skipCrds", "bool", "Skip CRDs",
                  "Do not render the chart's crds/ directory."),
        Parameter("helm-skip-tests", "helm.skipTests", "bool", "Skip tests",
                  "Do not render the chart's test hooks."),
        Parameter("helm-skip-schema-validation", "helm.skipSchemaValidation", "bool",
                  "Skip schema validation", "Do not validate values against values.schema.json."),
        Parameter("helm-pass-credentials", "helm.passCredentials", "bool",
                  "Pass credentials", "Pass repository credentials to every domain."),
    ),
    tools=("helm",),
)
"""The Helm renderer's flags, CMP parameters and tool."""


@hookimpl
def kiln_register_renderers(registry: RendererRegistry) -> None:
    """Register the Helm renderer."""
    registry.add(with_faces(HelmRenderer(), FACES))
