"""Shape checks on a kustomization's ``helmCharts`` entries, which kustomize hands to helm.

kustomize builds the ``helm pull`` and ``helm template`` command lines itself and puts the
release name and chart name there as positional arguments, so a ``releaseName`` such as
``--post-renderer=/bin/sh`` would become a helm flag. Every value of an entry that reaches
helm is checked here before kustomize runs (ConfigError naming the file and the field).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kiln.core import argv
from kiln.core.errors import ConfigError

_CHECKS = {
    "name": argv.chart_name,
    "releaseName": argv.release_name,
    "namespace": argv.dns_label,
    "version": argv.chart_version,
    "repo": argv.repo_url,
    "kubeVersion": argv.kube_version,
    "nameTemplate": argv.plain,
}


def check_chart(chart: Mapping[str, Any], kfile: Path) -> None:
    """Raise ConfigError (source: ``kfile``) unless every helm-bound field of ``chart`` has
    its shape: chart name, release name, namespace, version, repository URL (http, https or
    oci), kube version, API versions, name template."""
    where = str(kfile)
    label = chart.get("name") if isinstance(chart.get("name"), str) else "?"
    for key, check in _CHECKS.items():
        value = chart.get(key)
        if value is None or value == "":
            continue
        what = f"helmCharts[{argv.shown(str(label))}].{key}"
        if not isinstance(value, str):
            if key == "version" and isinstance(value, (int, float)):
                value = str(value)
            else:
                raise ConfigError(f"{what}: must be a string", source=where)
        check(value, what, source=where)
    apis = chart.get("apiVersions")
    if apis is not None:
        if not isinstance(apis, list):
            raise ConfigError(f"helmCharts[{argv.shown(str(label))}].apiVersions: must be a "
                              "list", source=where)
        for api in apis:
            argv.api_version(str(api), f"helmCharts[{argv.shown(str(label))}].apiVersions",
                             source=where)
