"""Cluster access the way kubectl finds it, through the official ``kubernetes`` client.

Which configuration is used (client-go's loading rules):

1. ``--kubeconfig FILE`` (:attr:`ClusterOptions.kubeconfig`), alone;
2. else ``$KUBECONFIG``, a ``:``-separated list of files merged in order;
3. else ``~/.kube/config``;
4. else, when none of these exists and ``KUBERNETES_SERVICE_HOST``/``_PORT`` are set, the
   pod's service account (in-cluster: token, CA and namespace under
   ``/var/run/secrets/kubernetes.io/serviceaccount``).

``--context`` picks a kubeconfig context (default: its ``current-context``). The default
namespace is the context's ``namespace`` (in-cluster: the service account's), else
``default``. Nothing is written back to a kubeconfig (refreshed tokens stay in memory).

The ``kubernetes`` package is imported here and only here (and by the modules of
:mod:`kiln.apply` that need a live cluster), so ``kiln render`` never pays for it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from kiln.core.errors import ApplyError

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
REQUEST_TIMEOUT = (10.0, 60.0)
"""Connect and read timeouts of every API request, in seconds."""


@dataclass(frozen=True)
class ClusterOptions:
    """How to reach the cluster: a kubeconfig file (else ``$KUBECONFIG``, else
    ``~/.kube/config``, else in-cluster) and a context in it (else its current context)."""

    kubeconfig: str | None = None
    context: str | None = None


class Cluster:
    """One connection: an ``ApiClient``, a ``DynamicClient`` with its own discovery cache
    (private to this object, never shared through ``$TMPDIR``), and the default namespace.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, api_client: Any, namespace: str, where: str) -> None:
        from kubernetes.dynamic import DynamicClient

        self.api = api_client
        self.namespace = namespace
        self.where = where
        self._cache_dir = tempfile.mkdtemp(prefix="kiln-discovery-")
        try:
            self.dynamic = cast(Any, DynamicClient)(api_client, cache_file=os.path.join(
                self._cache_dir, "discovery.json"))
        except request_errors() as exc:
            self.close()
            raise connection_error(exc, where) from None

    def refresh_discovery(self) -> None:
        """Forget every discovered kind (after CRDs were established)."""
        self.dynamic.resources.invalidate_cache()

    def close(self) -> None:
        """Release the connection pool and the discovery cache."""
        shutil.rmtree(self._cache_dir, ignore_errors=True)
        close = getattr(self.api, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def request_errors() -> tuple[type[BaseException], ...]:
    """What a request can raise: an API error status, a transport failure, a bad answer."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    return (ApiException, HTTPError, OSError, ValueError)


def connection_error(exc: BaseException, where: str) -> ApplyError:
    """The one-line error for a cluster that could not be reached or refused discovery
    (no response body echoed)."""
    status = getattr(exc, "status", None)
    if status in (401, 403):
        word = "unauthorized" if status == 401 else "forbidden"
        return ApplyError(f"{word} ({status}): the cluster refused API discovery", source=where)
    if isinstance(status, int) and status:
        return ApplyError(f"API discovery failed ({status})", source=where)
    reason = type(exc).__name__
    inner = getattr(exc, "reason", None)
    if inner is not None and not isinstance(inner, str):
        reason = type(inner).__name__
    return ApplyError(f"cannot reach the cluster ({reason})", source=where)


def _kubeconfig_paths(options: ClusterOptions, env: Mapping[str, str]) -> list[str]:
    if options.kubeconfig:
        return [options.kubeconfig]
    listed = env.get("KUBECONFIG")
    if listed:
        return [p for p in listed.split(os.pathsep) if p]
    home = env.get("HOME") or os.path.expanduser("~")
    return [os.path.join(home, ".kube", "config")]


def connect(options: ClusterOptions, env: Mapping[str, str] | None = None) -> Cluster:
    """Open a :class:`Cluster` as kubectl would (see the module docstring).

    Raises ApplyError for a missing or unreadable kubeconfig, an unknown context, or a
    cluster that does not answer discovery.
    """
    from kubernetes import client

    env = os.environ if env is None else env
    configuration = client.Configuration()
    paths = _kubeconfig_paths(options, env)
    existing = [p for p in paths if os.path.isfile(p)]
    if options.kubeconfig and not existing:
        raise ApplyError("no such kubeconfig file", source=f"--kubeconfig {options.kubeconfig}")
    if existing:
        namespace, where = _from_kubeconfig(configuration, existing, options.context)
    elif env.get("KUBERNETES_SERVICE_HOST") and not options.context:
        namespace, where = _in_cluster(configuration, env)
    else:
        raise ApplyError("no kubeconfig found and not running in a cluster (set KUBECONFIG "
                         "or pass --kubeconfig)", source=os.pathsep.join(paths))
    configuration.retries = 0
    api = client.ApiClient(configuration)
    return Cluster(api, namespace, where)


def _from_kubeconfig(configuration: Any, paths: list[str], context: str | None
                     ) -> tuple[str, str]:
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.kube_config import list_kube_config_contexts, load_kube_config

    joined = os.pathsep.join(paths)
    try:
        contexts, current = cast(Any, list_kube_config_contexts)(config_file=joined)
        name = context or (current or {}).get("name")
        chosen = next((c for c in contexts or [] if c.get("name") == name), None)
        if chosen is None:
            what = f"no context {name!r}" if name else "no current-context"
            raise ApplyError(f"{what} in the kubeconfig", source=joined)
        cast(Any, load_kube_config)(config_file=joined, context=name,
                                    client_configuration=configuration, persist_config=False)
    except ConfigException as exc:
        raise ApplyError(f"unusable kubeconfig: {_first_line(exc)}", source=joined) from None
    except (OSError, ValueError) as exc:
        raise ApplyError(f"unreadable kubeconfig ({type(exc).__name__})", source=joined) from None
    namespace = str((chosen.get("context") or {}).get("namespace") or "default")
    return namespace, f"context {name}"


def _in_cluster(configuration: Any, env: Mapping[str, str]) -> tuple[str, str]:
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.incluster_config import InClusterConfigLoader

    base = Path(SERVICE_ACCOUNT_DIR)
    try:
        cast(Any, InClusterConfigLoader)(token_filename=str(base / "token"),
                              cert_filename=str(base / "ca.crt"),
                              environ=dict(env)).load_and_set(configuration)
    except ConfigException as exc:
        raise ApplyError(f"in-cluster configuration unusable: {_first_line(exc)}",
                         source=SERVICE_ACCOUNT_DIR) from None
    try:
        namespace = (base / "namespace").read_text().strip() or "default"
    except OSError:
        namespace = "default"
    return namespace, "in-cluster service account"


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200]


def status_body(exc: BaseException) -> dict[str, Any]:
    """The Kubernetes ``Status`` an API error carries (empty when there is none)."""
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body:
        return {}
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
