"""``Status`` error bodies shaped like the API server's (``k8s.io/apimachinery`` errors.go).

Every failure the fake returns is an :class:`ApiError` carrying the exact JSON the real server
would send: ``{"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
"message", "reason", "details", "code"}``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


class ApiError(Exception):
    """A request the fake refuses; ``body`` is the Status object, ``code`` its HTTP status."""

    def __init__(self, code: int, reason: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                     "status": "Failure", "message": message}
        if reason:  # StatusReasonUnknown is "" and omitted, as the API omits it
            self.body["reason"] = reason
        if details is not None:
            self.body["details"] = details
        self.body["code"] = code


def _details(name: str, group: str, plural: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = plural
    return details


def _resource(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> ApiError:
    """404 ``<plural>[.<group>] "<name>" not found``."""
    return ApiError(404, "NotFound", f'{_resource(group, plural)} "{name}" not found',
                    _details(name, group, plural))


def not_found_path() -> ApiError:
    """404 for a path no resource serves (the API's bare ``the server could not find ...``)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource",
                    {"causes": [{"reason": "UnexpectedServerResponse",
                                 "message": "404 page not found"}]})


def already_exists(group: str, plural: str, name: str) -> ApiError:
    """409 AlreadyExists."""
    return ApiError(409, "AlreadyExists", f'{_resource(group, plural)} "{name}" already exists',
                    _details(name, group, plural))


def conflict(group: str, plural: str, name: str, why: str) -> ApiError:
    """409 Conflict ``Operation cannot be fulfilled on <res> "<name>": <why>``."""
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {_resource(group, plural)} "{name}": {why}',
                    _details(name, group, plural))


MODIFIED = ("the object has been modified; please apply your changes to the latest version "
            "and try again")


def apply_conflict(conflicts: Sequence[tuple[str, str]]) -> ApiError:
    """409 for an apply that touches fields other managers own, with one cause per field.

    ``conflicts`` are ``(printed manager, path)`` pairs; the printed manager is already quoted
    the way the API prints it (``"kubectl"``, ``"kubectl" using apps/v1``).
    """
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {manager}",
               "field": path} for manager, path in conflicts]
    if len(conflicts) == 1:
        manager, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {manager}: {path}"
    else:
        by_manager: dict[str, list[str]] = {}
        for manager, path in conflicts:
            by_manager.setdefault(manager, []).append(path)
        lines: list[str] = []
        for manager in sorted(by_manager):
            lines.append(f"conflicts with {manager}:")
            lines += [f"- {path}" for path in by_manager[manager]]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})


def go_value(value: Any) -> str:
    """A value as the API's ``Invalid value:`` prints it (JSON here; Go prints ``%#v``)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def invalid(qualified_kind: str, name: str, group: str, causes: Sequence[tuple[str, str, str]],
            ) -> ApiError:
    """422 Invalid: ``<Kind.group> "<name>" is invalid: <field>: <message>[, ...]``.

    ``causes`` are ``(reason, field, message)`` such as ``("FieldValueInvalid", "spec.selector",
    "Invalid value: {...}: field is immutable")``.
    """
    joined = ", ".join(f"{fld}: {msg}" for _, fld, msg in causes)
    if len(causes) > 1:
        joined = "[" + joined + "]"
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = qualified_kind.split(".", 1)[0]
    details["causes"] = [{"reason": reason, "message": msg, "field": fld}
                         for reason, fld, msg in causes]
    return ApiError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {joined}', details)


def bad_request(message: str) -> ApiError:
    """400 BadRequest with no details."""
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str) -> ApiError:
    """405 MethodNotAllowed."""
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media(content_type: str) -> ApiError:
    """415 UnsupportedMediaType (the fake reads JSON and YAML only, never protobuf)."""
    return ApiError(415, "UnsupportedMediaType",
                    f'the body of the request was in an unknown format - accepted media types '
                    f'include: application/json, application/yaml, application/json-patch+json, '
                    f'application/merge-patch+json, application/strategic-merge-patch+json, '
                    f'application/apply-patch+yaml (the fake does not decode "{content_type}")')


def unauthorized() -> ApiError:
    """401 Unauthorized, exactly as kube-apiserver words it."""
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(user: str, verb: str, group: str, plural: str, name: str,
              namespace: str | None) -> ApiError:
    """403 Forbidden with the RBAC authorizer's wording."""
    what = f'{_resource(group, plural)} "{name}"' if name else _resource(group, plural)
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    message = (f'{what} is forbidden: User "{user}" cannot {verb} resource "{plural}" in API '
               f'group "{group}"{where}')
    return ApiError(403, "Forbidden", message, _details(name, group, plural))


def internal(message: str) -> ApiError:
    """500 InternalError ``Internal error occurred: <message>``."""
    return ApiError(500, "InternalError", f"Internal error occurred: {message}",
                    {"causes": [{"message": message}]})


def for_code(code: int, message: str, reason: str | None = None) -> ApiError:
    """A Status for an injected fault: the reason the API uses for ``code`` unless given."""
    reasons = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
               405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 422: "Invalid",
               429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
               504: "Timeout"}
    return ApiError(code, reason or reasons.get(code, "Unknown"), message)
