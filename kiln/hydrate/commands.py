"""The ``kiln hydrate`` command: every Application's manifests in the Source Hydrator's layout.

``kiln hydrate --applications FILE|DIR --output-dir OUT [--branch B [--push]]`` renders each
Application of the checkout (secrets never resolved), writes ``OUT/<app path>/manifest.yaml``,
``README.md`` and ``hydrator.metadata`` plus the root ``hydrator.metadata`` and
``.gitattributes`` (:mod:`kiln.hydrate.writer`), and with ``--branch`` commits the same tree
to branch ``B`` of the repository through a private worktree (:mod:`kiln.hydrate.commit`).

Registered on the ``kiln`` command line through ``kiln_register_commands``. stdout receives
the new commit's id when one was made, nothing else; the summary and "nothing changed" go to
stderr (not with ``-q``), progress too (on a terminal only). Exit 1 when any app failed:
then nothing is written and nothing committed.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from kiln import cli as _cli
from kiln.core.hookspecs import hookimpl


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        sys.stderr.write(f"kiln: hydrate: {text}\n")


@click.command("hydrate", cls=_cli._AppCommand)
@click.option("--applications", "applications", required=True, metavar="FILE|DIR",
              type=click.Path(exists=True, file_okay=True, dir_okay=True, path_type=str),
              help="Argo CD Application (and ApplicationSet) manifests: a file or a directory.")
@click.option("--output-dir", metavar="OUT", help="Write the hydrated tree into OUT.")
@click.option("--branch", metavar="B", help="Commit the hydrated tree to branch B of the "
              "repository (created as an orphan branch when missing).")
@click.option("--push", is_flag=True, help="With --branch: push B to its remote afterwards.")
@click.option("--repo-url", metavar="URL", help="The dry repository's URL in "
              "hydrator.metadata (default: the remote 'origin', credentials removed).")
@click.option("--layout", type=click.Choice(["path", "name"]), default="path",
              show_default=True, help="An app's directory under OUT: its source path, or its "
              "Application name.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), metavar="N",
              help="Apps rendered at once (default: the CPU count).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display and no summary.")
@_cli._app_options
@_cli._common_cache_options
@click.pass_obj
def hydrate(state: Any, /, applications: str, output_dir: str | None, branch: str | None,
            push: bool, repo_url: str | None, layout: str, jobs: int | None, quiet: bool,
            cache_dir: str | None, no_cache: bool, debug: bool, cache_url: str | None,
            cache_max_bytes: str | None, source_root: str | None, **flags: Any) -> None:
    """Render every Application in FILE|DIR (secrets never resolved) into the Source
    Hydrator's layout: OUT/<path>/{manifest.yaml,README.md,hydrator.metadata}; with --branch,
    commit it to branch B (only when a manifest changed)."""
    import os
    from pathlib import Path

    from kiln.apps import load_applications
    from kiln.core.errors import UsageError
    from kiln.hydrate import commit as git
    from kiln.hydrate.run import check_destinations, hydrated_apps
    from kiln.hydrate.writer import write_tree
    from kiln.many.progress import progress_for
    from kiln.many.runner import render_many

    if not output_dir and not branch:
        raise UsageError("give --output-dir OUT, --branch B, or both")
    if push and not branch:
        raise UsageError("--push needs --branch")
    if source_root:
        raise UsageError("--source-root: hydrate reads files of the repository only (its root "
                         "is the source root)")
    target = Path(applications)
    repo = git.repository_root(Path(os.path.abspath(target)))
    if branch:
        git.check_branch_name(repo, branch)
    out = Path(os.path.abspath(output_dir)) if output_dir else None
    dirty = git.uncommitted(repo, [out] if out else [])
    if dirty and branch:
        raise UsageError(f"{repo}: uncommitted changes ({dirty[0]}"
                         f"{' and more' if len(dirty) > 1 else ''}): the hydrated commit "
                         "names HEAD as its dry commit, so commit them first")
    if dirty:
        _say(quiet, f"uncommitted changes ({dirty[0]}...): the metadata names HEAD, which "
                    "does not hold them")
    dry = git.dry_commit(repo, repo_url=git.public_url(repo_url) if repo_url is not None
                         else git.origin_url(repo))
    engine = _cli._engine(state, cache_dir, no_cache, debug, cache_url, cache_max_bytes)
    settings = _cli._settings(state.app_flags(), **flags)
    specs = load_applications(target, repo_root=repo)
    if not specs:
        raise UsageError(f"{applications}: no Application found")
    check_destinations(specs, layout)
    rel = os.path.relpath(os.path.abspath(target), repo).replace(os.sep, "/")
    commands = [f"kiln hydrate --applications {rel} --output-dir OUT"]
    with progress_for(sys.stderr, total=len(specs), quiet=quiet, label="hydrate") as progress:
        outcomes = render_many(engine, repo, specs, settings=settings, secrets=False,
                               jobs=jobs, progress=progress)
    apps = hydrated_apps(engine, repo, outcomes, layout=layout, repo_url=dry.repo_url,
                         commands=commands, settings=settings)
    if out is not None:
        report = write_tree(out, apps, dry)
        _say(quiet, f"{len(apps)} app(s) into {output_dir}: {len(report.changed)} changed, "
                    f"{len(report.removed)} removed, {len(report.files)} file(s) written")
    if branch:
        _commit(repo, branch, apps, dry, push=push, quiet=quiet)


def _commit(repo: Any, branch: str, apps: Any, dry: Any, *, push: bool, quiet: bool) -> None:
    """Write the tree into a private worktree of ``branch``; commit when a manifest changed,
    note the dry sha either way; push when asked."""
    from kiln.hydrate import commit as git
    from kiln.hydrate.writer import write_tree

    with git.branch_worktree(repo, branch) as tree:
        report = write_tree(tree, apps, dry)
        if report.manifests_changed:
            sha = git.commit_tree(tree, dry.commit_message())
            git.add_note(tree, sha, dry.sha)
            _say(quiet, f"committed {sha[:12]} to {branch}: {len(report.changed)} app(s) "
                        f"changed, {len(report.removed)} removed")
            _cli._emit(f"{sha}\n")
        else:
            sha = git.head(tree)
            if sha:
                git.add_note(tree, sha, dry.sha)
            _say(quiet, f"no manifest changed: nothing committed to {branch}")
    if push:
        remote = git.push(repo, branch)
        _say(quiet, f"pushed {branch} to {remote}")


@hookimpl
def kiln_register_commands(registry: Any) -> None:
    """Add ``hydrate`` to the ``kiln`` command line."""
    registry.add(hydrate)
