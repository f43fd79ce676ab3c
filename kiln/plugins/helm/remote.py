"""Remote chart references and repository credentials (no I/O: cheap to import)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


@dataclass(frozen=True)
class RemoteChart:
    """Where a remote chart comes from: an HTTP repository (``repo``) or an OCI reference."""

    repo: str
    chart: str
    version: str

    @property
    def is_oci(self) -> bool:
        """True for an ``oci://`` chart."""
        return self.reference.startswith("oci://")

    @property
    def reference(self) -> str:
        """What ``helm pull`` is given: ``oci://host/path/chart`` or the bare chart name."""
        if self.chart.startswith("oci://"):
            return self.chart
        if self.repo.startswith("oci://"):
            return f"{self.repo.rstrip('/')}/{self.chart}"
        if self.repo and "://" not in self.repo:
            return f"oci://{self.repo.rstrip('/')}/{self.chart}"
        return self.chart

    @property
    def pinned(self) -> bool:
        """True when ``version`` names one exact version (not a range, not "latest")."""
        return bool(EXACT_VERSION.match(self.version))

    def key(self) -> str:
        """The store key of (repository, chart, version)."""
        ident = json.dumps([self.repo.rstrip("/"), self.chart, self.version])
        return hashlib.sha256(ident.encode()).hexdigest()[:40]

    def describe(self) -> str:
        """A human name for messages: ``chart@version from repo``."""
        where = self.reference if self.is_oci else f"{self.chart} from {self.repo}"
        return f"{where} (version {self.version or 'latest'})"


@dataclass(frozen=True)
class Credentials:
    """Repository credentials (never logged, never written to kiln's files)."""

    username: str = ""
    password: str = field(default="", repr=False)
    pass_credentials: bool = False
    plain_http: bool = False
    insecure_skip_tls_verify: bool = False

    def flags(self, *, dependency_build: bool = False) -> list[str]:
        """``helm pull`` (or ``helm dependency build``) flags for these settings."""
        argv: list[str] = []
        if self.username:
            argv.append(f"--username={self.username}")
        if self.password:
            argv.append(f"--password={self.password}")
        if self.pass_credentials and not dependency_build:
            argv.append("--pass-credentials")
        if self.plain_http:
            argv.append("--plain-http")
        if self.insecure_skip_tls_verify:
            argv.append("--insecure-skip-tls-verify")
        return argv


@dataclass(frozen=True)
class StoredChart:
    """A chart archive in the store and its sha256 digest."""

    path: Path
    digest: str
