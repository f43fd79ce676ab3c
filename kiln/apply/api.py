"""The few API calls an apply needs, and API failures turned into one-line ApplyErrors.

:class:`Api` finds an object's resource through discovery and sends GET, server-side apply
(``PATCH`` with ``application/apply-patch+yaml``, ``fieldManager``, ``fieldValidation=Strict``
and, when asked, ``force=true`` / ``dryRun=All``) and DELETE (``propagationPolicy=Background``
with a uid precondition). Every failure is raised as an :class:`~kiln.core.errors.ApplyError`
naming the object (``Kind/namespace/name``) and never echoing a response body as it is: a
Secret's errors list only field paths and reasons; other messages go through the redactor.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kiln.apply.cluster import (
    REQUEST_TIMEOUT,
    Cluster,
    connection_error,
    request_errors,
    status_body,
)
from kiln.core.errors import ApplyError
from kiln.core.redact import Redactor

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
PAGE = 500
"""Objects per LIST page."""
IMMUTABLE_MARKERS = ("is immutable", "immutable field", "field is immutable")

SERVER_SET = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid",
              "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")
"""Metadata the server owns: stripped from what is sent, ignored when comparing."""


class ImmutableFieldError(ApplyError):
    """The API refused a change to a field that cannot change (recreate with ``--force``)."""

    def __init__(self, message: str, *, source: str, fields: tuple[str, ...]) -> None:
        super().__init__(message, source=source)
        self.fields = fields


def body_for_apply(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What is sent for ``obj``: without server-set metadata and (except on CRDs) status."""
    body = {k: v for k, v in obj.items() if k != "status" or
            obj.get("kind") == "CustomResourceDefinition"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_SET}
    body["metadata"] = meta
    return body


