"""The shared chart store: remote charts downloaded once, dependencies built once per lock.

Layout under kiln's helm tool directory::

    charts/blobs/<sha256>.tgz      chart archives, named by their content digest
    charts/refs/<key>.json         repo + chart + exact version -> digest (the memo a cache hit
                                   reads instead of contacting the repository)
    deps/<lock digest>/            dependency archives built by ``helm dependency build``
    locks/<key>.lock               flock()s so parallel kiln processes download only once

Every write goes to a temporary name first and is renamed into place, so a reader never sees a
half-written archive.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from kiln.core.digest import file_digest
from kiln.core.errors import InputError, ToolError
from kiln.plugins.helm.remote import Credentials, RemoteChart, StoredChart

log = logging.getLogger("kiln.helm.store")

Runner = Callable[..., bytes]


class ChartStore:
    """Content-addressed chart archives and built dependencies, shared by every app.

    ``run`` runs a helm command line (``RenderContext.run`` semantics), ``binary`` is helm and
    ``env`` the environment helm runs in (its homes already pointed into kiln's directory).
    """

    def __init__(self, root: Path, *, binary: str, env: Mapping[str, str], run: Runner,
                 timeout: float) -> None:
        self.root = root
        self.binary = binary
        self.env = dict(env)
        self.run = run
        self.timeout = timeout
        for sub in ("charts/blobs", "charts/refs", "deps", "locks", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        with open(self.root / "locks" / f"{key}.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _tmpdir(self) -> str:
        return tempfile.mkdtemp(prefix="work-", dir=self.root / "tmp")

    # -- remote charts ------------------------------------------------------------------------

    def lookup(self, chart: RemoteChart) -> StoredChart | None:
        """The stored archive of a pinned chart, without any network access (None if absent)."""
        if not chart.pinned:
            return None
        try:
            memo = json.loads((self.root / "charts/refs" / f"{chart.key()}.json").read_text())
            digest = memo["digest"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        path = self.root / "charts/blobs" / f"{digest}.tgz"
        return StoredChart(path, digest) if path.is_file() else None

    def fetch(self, chart: RemoteChart, creds: Credentials, max_bytes: int) -> StoredChart:
        """Return the chart's archive, downloading it only when the store lacks it.

        A pinned chart is downloaded once and memoised; an unpinned one (a range or no version)
        is downloaded every time, since its digest may change.
        """
        with self._lock(chart.key()):
            found = self.lookup(chart)
            if found is not None:
                return found
            return self._download(chart, creds, max_bytes)

    def _download(self, chart: RemoteChart, creds: Credentials, max_bytes: int) -> StoredChart:
        work = self._tmpdir()
        try:
            # Every value joined to its flag, the chart reference after "--": nothing the app
            # chose can be read as a flag.
            argv = [self.binary, "pull", f"--destination={work}"]
            if chart.version:
                argv.append(f"--version={chart.version}")
            if not chart.is_oci:
                argv.append(f"--repo={chart.repo}")
            argv += [*creds.flags(), "--", chart.reference]
            log.info("downloading chart %s", chart.describe())
            self.run(argv, what=f"chart {chart.describe()}", env=self.env, timeout=self.timeout)
            archives = [p for p in Path(work).iterdir() if p.name.endswith(".tgz")]
            if len(archives) != 1:
                raise ToolError("helm pull produced no chart archive",
                                source=f"chart {chart.describe()}")
            archive = archives[0]
            size = archive.stat().st_size
            if size > max_bytes:
                raise InputError(f"chart archive is {size} bytes, over the {max_bytes}-byte "
                                 "limit (helm.maxChartBytes)", source=f"chart {chart.describe()}")
            digest = file_digest(archive)
            target = self.root / "charts/blobs" / f"{digest}.tgz"
            os.replace(archive, target)
            if chart.pinned:
                memo = {"repo": chart.repo, "chart": chart.chart, "version": chart.version,
                        "digest": digest}
                _write_atomic(self.root / "charts/refs" / f"{chart.key()}.json",
                              json.dumps(memo).encode())
            return StoredChart(target, digest)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # -- dependencies ---------------------------------------------------------------------------

    def add_repositories(self, urls: Sequence[str], what: str) -> None:
        """Register HTTP repositories (named after their URL) in kiln's private Helm config.

        ``helm dependency build`` with a ``Chart.lock`` only resolves repositories Helm knows
        by name, as Argo CD also adds them before building.
        """
        for url in sorted(set(urls)):
            name = "kiln-" + hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
            argv = [self.binary, "repo", "add", "--force-update", "--", name, url]
            self.run(argv, what=what, env=self.env, timeout=self.timeout)

    def dependencies(self, key: str, populate: Callable[[Path], Path], what: str,
                     extra_args: Sequence[str] = (), repositories: Sequence[str] = ()) -> Path:
        """Return a directory of dependency archives for a chart, building it once per ``key``.

        ``key`` is the lock digest (``Chart.lock``, else the ``dependencies`` of ``Chart.yaml``,
        plus the content of any ``file://`` dependency). ``populate(scratch)`` lays out a
        scratch chart (``Chart.yaml``, ``Chart.lock``, links to local dependencies) inside
        ``scratch`` and returns its directory: ``helm dependency build`` runs there, so the
        app's own directory is never written. ``repositories`` are the HTTP repositories the
        dependencies come from.
        """
        target = self.root / "deps" / key
        with self._lock(f"deps-{key}"):
            if (target / ".complete").is_file():
                return target
            work = Path(self._tmpdir())
            try:
                if repositories:
                    self.add_repositories(repositories, what)
                chart_dir = populate(work)
                argv = [self.binary, "dependency", "build", *extra_args, "--", str(chart_dir)]
                log.info("building chart dependencies for %s", what)
                self.run(argv, what=what, env=self.env, timeout=self.timeout)
                built = chart_dir / "charts"
                built.mkdir(exist_ok=True)
                (built / ".complete").write_text("")
                shutil.rmtree(target, ignore_errors=True)
                os.replace(built, target)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return target


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
