"""The outputs of a multi-app ``kiln render``: one YAML stream, one JSON document, or a tree.

* :func:`yaml_stream`: every app's stream in spec order, each app's first document preceded by
  a ``# Source: <app>`` comment (as ``helm template`` marks where a document came from); the
  concatenation parses as the apps' objects one after another.
* :func:`json_document`: ``{"apps": [{"path", "name", "key", "cacheHit", "objects"}]}``; a
  failed app has ``"error"`` (its one line, redacted) instead of ``"objects"``.
* :func:`write_tree`: ``DIR/<app path>/manifest.yaml`` per app that rendered, each written
  atomically (a reader sees the old file or the new one, never half of one);
  :func:`check_output_dir` refuses a directory that overlaps an app's source and two apps
  that would write the same file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from kiln.core.errors import KilnError, UsageError

if TYPE_CHECKING:
    from kiln.apps.model import AppSpec
    from kiln.many.runner import AppOutcome

MANIFEST = "manifest.yaml"

log = logging.getLogger("kiln")


def source_line(spec: AppSpec) -> str:
    """The comment that marks where an app's documents start in the combined stream."""
    from kiln.many.runner import app_label

    return f"# Source: {' '.join(app_label(spec).split())}\n"


def yaml_stream(outcomes: Sequence[AppOutcome]) -> str:
    """Every app's YAML stream in order, ``---`` between documents, each app's first document
    preceded by its :func:`source_line` (an app that rendered nothing leaves only its comment,
    ``(no objects)``). Only for outcomes that all rendered."""
    parts: list[str] = []
    pending = ""
    for outcome in outcomes:
        assert outcome.result is not None, "yaml_stream is for a batch that fully rendered"
        text = outcome.result.to_yaml()
        if not text.strip():
            pending += source_line(outcome.spec).rstrip("\n") + " (no objects)\n"
            continue
        parts.append(pending + source_line(outcome.spec) + text)
        pending = ""
    out = "---\n".join(p if p.endswith("\n") else p + "\n" for p in parts)
    return out + pending


def json_document(outcomes: Sequence[AppOutcome], redact: Callable[[str], str]) -> str:
    """``{"apps": [...]}`` for every outcome in order (see the module doc); error lines pass
    through ``redact``."""
    import json

    apps: list[dict[str, Any]] = []
    for outcome in outcomes:
        entry: dict[str, Any] = {"path": outcome.spec.path, "name": outcome.spec.name}
        if outcome.result is not None:
            entry.update(key=outcome.result.key, cacheHit=outcome.result.cache_hit,
                         objects=outcome.result.objects)
        else:
            assert outcome.error is not None
            entry.update(key=None, cacheHit=False, error=redact(outcome.error.one_line()))
        apps.append(entry)
    # as kiln.core.manifests.dump_json writes one app's array
    return json.dumps({"apps": apps}, indent=2, ensure_ascii=False) + "\n"


def manifest_path(out_dir: Path, spec: AppSpec) -> Path:
    """``out_dir/<spec.path>/manifest.yaml`` (``out_dir/manifest.yaml`` for the root app)."""
    parts = [p for p in PurePosixPath(spec.path or ".").parts if p != "."]
    return out_dir.joinpath(*parts, MANIFEST)


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def check_output_dir(out_dir: Path, root: Path, specs: Sequence[AppSpec]) -> None:
    """Refuse (UsageError) an output directory that is, holds or lies inside an app's source
    directory (the written files would become that app's input, or overwrite its files), and
    two apps of one path (they would write the same file)."""
    from kiln.many.runner import app_directory, app_label

    out = os.path.realpath(out_dir)
    seen: dict[str, AppSpec] = {}
    for spec in specs:
        app_dir = os.path.realpath(app_directory(root, spec))
        if _inside(out, app_dir) or _inside(app_dir, out):
            raise UsageError(f"--output-dir {out_dir} overlaps the source of "
                             f"{app_label(spec)} ({app_dir}): choose a directory outside "
                             "every app")
        target = str(manifest_path(Path(out), spec))
        other = seen.get(target)
        if other is not None:
            raise UsageError(f"{app_label(other)} and {app_label(spec)} would both write "
                             f"{target}: --output-dir needs one app per path")
        seen[target] = spec


def write_tree(out_dir: Path, outcomes: Sequence[AppOutcome]) -> list[Path]:
    """Write each rendered app's YAML stream to :func:`manifest_path`, atomically; failed apps
    write nothing (a file of an earlier run stays as it was). Returns the files written."""
    written = []
    for outcome in outcomes:
        if outcome.result is None:
            continue
        target = manifest_path(out_dir, outcome.spec)
        write_atomically(target, outcome.result.to_yaml())
        written.append(target)
    return written


def write_atomically(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` in one rename (parents made as needed); a failure is
    a one-line KilnError naming ``target``."""
    try:
        _write(target, text)
    except OSError as exc:
        raise KilnError(f"cannot write: {exc.strerror or exc}", source=str(target)) from None


def _write(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # placeholders and ciphertext only: readable like a checkout
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def warn_unresolved(outcomes: Sequence[AppOutcome]) -> None:
    """One warning per rendered app with references no backend handles (``kiln render``
    leaves them; ``kiln generate`` fails): the app, how many, the first as written."""
    from kiln.core import placeholders
    from kiln.many.runner import app_label

    for outcome in outcomes:
        result = outcome.result
        if result is None or not placeholders.may_hold_references(result.to_yaml()):
            continue
        leftover = result.unresolved()
        if leftover:
            first = leftover[0].one_line().partition(": no secrets backend")[0]
            log.warning("%s: %d secret reference(s) left unresolved: no backend configured "
                        "(first: %s)", app_label(outcome.spec), len(leftover), first)


__all__ = ["MANIFEST", "check_output_dir", "json_document", "manifest_path", "warn_unresolved",
           "write_atomically", "write_tree", "yaml_stream"]
