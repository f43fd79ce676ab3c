"""The Helm renderer: ``helm template`` on a local chart or a chart from the store."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.core.argv import no_control, path_value
from kiln.core.digest import input_digest
from kiln.core.envsubst import envsubst
from kiln.core.errors import ConfigError, InputError
from kiln.core.paths import confine, read_bytes_capped
from kiln.core.registry import Inputs, RendererBase
from kiln.core.trust import OPERATOR, Allowlist, Guard, Level, Origin, check, origin_of
from kiln.plugins.helm import checks
from kiln.plugins.helm.chartfiles import CHART_FILE, chart_files, read_chart_file
from kiln.plugins.helm.command import TemplateArgs, helm_binary, helm_env, template_argv
from kiln.plugins.helm.options import HelmOptions
from kiln.plugins.helm.remote import Credentials, RemoteChart, StoredChart
from kiln.plugins.helm.values import materialise, resolve_values

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.core.context import ChartRequest, RenderContext
    from kiln.plugins.helm.store import ChartStore

log = logging.getLogger("kiln.helm")

LOCK_FILE = "Chart.lock"
ARCHIVE_NAME = re.compile(r"^(.+?)-v?\d+\.\d+\.\d+[^/]*\.tgz$")
"""``<chart name>-<semver>.tgz``, the name ``helm package`` gives an archive."""
USERNAME_ENV = "KILN_HELM_USERNAME"
PASSWORD_ENV = "KILN_HELM_PASSWORD"


@dataclass(frozen=True)
class _Source:
    """A local chart directory, or a remote chart."""

    local: Path | None = None
    remote: RemoteChart | None = None

    def describe(self) -> str:
        if self.remote is not None:
            return f"chart {self.remote.describe()}"
        return f"chart {self.local}"


class _Scratch:
    """A private temporary directory, created only if something needs it."""

    def __init__(self) -> None:
        self._path: Path | None = None

    def path(self) -> Path:
        """The directory (mode 0700), created on first call."""
        if self._path is None:
            import tempfile

            self._path = Path(tempfile.mkdtemp(prefix="kiln-helm-"))
        return self._path

    def cleanup(self) -> None:
        """Delete the directory if it was created."""
        if self._path is not None:
            import shutil

            shutil.rmtree(self._path, ignore_errors=True)
            self._path = None


def _source(app: App, opts: HelmOptions) -> _Source:
    chart = envsubst(opts.chart, app.env)
    repo = envsubst(opts.repo_url, app.env)
    version = envsubst(opts.version, app.env)
    if repo or chart.startswith("oci://"):
        if not chart:
            raise ConfigError("helm.repoURL is set but helm.chart is not", source=str(app.path))
        remote = RemoteChart(repo, chart, version)
        checks.remote(remote, str(app.path))
        return _Source(remote=remote)
    if chart:
        no_control(chart, "helm.chart", source=str(app.path))
        path = confine(app.path / chart, app.root, what="chart directory")
        if not path.is_dir():
            raise InputError("chart directory not found", source=str(app.path / chart))
        return _Source(local=path)
    return _Source(local=app.path)


def _release(app: App, opts: HelmOptions) -> str:
    """Helm's release name: ``releaseName``, else the app name, else the directory name."""
    return checks.release(app, opts)


def _check(app: App, opts: HelmOptions) -> None:
    """Check every app-level value that becomes a helm flag (ConfigError naming it)."""
    checks.release(app, opts)
    checks.namespace(app, opts)
    checks.capabilities(app)
    checks.credential_references(opts, str(app.path))


