"""The ``ConfigManagementPlugin`` that installs kiln as an Argo CD sidecar plugin.

Argo CD reads it from ``/home/argocd/cmp-server/config/plugin.yaml`` in the sidecar. It is not
a Kubernetes resource, only shaped like one (``apiVersion: argoproj.io/v1alpha1``).
"""

from __future__ import annotations

from typing import Any

import yaml

from kiln.cmp.parameters import static_announcements, table

PLUGIN_NAME = "kiln"
PLUGIN_FILE = "plugin.yaml"
CONFIGMAP_NAME = "kiln-cmp-plugin"


def plugin_config(executable: str = "kiln") -> dict[str, Any]:
    """The plugin configuration: ``generate`` runs ``kiln generate .``, discovery runs
    ``kiln cmp discover``, parameters are the static table (every parameter kiln and the
    loaded plugins declare) plus ``kiln cmp parameters``."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ConfigManagementPlugin",
        "metadata": {"name": PLUGIN_NAME},
        "spec": {
            "generate": {"command": [executable, "generate", "."]},
            "discover": {"find": {"command": [executable, "cmp", "discover"]}},
            "parameters": {
                "static": static_announcements(table()),
                "dynamic": {"command": [executable, "cmp", "parameters"]},
            },
            "preserveFileMode": False,
            "provideGitCreds": False,
        },
    }


class _Dumper(yaml.SafeDumper):
    """Safe dumper writing multi-line strings as literal blocks (readable ConfigMaps)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(data: Any) -> str:
    """Dump ``data`` as block YAML, keys in their order, multi-line strings as ``|`` blocks."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=100)


def plugin_yaml(executable: str = "kiln") -> str:
    """The ``plugin.yaml`` text."""
    return dump(plugin_config(executable))


def configmap_yaml(name: str = CONFIGMAP_NAME, namespace: str | None = None,
                   executable: str = "kiln") -> str:
    """A ConfigMap holding ``plugin.yaml`` under the key ``plugin.yaml``, to mount by subPath."""
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {"app.kubernetes.io/name": "kiln-cmp",
                          "app.kubernetes.io/part-of": "argocd"}
    return dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
                 "data": {PLUGIN_FILE: plugin_yaml(executable)}})
