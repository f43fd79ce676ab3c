"""The ``kiln diff`` command.

- ``kiln diff PATH``: the rendered app (secrets resolved in memory) against the cluster: live
  state beside the server-side dry-run result (:mod:`kiln.diff.live`).
- ``kiln diff PATH --against REV|DIR``: against the same app at a git revision of its
  repository, or another directory, with no cluster (:mod:`kiln.diff.against`).
- ``kiln diff --applications FILE|DIR --against REV``: every Argo CD Application in the working
  tree against the same Applications at the merge base of HEAD and REV, paired by name
  (:mod:`kiln.diff.many`, reports in :mod:`kiln.diff.many_report`); an app failing on a side
  is one error line and exit 2, the other apps' diff still printed.

Secrets, the kinds the operator lists and copies of objects in annotations are masked
(:mod:`kiln.diff.mask`). Exit status as ``kubectl diff``: 0 no difference, 1 differences, 2 on
any error (one line on stderr, nothing on stdout); stdout is written once, at the end.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from kiln.core.errors import KilnError, UsageError
from kiln.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from kiln.diff.mask import MaskPolicy
    from kiln.diff.objects import DiffResult

FORMATS = ("text", "json", "markdown")
"""The ``-o`` choices (:mod:`kiln.diff.report`'s formats; not imported here, to keep start-up
cheap for every other command)."""
ERROR_EXIT = 2
"""The exit status of a failed diff (1 means "differences", as for ``kubectl diff``)."""


class DiffFailed(KilnError):
    """An unexpected failure of ``kiln diff``, reported on one line with exit status 2."""

    exit_code = ERROR_EXIT


class _DiffCommand(click.Command):
    """``kiln diff`` takes the app flags ``kiln render`` takes (declared by kiln and the loaded
    plugins), placed before ``--source-root``."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        """The command's own parameters with the declared app flags before ``--source-root``."""
        params = super().get_params(ctx)
        app_options = getattr(ctx.find_root().obj, "app_options", None)
        if app_options is None:
            return params
        at = next(i for i, p in enumerate(params) if p.name == "source_root")
        return [*params[:at], *app_options(), *params[at:]]


def _emit(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


@click.command("diff", cls=_DiffCommand)
@click.argument("path", required=False,
                type=click.Path(file_okay=True, dir_okay=True, path_type=str))
@click.option("--against", metavar="REV|DIR",
              help="Compare with the app at git revision REV of its repository, or with the "
                   "app in directory DIR (no cluster).")
@click.option("--applications", metavar="FILE|DIR",
              help="Instead of PATH: every Argo CD Application in FILE|DIR, in the working "
                   "tree and at --against REV (needed), paired by name.")
@click.option("--merge-base/--no-merge-base", "merge_base", default=True, show_default=True,
              help="With --applications: diff against the merge base of HEAD and REV (as a "
                   "pull request), or REV itself.")
@click.option("--repo-url", "repo_urls", multiple=True, metavar="URL",
              help="With --applications: a repoURL meaning this checkout, besides the "
                   "remotes' URLs (repeatable).")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), metavar="N",
              help="With --applications: apps rendered at once (default: the CPU count).")
@click.option("-q", "--quiet", is_flag=True,
              help="With --applications: no progress display on stderr.")
@click.option("-o", "--output", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--mask-kind", "mask_kind", multiple=True, metavar="KIND[.GROUP]",
              help="Also show this kind per data key, values masked (repeatable; also "
                   "$KILN_DIFF_MASK_KINDS).")
@click.option("--secret-fingerprint", metavar="KEYFILE",
              help="Print an HMAC-SHA256 fingerprint of each masked value under the key in "
                   "KEYFILE (at least 16 bytes): equal fingerprints mean equal values.")
@click.option("-U", "--unified", "context_lines", type=click.IntRange(0, 10000), default=3,
              show_default=True, help="Lines of context in each diff.")
@click.option("--no-secrets", is_flag=True,
              help="With --against: compare secret references and ciphertext as stored.")
@click.option("--kubeconfig", metavar="FILE", help="Kubeconfig file (default $KUBECONFIG, "
              "else ~/.kube/config, else in-cluster).")
@click.option("--context", "kube_context", metavar="NAME", help="Kubeconfig context.")
@click.option("--field-manager", default="kiln", show_default=True,
              help="Field manager of the server-side dry-run.")
@click.option("--applyset", metavar="[secret|configmap/]NAME",
              help="The ApplySet 'kiln apply' would use (default kiln-<app name>): objects "
                   "are labelled as its members, as 'kiln apply' labels them.")
@click.option("--source-root", metavar="DIR",
              help="Files outside DIR are refused (default: the git work tree holding PATH, "
                   "else PATH).")
