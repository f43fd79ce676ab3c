"""The ``helm:`` section of kiln.yaml: Argo CD's ``spec.source.helm`` fields, plus chart source."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import msgspec

from kiln.core.app import Options
from kiln.core.trust import Guard

DEFAULT_MAX_CHART_BYTES = 1 << 30
"""Largest chart accepted, archive or directory (1 GiB, like Argo CD's default)."""


class Parameter(Options, frozen=True):
    """One ``--set`` (or ``--set-string`` with ``forceString``) parameter."""

    name: str
    value: str | int | float | bool = ""
    force_string: bool = False


class FileParameter(Options, frozen=True):
    """One ``--set-file`` parameter: ``path`` is relative to the app directory."""

    name: str
    path: str


class HelmOptions(Options, frozen=True):
    """Helm options, with Argo CD's names and meaning.

    Precedence, highest first: ``parameters`` / ``fileParameters``, ``valuesObject`` (which
    replaces ``values`` when both are set, as in Argo CD), ``values``, ``valueFiles`` (later
    files win), the chart's own ``values.yaml``.

    Repository credentials (``username``, ``password``, ``passCredentials``) are the operator's
    (:mod:`kiln.core.trust`): from kiln.yaml or a plugin parameter they are refused unless the
    operator allows them by name (``KILN_ALLOW_APP_SETTINGS=helm.password``).
    """

    guarded = MappingProxyType({"username": Guard.ROUTE, "password": Guard.ROUTE,
                                "passCredentials": Guard.ROUTE})

    release_name: str = ""
    namespace: str = ""
    value_files: list[str] = msgspec.field(default_factory=list)
    ignore_missing_value_files: bool = False
    values: str = ""
    values_object: dict[str, Any] | None = None
    parameters: list[Parameter] = msgspec.field(default_factory=list)
    file_parameters: list[FileParameter] = msgspec.field(default_factory=list)
    skip_crds: bool = False
    skip_tests: bool = False
    skip_schema_validation: bool = False
    pass_credentials: bool = False
    repo_url: str = msgspec.field(default="", name="repoURL")
    chart: str = ""
    version: str = ""
    username: str = ""
    password: str = ""
    plain_http: bool = False
    insecure_skip_tls_verify: bool = False
    timeout: float | None = None
    max_chart_bytes: int = DEFAULT_MAX_CHART_BYTES
