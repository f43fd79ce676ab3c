"""Write a hydrated tree into a directory: only changed files, atomically, stale apps removed.

For each application path, ``manifest.yaml`` is compared with what is there: when it differs
(or is missing) it is replaced together with the path's ``hydrator.metadata`` and
``README.md``, which then name the current dry commit; when it is the same, the three files
are left as they are (Argo CD's commit server does the same, so after a one-app commit only
that app's files and the root ``hydrator.metadata`` change). The root ``hydrator.metadata`` and
``.gitattributes`` are written every time (only when their bytes change).

Every file is written to a temporary name in its directory and renamed over the old one. Files
kiln did not write are left alone. kiln records the application paths it wrote in
``.kiln-hydrate.json`` at the root; an application path recorded there and absent now has its
three files removed, then its directories while they are empty (Argo CD's hydrator leaves them).
Nothing outside the output directory is touched: paths are walked one directory at a time with
``O_NOFOLLOW``, so a symbolic link anywhere below the root is refused, never followed, and a
recorded path that is not a plain relative path is ignored.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kiln.core.errors import ConfigError, InputError
from kiln.hydrate.layout import (
    GITATTRIBUTES,
    GITATTRIBUTES_TEXT,
    MANIFEST,
    METADATA,
    PATH_FILES,
    README,
    DryCommit,
    path_metadata,
    readme,
)

log = logging.getLogger("kiln.hydrate")

RECORD = ".kiln-hydrate.json"
"""The file listing the application paths kiln wrote (how stale ones are found)."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class HydratedApp:
    """One application's hydrated output: where it goes and what it holds."""

    name: str  # for messages: the Application (or path) and where it was declared
    path: str  # the destination directory, POSIX, relative to the output root
    manifest: bytes
    commands: tuple[str, ...] = ()
    repo_url: str = ""


@dataclass
class WriteReport:
    """What a write changed: app paths whose manifest changed, app paths removed as stale,
    and every file (relative to the root) written or removed."""

    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def manifests_changed(self) -> bool:
        """True when any application's manifests were added, changed or removed."""
        return bool(self.changed or self.removed)


def check_path(path: str, source: str) -> str:
    """``path`` as a destination: a relative POSIX path without ``.``/``..``/``.git``
    components, not the root. Raises ConfigError naming ``source`` otherwise."""
    if not path or "\0" in path or "\\" in path or path.startswith("/"):
        raise ConfigError(f"hydrate destination {path!r} is not a relative path", source=source)
    parts = PurePosixPath(path).parts
    if not parts or any(p in (".", "..") for p in path.split("/") if p) or path in (".", "./"):
        raise ConfigError(f"hydrate destination {path!r} is the repository root or leaves it "
                          "(Argo CD does not hydrate to the root either)", source=source)
    if any(p.lower() == ".git" for p in parts):
        raise ConfigError(f"hydrate destination {path!r} is inside .git", source=source)
    return "/".join(parts)


def check_unique(apps: Sequence[HydratedApp]) -> None:
    """Raise ConfigError naming both applications when two write to the same path."""
    seen: dict[str, str] = {}
    for app in apps:
        other = seen.setdefault(app.path, app.name)
        if other != app.name:
            raise ConfigError(f"{other} and {app.name} both hydrate to {app.path!r} (give "
                              "them distinct paths, or use --layout name)", source=app.name)