def _credentials(opts: HelmOptions, env: Any, where: str, targets: Sequence[str],
                 repo_origin: Origin = OPERATOR) -> Credentials:
    """The repository credentials for a download from ``targets``, chosen at ``repo_origin``.

    Values that come from kiln's environment (``$KILN_HELM_USERNAME``/``$KILN_HELM_PASSWORD``,
    or ``${KILN_HELM_*}`` in ``helm.username``/``helm.password``) are the operator's. When the
    repository was chosen below operator level they are sent only under the operator's
    ``$KILN_HELM_CREDENTIALS_URLS`` (left out for other URLs); without that list, only when the
    operator allows ``helm.repoURL`` (TrustError otherwise).
    """
    checks.credential_references(opts, where)
    username = envsubst(opts.username, env) or env.get(USERNAME_ENV, "")
    password = envsubst(opts.password, env) or env.get(PASSWORD_ENV, "")
    checks.credentials(username, password, where)
    operator_creds = (checks.from_environment(opts.username, username)
                      or checks.from_environment(opts.password, password))
    if (operator_creds and repo_origin.level is not Level.OPERATOR
            and not env.get(checks.CREDENTIALS_URLS_ENV, "").strip()):
        check("helm.repoURL", Guard.ROUTE, repo_origin, Allowlist.from_env(env))
    if operator_creds and not checks.operator_credentials_allowed(targets, env):
        if checks.from_environment(opts.username, username):
            username = ""
        if checks.from_environment(opts.password, password):
            password = ""
        log.info("%s: kiln's helm credentials are not sent to %s (not under %s)", where,
                 ", ".join(targets), checks.CREDENTIALS_URLS_ENV)
    return Credentials(
        username=username,
        password=password,
        pass_credentials=opts.pass_credentials,
        plain_http=opts.plain_http,
        insecure_skip_tls_verify=opts.insecure_skip_tls_verify,
    )


def _local_dependencies(chart_dir: Path, chart: dict[str, Any], root: Path) -> list[Path]:
    """The directories of ``file://`` dependencies, each confined to the source root."""
    found = []
    for dep in chart.get("dependencies") or []:
        repo = str(dep.get("repository") or "")
        if not repo.startswith("file://"):
            continue
        target = confine(chart_dir / repo[len("file://"):], root, what="chart dependency")
        if not (target / CHART_FILE).is_file():
            raise InputError(f"dependency {dep['name']!r}: no chart at {repo}",
                             source=str(chart_dir / CHART_FILE))
        found.append(target)
    return found


def _present_dependencies(chart_dir: Path) -> set[str]:
    """Names of the charts vendored under ``charts/`` (directories and archives)."""
    charts = chart_dir / "charts"
    present: set[str] = set()
    if charts.is_dir():
        for entry in charts.iterdir():
            if entry.is_dir() and (entry / CHART_FILE).is_file():
                try:
                    present.add(str(read_chart_file(entry)["name"]))
                except InputError:
                    continue
            elif entry.name.endswith(".tgz"):
                match = ARCHIVE_NAME.match(entry.name)
                if match:
                    present.add(match.group(1))
    return present


