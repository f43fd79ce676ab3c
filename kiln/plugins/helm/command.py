"""Where helm lives, the private environment it runs in, and the ``helm template`` command line.

Shared by every plugin that runs Helm (kustomize's ``--enable-helm``, jsonnet's
``helmTemplate``): they import :func:`helm_binary`, :func:`helm_env` and :func:`template_argv`
from here rather than building their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kiln.core.tools import find_tool

HELM_OVERRIDE_ENV = "KILN_HELM"
"""Environment variable naming the helm binary to use instead of the bundled one."""

HELM_HOME_VARS = ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")


def helm_binary(env: Mapping[str, str] | None = None) -> str:
    """Return the helm binary: ``$KILN_HELM``, else the one beside kiln's Python, else PATH."""
    return find_tool("helm", HELM_OVERRIDE_ENV, env)


def helm_homes(tool_dir: Path) -> dict[str, str]:
    """Helm's cache/config/data homes under ``tool_dir`` (created), so ~ is never written."""
    homes = {}
    for var in HELM_HOME_VARS:
        path = tool_dir / "home" / var.split("_")[1].lower()
        path.mkdir(parents=True, exist_ok=True)
        homes[var] = str(path)
    return homes


def helm_env(base: Mapping[str, str], tool_dir: Path) -> dict[str, str]:
    """``base`` with Helm's homes pointed under ``tool_dir``.

    A home the caller set explicitly in ``base`` (``HELM_CONFIG_HOME=...``) is kept: that is the
    "unless configured" escape hatch for users who want Helm's own state.
    """
    env = dict(base)
    for var, path in helm_homes(tool_dir).items():
        if not env.get(var):
            env[var] = path
    return env


def escape_set_value(value: str) -> str:
    """Escape commas in a ``--set`` value the way Argo CD does.

    Helm splits ``--set`` on unescaped commas; a value such as ``{a,b}`` (Helm's list syntax) is
    left whole, any other comma is escaped so it stays part of the value.
    """
    if value.startswith("{") and value.endswith("}"):
        return value
    out = []
    escaped = False
    for ch in value:
        if ch == "," and not escaped:
            out.append("\\,")
        else:
            out.append(ch)
        escaped = ch == "\\" and not escaped
    return "".join(out)


@dataclass
class TemplateArgs:
    """Everything ``helm template`` is told, in the order Helm applies it.

    ``value_files`` are applied in order (later wins), then ``sets`` — (flag, "name=value")
    pairs for ``--set``/``--set-string``/``--set-file`` — override them.
    """

    release: str
    chart: str
    namespace: str | None = None
    value_files: Sequence[str] = ()
    sets: Sequence[tuple[str, str]] = ()
    kube_version: str | None = None
    api_versions: Sequence[str] = ()
    include_crds: bool = True
    skip_tests: bool = False
    skip_schema_validation: bool = False
    pass_credentials: bool = False
    version: str | None = None
    repo: str | None = None
    extra: list[str] = field(default_factory=list)


def template_argv(binary: str, args: TemplateArgs) -> list[str]:
    """Return the ``helm template`` command line for ``args``.

    No value can be read as a flag: every flag value is joined to its flag (``--opt=VALUE``)
    and the release name and chart come last, after ``--``. ``extra`` is kiln's own flags.
    """
    argv = [binary, "template"]
    if args.repo:
        argv.append(f"--repo={args.repo}")
    if args.version:
        argv.append(f"--version={args.version}")
    if args.namespace:
        argv.append(f"--namespace={args.namespace}")
    for path in args.value_files:
        argv.append(f"--values={path}")
    for flag, assignment in args.sets:
        argv.append(f"{flag}={assignment}")
    if args.kube_version:
        argv.append(f"--kube-version={args.kube_version}")
    for api in args.api_versions:
        argv.append(f"--api-versions={api}")
    if args.include_crds:
        argv.append("--include-crds")
    if args.skip_tests:
        argv.append("--skip-tests")
    if args.skip_schema_validation:
        argv.append("--skip-schema-validation")
    if args.pass_credentials:
        argv.append("--pass-credentials")
    argv += args.extra
    argv += ["--", args.release, args.chart]
    return argv