class _Root:
    """The output directory, opened once; files below it reached only through directory file
    descriptors opened with ``O_NOFOLLOW``."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))

    def close(self) -> None:
        os.close(self.fd)

    @contextlib.contextmanager
    def directory(self, rel: str, *, create: bool) -> Iterator[int | None]:
        """A descriptor of the directory ``rel`` (created when ``create``), None when it does
        not exist. A symbolic link or a non-directory on the way is an InputError."""
        fds: list[int] = []
        current = self.fd
        try:
            for part in [p for p in rel.split("/") if p]:
                try:
                    current = os.open(part, _DIR_FLAGS, dir_fd=current)
                except FileNotFoundError:
                    if not create:
                        yield None
                        return
                    os.mkdir(part, 0o755, dir_fd=current)
                    current = os.open(part, _DIR_FLAGS, dir_fd=current)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise InputError(f"{rel}: a part of the path is a symbolic link or "
                                         "not a directory: refusing to write through it",
                                         source=str(self.path)) from None
                    raise
                fds.append(current)
            yield current
        finally:
            for fd in reversed(fds):
                os.close(fd)


def _read(dir_fd: int | None, name: str) -> bytes | None:
    """The bytes of the regular file ``name`` (None when absent, a link or not a file)."""
    if dir_fd is None:
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                     dir_fd=dir_fd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.read()


def _write(dir_fd: int, name: str, data: bytes) -> None:
    """Replace ``name`` with ``data``: a temporary file in the same directory, renamed."""
    tmp = f".{name}.kiln-{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                 | getattr(os, "O_CLOEXEC", 0), 0o644, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def _put(root: _Root, rel_dir: str, name: str, data: bytes, report: WriteReport) -> bool:
    """Write ``rel_dir/name`` when its bytes differ; True when it was written."""
    with root.directory(rel_dir, create=True) as dir_fd:
        assert dir_fd is not None
        if _read(dir_fd, name) == data:
            return False
        _write(dir_fd, name, data)
    report.files.append(f"{rel_dir}/{name}" if rel_dir else name)
    return True


def _recorded(root: _Root) -> list[str]:
    """The application paths the last write recorded (malformed entries ignored)."""
    raw = _read(root.fd, RECORD)
    if raw is None:
        return []
    try:
        paths = json.loads(raw).get("paths", [])
    except (ValueError, AttributeError):
        return []
    out = []
    for path in paths if isinstance(paths, list) else []:
        if not isinstance(path, str):
            continue
        try:
            out.append(check_path(path, RECORD))
        except ConfigError:
            continue
    return out


def _remove(root: _Root, rel: str, report: WriteReport) -> None:
    """Remove the files kiln writes in the stale path ``rel``, then its empty directories
    (a path through a symbolic link is left alone, with a warning)."""
    try:
        _remove_files(root, rel, report)
    except InputError:
        log.warning("%s: stale app path %s goes through a symbolic link: left alone",
                    root.path, rel)


def _remove_files(root: _Root, rel: str, report: WriteReport) -> None:
    with root.directory(rel, create=False) as dir_fd:
        if dir_fd is None:
            return
        for name in PATH_FILES:
            try:
                os.unlink(name, dir_fd=dir_fd)
            except (FileNotFoundError, IsADirectoryError, PermissionError):
                continue
            report.files.append(f"{rel}/{name}")
    parts = rel.split("/")
    while parts:
        parent, name = "/".join(parts[:-1]), parts[-1]
        with root.directory(parent, create=False) as parent_fd:
            if parent_fd is None:
                return
            try:
                os.rmdir(name, dir_fd=parent_fd)
            except OSError:
                return  # not empty (or not ours to remove): stop climbing
        parts.pop()


def write_tree(out: Path, apps: Sequence[HydratedApp], dry: DryCommit) -> WriteReport:
    """Write ``apps`` and the root files for ``dry`` into ``out`` (created when missing) and
    remove the recorded paths of apps no longer present. Same inputs over the same directory
    give the same bytes; an unchanged file is not rewritten."""
    check_unique(apps)
    report = WriteReport()
    root = _Root(out)
    try:
        previous = _recorded(root)
        for app in sorted(apps, key=lambda a: a.path):
            with root.directory(app.path, create=True) as dir_fd:
                current = _read(dir_fd, MANIFEST)
                missing = _read(dir_fd, METADATA) is None or _read(dir_fd, README) is None
            if current == app.manifest and not missing:
                continue
            _put(root, app.path, MANIFEST, app.manifest, report)
            _put(root, app.path, METADATA, path_metadata(app.repo_url, dry.sha, app.commands),
                 report)
            _put(root, app.path, README, readme(app.repo_url, dry.sha, app.commands), report)
            if current != app.manifest:
                report.changed.append(app.path)
        _put(root, "", METADATA, dry.root_metadata(), report)
        _put(root, "", GITATTRIBUTES, GITATTRIBUTES_TEXT, report)
        present = {app.path for app in apps}
        for stale in sorted(set(previous) - present, reverse=True):
            before = len(report.files)
            _remove(root, stale, report)
            if len(report.files) > before:
                report.removed.append(stale)
        record = json.dumps({"paths": sorted(present)}, indent=2) + "\n"
        _put(root, "", RECORD, record.encode(), report)
    finally:
        root.close()
    return report