@click.option("-O", "--option", "options", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Set any kiln.yaml option (VALUE is YAML).")
@click.option("--cache-dir", envvar="KILN_CACHE_DIR", metavar="DIR",
              help="Cache directory (default $XDG_CACHE_HOME/kiln).")
@click.option("--cache-url", envvar="KILN_CACHE_URL", metavar="URL",
              help="Keep manifests in Redis (redis://host:port/db) instead.")
@click.option("--cache-max-bytes", metavar="SIZE", help="Size bound of the cache directory.")
@click.option("--no-cache", is_flag=True, help="Render without reading or writing the cache.")
@click.option("--debug", is_flag=True, help="Log every step and show tracebacks.")
@click.pass_obj
def diff(state: Any, /, path: str | None, against: str | None, applications: str | None,
         merge_base: bool, repo_urls: tuple[str, ...], jobs: int | None, quiet: bool,
         output: str, mask_kind: tuple[str, ...], secret_fingerprint: str | None,
         context_lines: int, no_secrets: bool,
         kubeconfig: str | None, kube_context: str | None, field_manager: str,
         applyset: str | None, source_root: str | None, cache_dir: str | None,
         cache_url: str | None, cache_max_bytes: str | None, no_cache: bool, debug: bool,
         **flags: Any) -> None:
    """Show what would change: the app in PATH against the cluster (live state vs a
    server-side dry-run), or with --against against another revision or directory; with
    --applications instead of PATH, every Argo CD Application against --against REV. Secret
    values are never shown. Exit 0: no difference; 1: differences; 2: error."""
    if applications is not None or path is None:
        _check_many(path, applications, against, kubeconfig, kube_context, applyset,
                    source_root)
        _run_many(state, applications or "", against or "", merge_base=merge_base,
                  repo_urls=repo_urls, jobs=jobs, quiet=quiet, output=output,
                  mask_kind=mask_kind, secret_fingerprint=secret_fingerprint,
                  context_lines=context_lines, no_secrets=no_secrets,
                  cache=(cache_dir, cache_url, cache_max_bytes, no_cache, debug), flags=flags)
        return
    if merge_base is False or repo_urls or jobs is not None:
        raise UsageError("--no-merge-base, --repo-url and --jobs only go with --applications")
    try:
        result = _run(state, path, against, mask_kind, secret_fingerprint, context_lines,
                      no_secrets, kubeconfig, kube_context, field_manager, applyset,
                      source_root, cache_dir, cache_url, cache_max_bytes, no_cache, debug,
                      flags)
        from kiln.diff.report import render

        label = f"kiln diff {path}" + (f" --against {against}" if against else "")
        text = render(result, output, title=label)  # type: ignore[arg-type]
    except KilnError as exc:
        exc.exit_code = max(exc.exit_code, ERROR_EXIT)
        raise
    except Exception as exc:  # any failure exits 2, not 1 ("differences")
        # The message is left out: it could quote an object read from the cluster.
        raise DiffFailed(f"internal error: {type(exc).__name__} (run again with --debug for "
                         "a traceback)") from exc
    _emit(text)
    sys.exit(1 if result.changed else 0)


def _run_many(state: Any, applications: str, against: str, *, merge_base: bool,
              repo_urls: tuple[str, ...], jobs: int | None, quiet: bool, output: str,
              mask_kind: tuple[str, ...], secret_fingerprint: str | None, context_lines: int,
              no_secrets: bool, cache: tuple[Any, ...], flags: dict[str, Any]) -> None:
    """``kiln diff --applications``: the report on stdout (written once, at the end), one
    ``kiln: error:`` line on stderr per app that failed on a side; exit 0, 1 or 2."""
    import os

    from kiln import cli
    from kiln.clikit import redact

    try:
        from kiln.diff.many import Options, diff_applications
        from kiln.diff.many_report import render
        from kiln.many.progress import progress_for

        cache_dir, cache_url, cache_max_bytes, no_cache, debug = cache
        engine = cli._engine(state, cache_dir, no_cache, debug, cache_url, cache_max_bytes)
        settings = cli._settings(state.app_flags(), **flags)
        policy = _policy(mask_kind, secret_fingerprint, engine.redactor, os.environ)
        options = Options(settings=settings, secrets=not no_secrets, jobs=jobs,
                          repo_urls=repo_urls, merge_base=merge_base, context=context_lines)

        def progress(total: int, label: str) -> Any:
            return progress_for(sys.stderr, total=total, quiet=quiet, label=label)

        result = diff_applications(engine, applications, against, policy=policy,
                                   options=options, progress=progress)
        title = f"kiln diff --applications {applications} --against {against}"
        text = render(result, output, title=title)  # type: ignore[arg-type]
    except KilnError as exc:
        exc.exit_code = max(exc.exit_code, ERROR_EXIT)
        raise
    except Exception as exc:  # any failure exits 2, not 1 ("differences")
        raise DiffFailed(f"internal error: {type(exc).__name__} (run again with --debug for "
                         "a traceback)") from exc
    for app in result.apps:
        for line in app.errors:
            sys.stderr.write(redact(state, f"kiln: error: {line}\n"))
    sys.stderr.flush()
    _emit(text)
    sys.exit(result.exit_code)


def _check_many(path: str | None, applications: str | None, against: str | None,
                kubeconfig: str | None, kube_context: str | None, applyset: str | None,
                source_root: str | None) -> None:
    """``--applications`` instead of PATH, with ``--against REV`` and no cluster flag."""
    if applications is None:
        raise UsageError("missing argument PATH (or --applications FILE|DIR)")
    if path is not None:
        raise UsageError("PATH and --applications are mutually exclusive")
    if not against:
        raise UsageError("--applications needs --against REV (the revision to diff against)")
    if kubeconfig or kube_context or applyset:
        raise UsageError("--kubeconfig, --context and --applyset need a cluster: not with "
                         "--applications")
    if source_root:
        raise UsageError("--source-root: not with --applications (each app's source root is "
                         "the repository)")


def _run(state: Any, path: str, against: str | None, mask_kind: tuple[str, ...],
         secret_fingerprint: str | None, context_lines: int, no_secrets: bool,
         kubeconfig: str | None, kube_context: str | None, field_manager: str,
         applyset: str | None, source_root: str | None, cache_dir: str | None,
         cache_url: str | None, cache_max_bytes: str | None, no_cache: bool, debug: bool,
         flags: dict[str, Any]) -> DiffResult:
    import os
    from pathlib import Path

    from kiln import cli

    if against is not None and (kubeconfig or kube_context or applyset):
        raise UsageError("--kubeconfig, --context and --applyset need a cluster: not with "
                         "--against")
    if against is None and no_secrets:
        raise UsageError("--no-secrets only goes with --against (a dry-run needs the values)")
    engine = cli._engine(state, cache_dir, no_cache, debug, cache_url, cache_max_bytes)
    settings = cli._settings(state.app_flags(), **flags)
    policy = _policy(mask_kind, secret_fingerprint, engine.redactor, os.environ)
    root = Path(source_root) if source_root else None
    if against is not None:
        from kiln.diff.against import render_against, render_app
        from kiln.diff.objects import diff_objects

        desired = render_app(engine, Path(path), settings, source_root=root,
                             secrets=not no_secrets)
        other = render_against(engine, path, against, settings, source_root=root,
                               secrets=not no_secrets)
        return diff_objects(other.objects, desired, policy=policy,
                            labels=(other.label, "desired"), context=context_lines)
    return _live(engine, path, settings, root, policy, applyset, kubeconfig, kube_context,
                 field_manager, context_lines)


def _live(engine: Any, path: str, settings: dict[str, Any], root: Any, policy: MaskPolicy,
          applyset: str | None, kubeconfig: str | None, kube_context: str | None,
          field_manager: str, context_lines: int) -> DiffResult:
    """What ``kiln apply`` would change: the objects it would send (rendered, resolved, the
    ``kiln_before_apply`` hooks run, placed in the app's namespace, labelled as members of the
    same ApplySet) against the cluster."""
    from kiln.apply.applier import parse_applyset, resolved_objects
    from kiln.apply.applyset import default_name
    from kiln.apply.cluster import ClusterOptions, connect
    from kiln.diff.live import diff_live

    app = engine.load_app(path, settings, source_root=root)
    objects = resolved_objects(engine, app)
    cluster = ClusterOptions(kubeconfig=kubeconfig, context=kube_context)
    namespace = app.namespace
    if not namespace:
        with connect(cluster, engine.env) as conn:
            namespace = conn.namespace
    target = parse_applyset(applyset, default_name(app.display_name), namespace)
    objects = [target.label(_placed(obj, app.namespace)) for obj in objects]
    return diff_live(objects, cluster=cluster, policy=policy, field_manager=field_manager,
                     context=context_lines)


def _placed(obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    """``obj`` in the app's namespace when it names none, as ``kiln apply`` places it (the
    apply step drops it again for a cluster-scoped kind)."""
    meta = obj.get("metadata")
    if not namespace or not isinstance(meta, dict) or meta.get("namespace"):
        return obj
    return {**obj, "metadata": {**meta, "namespace": namespace}}


def _policy(mask_kind: tuple[str, ...], keyfile: str | None, redactor: Any,
            env: Any) -> MaskPolicy:
    from kiln.diff.fingerprint import Fingerprinter
    from kiln.diff.mask import MaskPolicy, mask_kinds

    kinds = mask_kinds(mask_kind, env)
    fingerprint = Fingerprinter.from_file(keyfile) if keyfile else None
    return MaskPolicy(kinds=kinds, redactor=redactor, fingerprint=fingerprint)


@hookimpl
def kiln_register_commands(registry: Any) -> None:
    """Add ``diff`` to the ``kiln`` command line."""
    registry.add(diff)
