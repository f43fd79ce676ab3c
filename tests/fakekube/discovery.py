"""Discovery documents: ``/version``, legacy ``/api``/``/apis``/group-version lists, and the
aggregated ``APIGroupDiscoveryList`` (apidiscovery.k8s.io v2 and v2beta1) when asked for it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tests.fakekube.kinds import ALL_VERBS, ResourceType, version_priority

if TYPE_CHECKING:
    from tests.fakekube.cluster import Cluster, Response

SUB_VERBS = ("get", "patch", "update")


def _groups(types: Iterable[ResourceType]) -> dict[str, list[str]]:
    """group -> versions, preferred (highest) first; the core group is ``""``."""
    out: dict[str, list[str]] = {}
    for t in types:
        versions = out.setdefault(t.group, [])
        if t.version not in versions:
            versions.append(t.version)
    for versions in out.values():
        versions.sort(key=version_priority, reverse=True)
    return out


def _hash(t: ResourceType) -> str:
    return hashlib.sha256(f"{t.group}/{t.version}/{t.plural}".encode()).hexdigest()[:12]


def _resource_entry(t: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": t.plural, "singularName": t.singular,
                             "namespaced": t.namespaced, "kind": t.kind,
                             "verbs": list(ALL_VERBS)}
    if t.short_names:
        entry["shortNames"] = list(t.short_names)
    if t.categories:
        entry["categories"] = list(t.categories)
    entry["storageVersionHash"] = _hash(t)
    return entry


def resource_list(types: Sequence[ResourceType], group_version: str) -> dict[str, Any]:
    """The legacy ``APIResourceList`` of one group-version (subresources as ``plural/status``)."""
    resources: list[dict[str, Any]] = []
    for t in types:
        resources.append(_resource_entry(t))
        if t.status:
            resources.append({"name": f"{t.plural}/status", "singularName": "",
                              "namespaced": t.namespaced, "kind": t.kind,
                              "verbs": list(SUB_VERBS)})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": resources}


def _gv(group: str, version: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/{version}", "version": version}


def api_group(group: str, versions: Sequence[str]) -> dict[str, Any]:
    """One ``APIGroup`` entry (as /apis lists it and /apis/<group> serves it)."""
    return {"name": group, "versions": [_gv(group, v) for v in versions],
            "preferredVersion": _gv(group, versions[0])}


def _aggregated_resource(t: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": t.plural,
        "responseKind": {"group": t.group, "version": t.version, "kind": t.kind},
        "scope": "Namespaced" if t.namespaced else "Cluster",
        "singularResource": t.singular, "verbs": list(ALL_VERBS)}
    if t.short_names:
        entry["shortNames"] = list(t.short_names)
    if t.categories:
        entry["categories"] = list(t.categories)
    if t.status:
        entry["subresources"] = [{
            "subresource": "status",
            "responseKind": {"group": t.group, "version": t.version, "kind": t.kind},
            "verbs": list(SUB_VERBS)}]
    return entry


def aggregated(types: Sequence[ResourceType], core: bool, api_version: str) -> dict[str, Any]:
    """The aggregated ``APIGroupDiscoveryList`` for /api (``core``) or /apis."""
    items: list[dict[str, Any]] = []
    for group, versions in _groups(types).items():
        if (group == "") != core:
            continue
        meta: dict[str, Any] = {"creationTimestamp": None}
        if group:
            meta["name"] = group
        items.append({"metadata": meta, "versions": [
            {"version": v, "resources": [_aggregated_resource(t) for t in types
                                         if t.group == group and t.version == v],
             "freshness": "Current"} for v in versions]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {},
            "items": items}


def wants_aggregated(accept: str) -> str | None:
    """The apidiscovery version (``v2``/``v2beta1``) the Accept header asks for first, if any."""
    for option in accept.split(","):
        params = dict(p.strip().partition("=")[::2] for p in option.split(";")[1:])
        if params.get("g") == "apidiscovery.k8s.io" and params.get(
                "as") == "APIGroupDiscoveryList" and params.get("v") in ("v2", "v2beta1"):
            return params["v"]
    return None


def serve(cluster: Cluster, parts: list[str], accept: str) -> Response | None:
    """Answer a discovery GET (``parts`` = the path's segments), or None for other paths."""
    types = cluster.types()
    if parts == ["version"]:
        major, minor = cluster.version
        return 200, {"major": major, "minor": minor,
                     "emulationMajor": major, "emulationMinor": minor,
                     "minCompatibilityMajor": major, "minCompatibilityMinor": minor,
                     "gitVersion": f"v{major}.{minor}.0-fakekube",
                     "gitCommit": "0000000000000000000000000000000000000000",
                     "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                     "goVersion": "go1.25.0", "compiler": "gc", "platform": "linux/amd64"}, {}
    if parts in (["healthz"], ["readyz"], ["livez"]):
        return 200, "ok", {"Content-Type": "text/plain; charset=utf-8"}
    if parts in (["api"], ["apis"]):
        version = wants_aggregated(accept)
        core = parts == ["api"]
        if version is not None:
            ctype = (f"application/json;g=apidiscovery.k8s.io;v={version};"
                     "as=APIGroupDiscoveryList")
            return 200, aggregated(types, core, f"apidiscovery.k8s.io/{version}"), {
                "Content-Type": ctype}
        if core:
            return 200, {"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                         "serverAddress": cluster.address}]}, {}
        groups = [api_group(g, vs) for g, vs in _groups(types).items() if g]
        return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}, {}
    if parts == ["api", "v1"]:
        return 200, resource_list([t for t in types if t.group == ""], "v1"), {}
    if len(parts) == 2 and parts[0] == "apis":
        versions = _groups(types).get(parts[1])
        if not versions or not parts[1]:
            return None
        return 200, {"kind": "APIGroup", "apiVersion": "v1", **api_group(parts[1], versions)}, {}
    if len(parts) == 3 and parts[0] == "apis":
        group, version = parts[1], parts[2]
        chosen = [t for t in types if t.group == group and t.version == version]
        if not chosen:
            return None
        return 200, resource_list(chosen, f"{group}/{version}"), {}
    return None