def comparable(obj: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``obj`` as the drift check compares it: no status, no server-set metadata."""
    if obj is None:
        return None
    out = {k: v for k, v in obj.items() if k != "status"}
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items()
                       if k not in SERVER_SET}
    return out


class Api:
    """Requests against one :class:`Cluster` on behalf of ``field_manager``."""

    def __init__(self, cluster: Cluster, field_manager: str = "kiln",
                 redactor: Redactor | None = None) -> None:
        if not field_manager or len(field_manager) > 128:
            raise ApplyError("a field manager is 1 to 128 characters",
                             source=f"--field-manager {field_manager[:40]!r}")
        self.cluster = cluster
        self.field_manager = field_manager
        self.redactor = redactor or Redactor()
        self._resources: dict[tuple[str, str], Any] = {}

    # -- discovery ------------------------------------------------------------------------

    def resource(self, api_version: str, kind: str, ref: str) -> Any:
        """The discovered resource of ``apiVersion``/``kind``; an unknown kind is an
        ApplyError naming ``ref``."""
        key = (api_version, kind)
        found = self._resources.get(key)
        if found is not None:
            return found
        from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError

        try:
            found = self.cluster.dynamic.resources.get(api_version=api_version, kind=kind)
        except (ResourceNotFoundError, ResourceNotUniqueError):
            raise ApplyError(f"the cluster has no kind {kind} in {api_version} (is its "
                             "CustomResourceDefinition installed?)", source=ref) from None
        except request_errors() as exc:
            raise self.failure(exc, "discover", None, ref) from None
        self._resources[key] = found
        return found

    def forget_resources(self) -> None:
        """Drop discovered kinds, here and in the client (after CRDs changed)."""
        self._resources.clear()
        self.cluster.refresh_discovery()

    def is_namespaced(self, api_version: str, kind: str, ref: str) -> bool:
        """Whether objects of that kind live in a namespace."""
        return bool(self.resource(api_version, kind, ref).namespaced)

    # -- requests -------------------------------------------------------------------------

    def _path(self, obj: Mapping[str, Any], ref: str) -> tuple[Any, str]:
        resource = self.resource(str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""),
                                 ref)
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") if resource.namespaced else None
        return resource, resource.path(name=meta.get("name"), namespace=namespace)

    def _send(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
              body: Any = None, content_type: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"query_params": list(query or []), "serialize": False,
                                  "_request_timeout": REQUEST_TIMEOUT}
        if content_type:
            params["content_type"] = content_type
        response = self.cluster.dynamic.request(method, path, body=body, **params)
        data = response.data
        if not data:
            return {}
        decoded = json.loads(data)
        return decoded if isinstance(decoded, dict) else {}

    def get(self, obj: Mapping[str, Any], ref: str) -> dict[str, Any] | None:
        """The live object (None when it does not exist)."""
        resource, path = self._path(obj, ref)
        try:
            return self._send("get", path)
        except request_errors() as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise self.failure(exc, "get", resource, ref, obj) from None

    def list(self, sample: Mapping[str, Any], namespace: str | None, selector: str,
             ref: str) -> list[dict[str, Any]]:
        """Every object of ``sample``'s kind (in ``namespace``) matching the label
        ``selector``, read in pages of :data:`PAGE`; each item gets its apiVersion and kind."""
        resource = self.resource(str(sample.get("apiVersion") or ""),
                                 str(sample.get("kind") or ""), ref)
        path = resource.path(namespace=namespace if resource.namespaced else None)
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = [("labelSelector", selector), ("limit", str(PAGE))]
            if token:
                query.append(("continue", token))
            try:
                page = self._send("get", path, query=query)
            except request_errors() as exc:
                raise self.failure(exc, "list", resource, ref, sample) from None
            for item in page.get("items") or []:
                if isinstance(item, dict):
                    items.append({"apiVersion": sample.get("apiVersion"),
                                  "kind": sample.get("kind"), **item})
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return items

    def apply(self, obj: Mapping[str, Any], ref: str, *, dry_run: bool = False,
              force: bool = False) -> dict[str, Any]:
        """Server-side apply ``obj`` (``dryRun=All`` when ``dry_run``); the server's answer."""
        resource, path = self._path(obj, ref)
        query = [("fieldManager", self.field_manager), ("fieldValidation", "Strict")]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        try:
            return self._send("patch", path, query=query, body=body_for_apply(obj),
                              content_type=APPLY_CONTENT_TYPE)
        except request_errors() as exc:
            raise self.failure(exc, "patch", resource, ref, obj) from None

    def delete(self, obj: Mapping[str, Any], ref: str, uid: str | None) -> bool:
        """Delete in the background, only the object with ``uid``; False when it was gone."""
        resource, path = self._path(obj, ref)
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions",
                                "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._send("delete", path, query=[("propagationPolicy", "Background")], body=body)
        except request_errors() as exc:
            if getattr(exc, "status", None) == 404:
                return False
            raise self.failure(exc, "delete", resource, ref, obj) from None
        return True

    # -- errors ---------------------------------------------------------------------------

    def failure(self, exc: BaseException, verb: str, resource: Any, ref: str,
                obj: Mapping[str, Any] | None = None) -> ApplyError:
        """The one-line ApplyError for a failed request (see the module docstring)."""
        status = getattr(exc, "status", None)
        what = _resource_name(resource)
        if not isinstance(status, int) or status == 0:
            lost = connection_error(exc, self.cluster.where)
            return ApplyError(f"{lost.message} ({self.cluster.where}) to {verb} {what}",
                              source=ref)
        meta = (obj or {}).get("metadata") or {}
        namespace = meta.get("namespace")
        where = f" in namespace {namespace}" if namespace and getattr(
            resource, "namespaced", False) else ""
        doc = status_body(exc)
        raw_details = doc.get("details")
        details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
        causes = [c for c in details.get("causes") or [] if isinstance(c, dict)]
        secret = (obj or {}).get("kind") == "Secret"
        if status == 401:
            return ApplyError(f"unauthorized (401): the cluster refused the credentials to "
                              f"{verb} {what}", source=ref)
        if status == 403:
            return ApplyError(f"forbidden (403): not allowed to {verb} {what}{where}",
                              source=ref)
        if status == 404 and details.get("kind") == "namespaces":
            return ApplyError(f"namespace {details.get('name') or namespace} does not exist",
                              source=ref)
        conflicts = [c for c in causes if c.get("reason") == "FieldManagerConflict"]
        if status == 409 and conflicts:
            return ApplyError(_conflict_text(conflicts), source=ref)
        message = "" if secret else self.redactor.redact(" ".join(
            str(doc.get("message") or "").split()))[:400]
        fields = tuple(str(c.get("field")) for c in causes if c.get("field"))
        text = message or str(doc.get("reason") or getattr(exc, "reason", "") or "error")
        if status in (409, 422) and any(m in str(doc.get("message") or "").lower()
                                        for m in IMMUTABLE_MARKERS):
            named = ", ".join(fields) or "a field"
            return ImmutableFieldError(
                f"cannot change immutable {named} (pass --force to delete and recreate it)",
                source=ref, fields=fields)
        if secret and causes:
            text = "; ".join(f"{c.get('field') or '?'}: {c.get('reason') or 'invalid'}"
                             for c in causes)
        elif secret:
            text = str(doc.get("reason") or "rejected")
        return ApplyError(f"{verb} {what} failed ({status}): {text}", source=ref)


def _conflict_text(causes: list[dict[str, Any]]) -> str:
    managers: dict[str, list[str]] = {}
    for cause in causes:
        message = str(cause.get("message") or "")
        manager = message.split('"')[1] if message.count('"') >= 2 else "another manager"
        managers.setdefault(manager, []).append(str(cause.get("field") or "?"))
    parts = [f"{', '.join(fields)} (owned by {manager!r})" for manager, fields in
             managers.items()]
    return (f"conflict (409): {'; '.join(parts)}; pass --force-conflicts to take them over")


def _resource_name(resource: Any) -> str:
    if resource is None:
        return "the API"
    group = getattr(resource, "group", "") or ""
    name = getattr(resource, "name", "") or getattr(resource, "kind", "?")
    return f"{name}.{group}" if group else str(name)