class HelmRenderer(RendererBase):
    """Renders Helm charts exactly as ``helm template`` does (Argo CD's Helm options)."""

    name = "helm"
    priority = 20
    options_type = HelmOptions

    def __init__(self) -> None:
        from kiln import __version__

        self.version = __version__
        # An unpinned remote chart is fetched by inputs() and handed to the render that follows.
        self._unpinned: dict[RemoteChart, StoredChart] = {}

    # -- capability: renders charts for other renderers ---------------------------------------

    def chart_app(self, request: ChartRequest) -> App:
        """The app that renders ``request``'s chart directory as ``helm template`` would, with
        its release name, namespace, values (as ``valuesObject``), CRDs and tests as asked."""
        from kiln.core.app import App

        helm: dict[str, Any] = {"releaseName": request.release,
                                "skipCrds": not request.include_crds,
                                "skipTests": request.skip_tests}
        if request.values is not None:
            helm["valuesObject"] = dict(request.values)
        parent = request.parent
        return App(path=request.chart, type=self.name, name=request.release,
                   namespace=request.namespace, source_root=parent.root,
                   kube_version=request.kube_version, api_versions=request.api_versions,
                   options={self.name: helm}, env=parent.env)

    # -- protocol -------------------------------------------------------------------------------

    def detect(self, app: App) -> bool:
        """A ``Chart.yaml`` at the app root, or a ``helm.chart``/``helm.repoURL`` option."""
        if (app.path / CHART_FILE).is_file():
            return True
        raw = app.options.get(self.name)
        if raw is None:
            return False
        opts: HelmOptions = app.options_for(self.name, HelmOptions)
        return bool(opts.chart or opts.repo_url)

    def current_parameters(self, app: App, ctx: RenderContext) -> dict[str, Any]:
        """``kiln cmp parameters``: the release name, the chart directory's value files and
        its values as ``--set`` paths, read from the files (no helm run)."""
        from kiln.plugins.helm.announce import announce

        opts = app.options_for(self.name, HelmOptions)  # shown as set, checked when rendering
        return announce(app.path, envsubst(opts.release_name, app.env) or app.display_name)

    def tool_version(self, ctx: RenderContext) -> str:
        """``helm version --short``, memoised on disk (a cache hit never starts helm)."""
        binary = helm_binary(ctx.env)
        return ctx.tool_versions.get(binary, ["version", "--short"],
                                     env=helm_env(ctx.env, ctx.tool_dir("helm")))

    def inputs(self, app: App, ctx: RenderContext) -> Inputs:
        """The chart's files (``.helmignore`` honoured) and value files; a remote chart by digest.

        A pinned remote chart is looked up in the chart store (downloaded on first use only);
        an unpinned one makes the render uncacheable.
        """
        opts: HelmOptions = app.options_for(self.name, HelmOptions)
        _check(app, opts)
        source = _source(app, opts)
        values = resolve_values(app, opts)
        files: list[Path] = list(values.inputs)
        extra: dict[str, Any] = {}
        if not opts.release_name and not app.name:
            # The release name then comes from the directory name, which the app identity
            # lacks (a set releaseName or app name is part of the identity already).
            extra["release"] = _release(app, opts)
        if source.local is not None:
            chart = read_chart_file(source.local)
            files += chart_files(source.local, opts.max_chart_bytes)
            for target in _local_dependencies(source.local, chart, app.root):
                files += chart_files(target, opts.max_chart_bytes)
        else:
            assert source.remote is not None
            stored = self._fetch(source.remote, app, ctx, opts)
            if not source.remote.pinned:
                self._unpinned[source.remote] = stored
            extra["chart"] = {"repo": source.remote.repo, "chart": source.remote.chart,
                              "version": source.remote.version, "digest": stored.digest}
            if not source.remote.pinned:
                return Inputs(files=files, extra=extra, cacheable=False,
                              reason=f"unpinned chart version {source.remote.version!r}")
        return Inputs(files=files, extra=extra or None)

    def render(self, app: App, ctx: RenderContext) -> str:
        """Run ``helm template`` and return its output stream (hooks included, as Argo CD)."""
        opts: HelmOptions = app.options_for(self.name, HelmOptions)
        _check(app, opts)
        source = _source(app, opts)
        values = resolve_values(app, opts)
        binary = helm_binary(ctx.env)
        env = helm_env(ctx.env, ctx.tool_dir("helm"))
        timeout = opts.timeout or ctx.timeout
        scratch = _Scratch()
        try:
            if source.local is not None:
                chart_path = str(self._local_chart(source.local, app, ctx, opts, scratch))
            else:
                assert source.remote is not None
                stored = self._unpinned.pop(source.remote, None)
                if stored is None or not stored.path.is_file():
                    stored = self._fetch(source.remote, app, ctx, opts)
                chart_path = str(stored.path)
            args = TemplateArgs(
                release=_release(app, opts),
                chart=chart_path,
                namespace=checks.namespace(app, opts),
                value_files=[path_value(p, "helm.valueFiles", source=str(app.path))
                             for p in materialise(values, opts, scratch.path)],
                sets=values.sets,
                kube_version=app.kube_version,
                api_versions=app.api_versions,
                include_crds=not opts.skip_crds,
                skip_tests=opts.skip_tests,
                skip_schema_validation=opts.skip_schema_validation,
                pass_credentials=opts.pass_credentials,
            )
            out = ctx.run(template_argv(binary, args), what=source.describe(), cwd=app.path,
                          env=env, timeout=timeout)
        finally:
            scratch.cleanup()
        return out.decode("utf-8", "replace")

    # -- helpers --------------------------------------------------------------------------------

    def _store(self, ctx: RenderContext, opts: HelmOptions) -> ChartStore:
        from kiln.plugins.helm.store import ChartStore

        tool_dir = ctx.tool_dir("helm")
        return ChartStore(tool_dir / "store", binary=helm_binary(ctx.env),
                          env=helm_env(ctx.env, tool_dir), run=ctx.run,
                          timeout=opts.timeout or ctx.timeout)

    def _fetch(self, chart: RemoteChart, app: App, ctx: RenderContext,
               opts: HelmOptions) -> StoredChart:
        store = self._store(ctx, opts)
        found = store.lookup(chart)
        if found is not None:
            return found
        target = chart.reference if chart.is_oci else chart.repo
        creds = _credentials(opts, ctx.env, str(app.path), [target],
                             origin_of("helm.repoURL", app.origins))
        return store.fetch(chart, creds, opts.max_chart_bytes)

    def _local_chart(self, chart_dir: Path, app: App, ctx: RenderContext, opts: HelmOptions,
                     scratch: _Scratch) -> Path:
        """The chart directory helm is given: the app's own, or a scratch copy completed with
        dependencies from the store when ``charts/`` lacks some (the app is never written)."""
        import shutil

        chart = read_chart_file(chart_dir)
        present = _present_dependencies(chart_dir)
        if all(d["name"] in present for d in chart.get("dependencies") or []):
            return chart_dir
        local = _local_dependencies(chart_dir, chart, app.root)
        chart_yaml = read_bytes_capped(chart_dir / CHART_FILE, 1 << 20)
        lock_path = chart_dir / LOCK_FILE
        chart_lock = read_bytes_capped(lock_path, 1 << 20) if lock_path.is_file() else None
        basis = hashlib.sha256(chart_lock if chart_lock is not None else json.dumps(
            chart["dependencies"], sort_keys=True).encode())
        for target in local:
            files = chart_files(target, opts.max_chart_bytes)
            pairs = [(os.path.relpath(f, target), str(f)) for f in files]
            basis.update(input_digest(pairs).encode())
        root = Path(os.path.realpath(app.root))
        rel_chart = os.path.relpath(os.path.realpath(chart_dir), root)

        def populate(scratch: Path) -> Path:
            # Mirror the chart's place under the source root so relative file:// paths resolve.
            mirror = scratch / "root"
            chart_copy = mirror / rel_chart
            chart_copy.mkdir(parents=True)
            (chart_copy / CHART_FILE).write_bytes(chart_yaml)
            if chart_lock is not None:
                (chart_copy / LOCK_FILE).write_bytes(chart_lock)
            for target in local:
                link = mirror / os.path.relpath(target, root)
                if not link.exists():
                    link.parent.mkdir(parents=True, exist_ok=True)
                    link.symlink_to(target, target_is_directory=True)
            return chart_copy

        repos = [str(d.get("repository")) for d in chart["dependencies"]
                 if str(d.get("repository") or "").startswith(("http://", "https://"))]
        remote = [str(d.get("repository") or "") for d in chart["dependencies"]
                  if str(d.get("repository") or "").startswith(("http://", "https://", "oci://"))]
        chosen = Origin(Level.REPOSITORY, str(chart_dir / CHART_FILE)) if remote else OPERATOR
        creds = _credentials(opts, ctx.env, str(app.path), remote, chosen)
        built = self._store(ctx, opts).dependencies(
            basis.hexdigest(), populate, f"dependencies of chart {chart_dir}",
            creds.flags(dependency_build=True), repos)
        copy = scratch.path() / "chart" / chart_dir.name
        shutil.copytree(chart_dir, copy, symlinks=False, ignore=shutil.ignore_patterns(".git"))
        charts = copy / "charts"
        charts.mkdir(exist_ok=True)
        for archive in sorted(built.glob("*.tgz")):
            match = ARCHIVE_NAME.match(archive.name)
            if match is None or match.group(1) not in present:
                shutil.copyfile(archive, charts / archive.name)
        return copy
