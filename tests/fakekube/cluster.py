"""The fake cluster's state and verbs: storage, resourceVersions, CRDs, writes, deletes, lists.

:class:`Cluster` is transport-free: :meth:`Cluster.handle` takes a parsed :class:`Request` and
returns ``(code, body, headers)``; :mod:`tests.fakekube.server` puts HTTP around it. One lock
serialises every request, so the state is consistent under a threaded server.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from tests.fakekube import controllers, discovery, ssa, strategy
from tests.fakekube.jsoncopy import clone
from tests.fakekube.kinds import BUILTINS, ResourceType, types_from_crd
from tests.fakekube.patches import json_patch, load_json_or_yaml, merge_patch
from tests.fakekube.selectors import field_matcher, label_matcher
from tests.fakekube.status import (
    MODIFIED,
    ApiError,
    already_exists,
    apply_conflict,
    bad_request,
    conflict,
    forbidden,
    invalid,
    method_not_allowed,
    not_found,
    not_found_path,
    unsupported_media,
)
from tests.fakekube.watch import WATCH_TIMEOUT, WatchStream

Key = tuple[str, str, str, str]
"""(group, plural, namespace, name): where an object is stored."""

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

Response = tuple[int, Any, dict[str, str]]

EVENT_HISTORY = 20000
"""Watch events kept; a watch from an older resourceVersion gets 410 Expired."""


@dataclass
class Request:
    """One API request as the cluster sees it."""

    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    user: str = "system:anonymous"

    def q(self, name: str, default: str = "") -> str:
        """The last value of query parameter ``name``."""
        values = self.query.get(name)
        return values[-1] if values else default

    @property
    def content_type(self) -> str:
        """The media type of the body, without parameters."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@dataclass
class Target:
    """What a resource path names."""

    rtype: ResourceType
    namespace: str
    name: str
    subresource: str


def rfc3339(ts: float) -> str:
    """A Kubernetes timestamp (second precision, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass
class _Rule:
    verb: str
    group: str
    plural: str
    namespace: str | None


class Cluster:
    """All state of one fake API server, and the verbs on it.

    Knobs (plain attributes, changeable while serving): ``crd_delay`` (seconds between a CRD's
    creation and its kinds being served; 0 = at once), ``rollout_delay`` (seconds before a
    workload's controller status appears; 0 = in the same write), ``version`` (what /version
    reports).
    """

    def __init__(self, *, crd_delay: float = 0.0, rollout_delay: float = 0.0,
                 version: tuple[str, str] = ("1", "37"), clock: Callable[[], float] = time.time,
                 ) -> None:
        self.lock = threading.RLock()
        self.crd_delay = crd_delay
        self.rollout_delay = rollout_delay
        self.version = version
        self.clock = clock
        self.address = "127.0.0.1:0"
        self._rv = 0
        self._objects: dict[Key, dict[str, Any]] = {}
        self._custom: dict[str, list[ResourceType]] = {}
        self._pending: list[tuple[float, Callable[[], None]]] = []
        self._holds: dict[tuple[str, str, str], str] = {}
        self._rules: list[_Rule] = []
        self._next_ip = 10
        self.changed = threading.Condition(self.lock)
        """Notified on every stored change (watches wait on it)."""
        self.closed = False
        self._events: list[tuple[int, str, Key, dict[str, Any]]] = []
        self._events_floor = 0
        with self.lock:
            for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
                self._seed_namespace(name)

    # ----- state helpers -------------------------------------------------------------------

    def _now(self) -> str:
        return rfc3339(self.clock())

    def _bump(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _allocate_ip(self) -> str:
        self._next_ip += 1
        return f"10.96.{self._next_ip // 250}.{self._next_ip % 250 + 1}"

    def _seed_namespace(self, name: str) -> None:
        rtype = self.find_kind("", "Namespace")
        assert rtype is not None
        obj = {"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": name, "uid": str(uuid.uuid4()),
                            "resourceVersion": self._bump(),
                            "creationTimestamp": self._now()}}
        strategy.apply_defaults(obj, rtype, None, self._allocate_ip)
        self._objects[("", "namespaces", "", name)] = obj
        self._emit("ADDED", ("", "namespaces", "", name))

    def _emit(self, kind: str, key: Key, obj: dict[str, Any] | None = None, *,
              rtype: ResourceType | None = None) -> None:
        """Record a watch event for the object at ``key`` (or ``obj``, for a deletion)."""
        if obj is None:
            obj = self._objects[key]
        if rtype is None:
            rtype = next((t for t in self.types() if (t.group, t.plural) == key[:2]), None)
        shown = self._present(rtype, obj) if rtype is not None else clone(obj)
        self._events.append((int(obj["metadata"]["resourceVersion"]), kind, key, shown))
        if len(self._events) > EVENT_HISTORY:
            dropped = self._events[: len(self._events) - EVENT_HISTORY]
            self._events = self._events[len(dropped):]
            self._events_floor = dropped[-1][0]
        self.changed.notify_all()

    def events_since(self, rv: int) -> tuple[list[tuple[int, str, Key, dict[str, Any]]], bool]:
        """Watch events after ``rv`` (call with :attr:`lock` held); False when ``rv`` is older
        than the history kept (the API's 410 Gone)."""
        if rv < self._events_floor:
            return [], False
        return [e for e in self._events if e[0] > rv], True

    @property
    def resource_version(self) -> int:
        """The latest resourceVersion handed out."""
        return self._rv

    def close(self) -> None:
        """End every open watch (the server is stopping)."""
        with self.lock:
            self.closed = True
            self.changed.notify_all()

    def types(self) -> list[ResourceType]:
        """Every resource type served right now (built-ins, then established CRDs' kinds)."""
        out = list(BUILTINS)
        for types in self._custom.values():
            out += types
        return out

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The served type at ``group/version`` named ``plural``, if any."""
        for t in self.types():
            if (t.group, t.version, t.plural) == (group, version, plural):
                return t
        return None

    def find_kind(self, group: str, kind: str) -> ResourceType | None:
        """The first served type of ``kind`` in ``group`` (any version)."""
        for t in self.types():
            if (t.group, t.kind) == (group, kind):
                return t
        return None

    def _key(self, rtype: ResourceType, namespace: str, name: str) -> Key:
        return (rtype.group, rtype.plural, namespace if rtype.namespaced else "", name)

    def _present(self, rtype: ResourceType, obj: Mapping[str, Any]) -> dict[str, Any]:
        """A stored object as served at ``rtype``'s version (CRDs convert with strategy None)."""
        out: dict[str, Any] = {"apiVersion": rtype.api_version, "kind": obj.get("kind"),
                               "metadata": clone(obj.get("metadata") or {})}
        for key, value in obj.items():
            if key not in out and key != "status":
                out[key] = clone(value)
        if "status" in obj:
            out["status"] = clone(obj["status"])
        return out

    def tick(self) -> None:
        """Run the timed events (CRD establishment, rollouts) that are due."""
        with self.lock:
            now = self.clock()
            due = [e for e in self._pending if e[0] <= now]
            self._pending = [e for e in self._pending if e[0] > now]
            for _, event in sorted(due, key=lambda e: e[0]):
                event()

    def settle(self) -> None:
        """Run every pending timed event now, whatever its due time."""
        with self.lock:
            pending, self._pending = self._pending, []
            for _, event in sorted(pending, key=lambda e: e[0]):
                event()

    # ----- test hooks ----------------------------------------------------------------------

    def objects(self) -> list[dict[str, Any]]:
        """Deep copies of every stored object, sorted by group, plural, namespace, name."""
        with self.lock:
            self.tick()
            return [clone(self._objects[k]) for k in sorted(self._objects)]

    def get_object(self, kind: str, name: str, namespace: str = "", group: str | None = None
                   ) -> dict[str, Any] | None:
        """A deep copy of the stored object of ``kind`` (any group unless given), or None."""
        with self.lock:
            self.tick()
            for (g, plural, ns, n), obj in self._objects.items():
                if obj.get("kind") == kind and n == name and ns == namespace and (
                        group is None or g == group):
                    del plural
                    return clone(obj)
            return None

    def hold(self, kind: str, name: str, namespace: str = "", mode: str = "stuck") -> None:
        """Keep a workload's status in ``mode`` (``stuck``: InProgress; ``failed``) until
        :meth:`release`; applies to objects written from now on and to the live one."""
        if mode not in controllers.MODES:
            raise ValueError(f"mode must be one of {controllers.MODES}")
        with self.lock:
            self._holds[(kind, namespace, name)] = mode
            self._reconcile_status(kind, name, namespace)

    def release(self, kind: str, name: str, namespace: str = "") -> None:
        """Let a held workload roll out (its ready status appears after ``rollout_delay``)."""
        with self.lock:
            self._holds.pop((kind, namespace, name), None)
            self._schedule_rollout(kind, name, namespace, in_write=False)

    def forbid(self, verb: str, plural: str, group: str = "", namespace: str | None = None
               ) -> None:
        """Answer 403 (the RBAC wording) to ``verb`` on ``group/plural`` (in ``namespace``)."""
        with self.lock:
            self._rules.append(_Rule(verb, group, plural, namespace))

    def allow_all(self) -> None:
        """Drop every :meth:`forbid` rule."""
        with self.lock:
            self._rules.clear()

    # ----- request entry -------------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        """Serve one request; every refusal is the API's Status body with its code."""
        with self.lock:
            self.tick()
            try:
                return self._route(req)
            except ApiError as exc:
                return exc.code, exc.body, {}

    def _route(self, req: Request) -> Response:
        parts = [p for p in req.path.split("/") if p]
        if req.method == "GET":
            served = discovery.serve(self, parts, req.headers.get("accept", ""))
            if served is not None:
                return served
        if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
            return self._resource(req, "", "v1", parts[2:])
        if len(parts) >= 3 and parts[0] == "apis":
            return self._resource(req, parts[1], parts[2], parts[3:])
        raise not_found_path()

    def _target(self, group: str, version: str, rest: list[str]) -> tuple[Target, bool]:
        """The type, namespace, name and subresource a path names; bool = is a collection."""
        namespace = ""
        if (len(rest) >= 3 and rest[0] == "namespaces"
                and (t := self.find(group, version, rest[2])) is not None and t.namespaced):
            namespace, rest = rest[1], rest[2:]
        if not rest:
            raise not_found_path()
        rtype = self.find(group, version, rest[0])
        if rtype is None:
            raise not_found_path()
        if rtype.namespaced is False and namespace:
            raise not_found_path()
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if rtype.namespaced and name and not namespace:
            raise not_found_path()
        if len(rest) > 3 or (sub and sub != "status"):
            raise not_found_path()
        if sub == "status" and not rtype.status:
            raise not_found_path()
        return Target(rtype, namespace, name, sub), not name

    def _check_rbac(self, req: Request, verb: str, target: Target) -> None:
        for rule in self._rules:
            if (rule.verb in (verb, "*") and rule.plural in (target.rtype.plural, "*")
                    and rule.group in (target.rtype.group, "*")
                    and (rule.namespace is None or rule.namespace == target.namespace)):
                raise forbidden(req.user, verb, target.rtype.group, target.rtype.plural,
                                target.name, target.namespace or None)

    def _resource(self, req: Request, group: str, version: str, rest: list[str]) -> Response:
        target, collection = self._target(group, version, rest)
        method = req.method
        if collection:
            if method == "GET":
                verb = "watch" if req.q("watch") in ("true", "1") else "list"
                self._check_rbac(req, verb, target)
                if verb == "watch":
                    return 200, self._watch(req, target), {}
                return 200, self._list(req, target), {}
            if method == "POST":
                self._check_rbac(req, "create", target)
                return self._create(req, target)
            if method == "DELETE":
                self._check_rbac(req, "deletecollection", target)
                return 200, self._delete_collection(req, target), {}
            raise method_not_allowed(f"{method} is not supported on a collection")
        if method == "GET":
            self._check_rbac(req, "get", target)
            obj = self._objects.get(self._key(target.rtype, target.namespace, target.name))
            if obj is None:
                raise not_found(group, target.rtype.plural, target.name)
            return 200, self._present(target.rtype, obj), {}
        if method == "PUT":
            self._check_rbac(req, "update", target)
            return self._update(req, target)
        if method == "PATCH":
            self._check_rbac(req, "patch", target)
            return self._patch(req, target)
        if method == "DELETE" and not target.subresource:
            self._check_rbac(req, "delete", target)
            return self._delete(req, target)
        raise method_not_allowed(f"{method} is not supported here")

    # ----- reading -------------------------------------------------------------------------

    def _list(self, req: Request, target: Target) -> dict[str, Any]:
        rtype = target.rtype
        labels = label_matcher(req.q("labelSelector")) if req.q("labelSelector") else None
        fields = field_matcher(req.q("fieldSelector")) if req.q("fieldSelector") else None
        keys = sorted(k for k in self._objects
                      if k[0] == rtype.group and k[1] == rtype.plural
                      and (not target.namespace or k[2] == target.namespace))
        items = []
        for k in keys:
            obj = self._objects[k]
            if (labels and not labels(obj)) or (fields and not fields(obj)):
                continue
            items.append((k, obj))
        token = req.q("continue")
        if token:
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(token.encode())))
            except ValueError:
                raise bad_request("continue key is not valid") from None
            items = [(k, o) for k, o in items if k > after]
        meta: dict[str, Any] = {"resourceVersion": str(self._rv)}
        limit = int(req.q("limit") or 0)
        if limit and len(items) > limit:
            last = items[limit - 1][0]
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(list(last)).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        served = []
        for _, obj in items:
            item = self._present(rtype, obj)
            if not rtype.crd:
                item.pop("apiVersion", None)
                item.pop("kind", None)
            served.append(item)
        return {"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version,
                "metadata": meta, "items": served}

    def _watch(self, req: Request, target: Target) -> WatchStream:
        labels = label_matcher(req.q("labelSelector")) if req.q("labelSelector") else None
        fields = field_matcher(req.q("fieldSelector")) if req.q("fieldSelector") else None
        rtype = target.rtype

        def matches(key: Key, obj: Mapping[str, Any]) -> bool:
            return (key[:2] == (rtype.group, rtype.plural)
                    and (not target.namespace or key[2] == target.namespace)
                    and not (labels and not labels(obj)) and not (fields and not fields(obj)))

        rv_param = req.q("resourceVersion")
        initial = req.q("sendInitialEvents") == "true" or rv_param in ("", "0")
        try:
            cursor = int(rv_param) if rv_param not in ("", "0") else self._rv
        except ValueError:
            raise bad_request(f"invalid resourceVersion {rv_param!r}") from None
        first: list[dict[str, Any]] = []
        if initial:
            for key in sorted(self._objects):
                obj = self._objects[key]
                if matches(key, obj):
                    first.append({"type": "ADDED", "object": self._present(rtype, obj)})
            if req.q("sendInitialEvents") == "true":
                first.append({"type": "BOOKMARK", "object": {
                    "kind": rtype.kind, "apiVersion": rtype.api_version,
                    "metadata": {"resourceVersion": str(self._rv), "annotations": {
                        "k8s.io/initial-events-end": "true"}}}})
        timeout = float(req.q("timeoutSeconds") or WATCH_TIMEOUT)
        return WatchStream(self, matches, cursor, first, self.clock() + timeout, rtype)

    # ----- body parsing --------------------------------------------------------------------

    @staticmethod
    def _json_body(req: Request) -> Any:
        ctype = req.content_type
        if ctype in ("application/yaml", "application/x-yaml"):
            try:
                return yaml.safe_load(req.body.decode() or "null")
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise bad_request(f"error decoding YAML: {exc}") from None
        if ctype and not ctype.endswith("json"):
            raise unsupported_media(ctype)
        try:
            return json.loads(req.body or b"null")
        except ValueError as exc:
            raise bad_request(f"error decoding request body: {exc}") from None

    def _object_body(self, req: Request, target: Target, *, apply: bool = False
                     ) -> dict[str, Any]:
        body = load_json_or_yaml(req.body) if apply else self._json_body(req)
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON or YAML object")
        rtype = target.rtype
        if apply or body.get("apiVersion") is not None:
            if not body.get("kind"):
                raise bad_request(f"Object 'Kind' is missing in '{json.dumps(body)[:200]}'")
            if body.get("apiVersion") != rtype.api_version:
                raise bad_request(f"the API version in the data ({body.get('apiVersion')}) does "
                                  f"not match the expected API version ({rtype.api_version})")
            if body.get("kind") != rtype.kind:
                raise bad_request(f"the kind in the data ({body.get('kind')}) does not match "
                                  f"the expected kind ({rtype.kind})")
        meta = body.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        meta = body.setdefault("metadata", {})
        if target.name and meta.get("name") and meta["name"] != target.name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the "
                              f"name on the URL ({target.name})")
        if rtype.namespaced:
            if meta.get("namespace") and target.namespace and (
                    meta["namespace"] != target.namespace):
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            if target.namespace:
                meta["namespace"] = target.namespace
        else:
            meta.pop("namespace", None)
        if target.name:
            meta["name"] = target.name
        return body

    def _dry_run(self, req: Request, options: Mapping[str, Any] | None = None) -> bool:
        values = list(req.query.get("dryRun", []))
        if options:
            values += list(options.get("dryRun") or [])
        for v in values:
            if v != "All":
                raise bad_request(f'dryRun: Unsupported value: "{v}": supported values: "All"')
        return bool(values)

    def _validation(self, req: Request) -> str:
        mode = req.q("fieldValidation", "Warn")
        if mode not in ("Strict", "Warn", "Ignore"):
            raise bad_request(f'fieldValidation: Unsupported value: "{mode}": supported values:'
                              ' "Ignore", "Strict", "Warn"')
        return mode

    def _manager(self, req: Request, *, required: bool) -> str:
        manager = req.q("fieldManager")
        if required and not manager:
            raise invalid("PatchOptions.meta.k8s.io", "", "meta.k8s.io",
                          [("FieldValueRequired", "fieldManager",
                            "Required value: is required for apply patch")])
        if len(manager) > 128:
            raise invalid("PatchOptions.meta.k8s.io", "", "meta.k8s.io",
                          [("FieldValueTooLong", "fieldManager",
                            "Too long: may not be more than 128 bytes")])
        if not manager:
            agent = req.headers.get("user-agent", "")
            manager = agent.split("/", 1)[0] or "unknown"
        return manager

    def _strictness(self, req: Request, obj: dict[str, Any], rtype: ResourceType, *,
                    apply: bool, headers: dict[str, str]) -> None:
        unknown = strategy.unknown_fields(obj, rtype)
        mode = self._validation(req)
        if not unknown:
            return
        if mode == "Strict" or apply:
            raise strategy.strict_error(unknown, rtype, obj, apply)
        strategy.drop_unknown(obj, unknown)
        if mode == "Warn":
            headers["Warning"] = ", ".join(
                f'299 - "unknown field \\"{u.lstrip(".")}\\""' for u in unknown)

    # ----- writing -------------------------------------------------------------------------

    def _check_namespace(self, target: Target) -> None:
        if target.rtype.namespaced:
            if not target.namespace:
                raise bad_request("the server could not find the requested resource: a "
                                  "namespaced object needs a namespace")
            if ("", "namespaces", "", target.namespace) not in self._objects:
                raise not_found("", "namespaces", target.namespace)

    def _stamp_new(self, obj: dict[str, Any], rtype: ResourceType) -> None:
        meta = obj["metadata"]
        for key in ("uid", "resourceVersion", "creationTimestamp", "generation",
                    "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self._now()
        if rtype.generation:
            meta["generation"] = 1

    @staticmethod
    def _carry(obj: dict[str, Any], old: Mapping[str, Any], rtype: ResourceType,
               subresource: str) -> None:
        """Keep what a write may not change: system metadata, and status or the rest."""
        meta = obj.setdefault("metadata", {})
        old_meta = old.get("metadata") or {}
        for key in ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                    "deletionGracePeriodSeconds", "namespace", "name"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if subresource == "status":
            status = obj.get("status")
            new = clone(dict(old))
            new["metadata"]["managedFields"] = meta.get("managedFields", [])
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            obj.clear()
            obj.update(new)
        elif rtype.status:
            if "status" in old:
                obj["status"] = clone(old["status"])
            else:
                obj.pop("status", None)

    @staticmethod
    def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        def norm(o: Mapping[str, Any]) -> Any:
            c = clone(dict(o))
            meta = c.get("metadata") or {}
            meta.pop("resourceVersion", None)
            for e in meta.get("managedFields") or []:
                if isinstance(e, dict):
                    e.pop("time", None)
            return c
        return bool(norm(a) == norm(b))

    def _commit(self, target: Target, obj: dict[str, Any], old: dict[str, Any] | None, *,
                dry_run: bool) -> dict[str, Any]:
        """Store ``obj`` (unless dry run or unchanged); returns the object as served."""
        rtype = target.rtype
        if old is not None and self._same(obj, old):
            return self._present(rtype, old)
        if rtype.generation and old is not None and not target.subresource:
            spec_new = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
            spec_old = {k: v for k, v in old.items() if k not in ("metadata", "status")}
            if spec_new != spec_old:
                obj["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if dry_run:
            if old is not None:
                obj["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
            else:
                obj["metadata"].pop("resourceVersion", None)
            return self._present(rtype, obj)
        name = obj["metadata"]["name"]
        key = self._key(rtype, target.namespace, name)
        finishing = (obj["metadata"].get("deletionTimestamp")
                     and not obj["metadata"].get("finalizers"))
        obj["metadata"]["resourceVersion"] = self._bump()
        self._objects[key] = obj
        if finishing:
            self._remove(key, "Background")
            return self._present(rtype, obj)
        self._after_write(rtype, key, old)
        self._emit("ADDED" if old is None else "MODIFIED", key)
        return self._present(rtype, self._objects[key])

    def _create(self, req: Request, target: Target) -> Response:
        rtype = target.rtype
        headers: dict[str, str] = {}
        obj = self._object_body(req, target)
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = str(meta["generateName"]) + secrets.token_hex(3)[:5]
        self._strictness(req, obj, rtype, apply=False, headers=headers)
        dry_run = self._dry_run(req)
        manager = self._manager(req, required=False)
        self._check_namespace(target)
        name = str(meta.get("name", ""))
        if name and self._key(rtype, target.namespace, name) in self._objects:
            raise already_exists(rtype.group, rtype.plural, name)
        if rtype.status:
            obj.pop("status", None)
        self._stamp_new(obj, rtype)
        self._prepare_managed(obj, None)
        strategy.check_value_types(obj, rtype, apply=False)
        strategy.apply_defaults(obj, rtype, None, self._allocate_ip)
        strategy.validate(obj, rtype, None)
        ssa.record_update(None, obj, manager=manager, api_version=rtype.api_version,
                          now=self._now(), status_is_subresource=rtype.status)
        return 201, self._commit(Target(rtype, target.namespace, name, ""), obj, None,
                                 dry_run=dry_run), headers

    def _prepare_managed(self, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        """Resolve the managedFields a non-apply write sends: ``[{}]`` clears them, a list
        replaces them, absent or empty keeps the old ones."""
        meta = obj.setdefault("metadata", {})
        sent = meta.get("managedFields")
        old_fields = (old or {}).get("metadata", {}).get("managedFields")
        if sent == [{}]:
            meta.pop("managedFields", None)
        elif isinstance(sent, list) and sent:
            pass
        elif old_fields:
            meta["managedFields"] = clone(old_fields)
        else:
            meta.pop("managedFields", None)

    def _live(self, target: Target) -> dict[str, Any] | None:
        return self._objects.get(self._key(target.rtype, target.namespace, target.name))

    def _check_rv(self, target: Target, sent: Any, live: Mapping[str, Any]) -> None:
        if sent and str(sent) != str(live["metadata"].get("resourceVersion")):
            raise conflict(target.rtype.group, target.rtype.plural, target.name, MODIFIED)

    def _update(self, req: Request, target: Target) -> Response:
        rtype = target.rtype
        headers: dict[str, str] = {}
        obj = self._object_body(req, target)
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        self._strictness(req, obj, rtype, apply=False, headers=headers)
        dry_run = self._dry_run(req)
        manager = self._manager(req, required=False)
        old = self._live(target)
        if old is None:
            raise not_found(rtype.group, rtype.plural, target.name)
        self._check_rv(target, obj["metadata"].get("resourceVersion"), old)
        return 200, self._write_update(target, obj, old, manager, dry_run), headers

    def _write_update(self, target: Target, obj: dict[str, Any], old: dict[str, Any],
                      manager: str, dry_run: bool) -> dict[str, Any]:
        rtype = target.rtype
        self._prepare_managed(obj, old)
        self._carry(obj, old, rtype, target.subresource)
        if not target.subresource:
            strategy.check_value_types(obj, rtype, apply=False)
            strategy.apply_defaults(obj, rtype, old, self._allocate_ip)
            strategy.validate(obj, rtype, old)
        ssa.record_update(old, obj, manager=manager, api_version=rtype.api_version,
                          now=self._now(), subresource=target.subresource,
                          status_is_subresource=rtype.status)
        return self._commit(target, obj, old, dry_run=dry_run)

    def _patch(self, req: Request, target: Target) -> Response:
        ctype = req.content_type
        if ctype == APPLY:
            return self._apply(req, target)
        if ctype not in (MERGE, STRATEGIC, JSON_PATCH):
            raise unsupported_media(ctype)
        if req.q("force"):
            raise invalid("PatchOptions.meta.k8s.io", "", "meta.k8s.io",
                          [("FieldValueForbidden", "force",
                            "Forbidden: may not be specified for non-apply patch")])
        rtype = target.rtype
        headers: dict[str, str] = {}
        old = self._live(target)
        if old is None:
            raise not_found(rtype.group, rtype.plural, target.name)
        patch = self._json_body(req)
        current = self._present(rtype, old)
        if ctype == JSON_PATCH:
            obj = json_patch(current, patch)
        else:
            if not isinstance(patch, dict):
                raise bad_request("a merge patch must be a JSON object")
            obj = merge_patch(current, patch, strategic=ctype == STRATEGIC)
        if not isinstance(obj, dict):
            raise bad_request("the patched object is not an object")
        self._check_rv(target, (patch.get("metadata") or {}).get("resourceVersion")
                       if isinstance(patch, dict) else None, old)
        obj.setdefault("metadata", {})["name"] = target.name
        if rtype.namespaced:
            obj["metadata"]["namespace"] = target.namespace
        self._strictness(req, obj, rtype, apply=False, headers=headers)
        dry_run = self._dry_run(req)
        manager = self._manager(req, required=False)
        return 200, self._write_update(target, obj, old, manager, dry_run), headers

    def _apply(self, req: Request, target: Target) -> Response:
        rtype = target.rtype
        headers: dict[str, str] = {}
        manager = self._manager(req, required=True)
        config = self._object_body(req, target, apply=True)
        if "managedFields" in config["metadata"]:
            raise bad_request("metadata.managedFields must be nil")
        self._strictness(req, config, rtype, apply=True, headers=headers)
        dry_run = self._dry_run(req)
        force = req.q("force") in ("true", "1")
        old = self._live(target)
        if old is not None:
            self._check_rv(target, config["metadata"].get("resourceVersion"), old)
        for key in ("uid", "resourceVersion", "creationTimestamp", "generation", "selfLink",
                    "deletionTimestamp", "deletionGracePeriodSeconds"):
            config["metadata"].pop(key, None)
        if old is None:
            self._check_namespace(target)
            self._check_rbac(req, "create", target)
        sub = target.subresource
        if sub != "status" and rtype.status:
            config.pop("status", None)
        strategy.check_value_types(config, rtype, apply=True)
        result = ssa.apply(old, config, manager=manager, api_version=rtype.api_version,
                           force=force, now=self._now(), subresource=sub,
                           status_is_subresource=rtype.status)
        if result.conflicts:
            raise apply_conflict(result.conflicts)
        obj = result.obj
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        meta = obj.setdefault("metadata", {})
        meta["name"] = target.name
        if rtype.namespaced:
            meta["namespace"] = target.namespace
        if old is None:
            if sub:
                raise not_found(rtype.group, rtype.plural, target.name)
            self._stamp_new(obj, rtype)
            strategy.apply_defaults(obj, rtype, None, self._allocate_ip)
            strategy.validate(obj, rtype, None)
            return 201, self._commit(target, obj, None, dry_run=dry_run), headers
        self._carry(obj, old, rtype, sub)
        if not sub:
            strategy.apply_defaults(obj, rtype, old, self._allocate_ip)
            strategy.validate(obj, rtype, old)
        return 200, self._commit(target, obj, old, dry_run=dry_run), headers

    # ----- deleting ------------------------------------------------------------------------

    def _delete_options(self, req: Request) -> dict[str, Any]:
        body = self._json_body(req) if req.body.strip() else {}
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise bad_request("DeleteOptions must be an object")
        policy = req.q("propagationPolicy") or body.get("propagationPolicy") or "Background"
        if policy not in ("Foreground", "Background", "Orphan"):
            raise invalid("DeleteOptions.meta.k8s.io", "", "meta.k8s.io",
                          [("FieldValueNotSupported", "propagationPolicy",
                            f'Unsupported value: "{policy}": supported values: "Foreground", '
                            '"Background", "Orphan", "nil"')])
        body["propagationPolicy"] = policy
        return body

    def _delete(self, req: Request, target: Target) -> Response:
        rtype = target.rtype
        options = self._delete_options(req)
        dry_run = self._dry_run(req, options)
        key = self._key(rtype, target.namespace, target.name)
        obj = self._objects.get(key)
        if obj is None:
            raise not_found(rtype.group, rtype.plural, target.name)
        pre = options.get("preconditions") or {}
        meta = obj["metadata"]
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise conflict(rtype.group, rtype.plural, target.name,
                           f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                           f"object meta: {meta.get('uid')}")
        if pre.get("resourceVersion") and str(pre["resourceVersion"]) != meta.get(
                "resourceVersion"):
            raise conflict(rtype.group, rtype.plural, target.name,
                           f"Precondition failed: ResourceVersion in precondition: "
                           f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                           f"{meta.get('resourceVersion')}")
        policy = options["propagationPolicy"]
        if meta.get("finalizers"):
            pending = clone(obj)
            if not pending["metadata"].get("deletionTimestamp"):
                pending["metadata"]["deletionTimestamp"] = self._now()
                pending["metadata"]["deletionGracePeriodSeconds"] = 0
                if not dry_run:
                    pending["metadata"]["resourceVersion"] = self._bump()
                    self._objects[key] = pending
                    self._emit("MODIFIED", key)
            code = 202 if policy == "Foreground" else 200
            return code, self._present(rtype, pending), {}
        if not dry_run:
            self._remove(key, policy)
        if (rtype.group, rtype.plural) == ("", "namespaces"):
            # the namespace store returns the object: Terminating, though the fake drops it now
            gone = self._present(rtype, obj)
            gone["metadata"]["deletionTimestamp"] = self._now()
            gone["status"] = {"phase": "Terminating"}
            return 200, gone, {}
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                  "details": {"name": target.name, **({"group": rtype.group}
                                                       if rtype.group else {}),
                              "kind": rtype.plural, "uid": meta.get("uid")}}
        return 200, status, {}

    def _remove(self, key: Key, policy: str) -> None:
        """Delete the object at ``key`` now, with what the garbage collector would do."""
        obj = self._objects.pop(key, None)
        if obj is None:
            return
        obj["metadata"]["resourceVersion"] = self._bump()
        self._emit("DELETED", key, obj)
        uid = obj["metadata"].get("uid")
        group, plural, _, name = key
        if (group, plural) == ("", "namespaces"):
            for k in [k for k in self._objects if k[2] == name]:
                self._remove(k, "Background")
        if (group, plural) == ("apiextensions.k8s.io", "customresourcedefinitions"):
            types = self._custom.pop(name, [])
            for t in types:
                for k in [k for k in self._objects if k[:2] == (t.group, t.plural)]:
                    gone = self._objects.pop(k)
                    gone["metadata"]["resourceVersion"] = self._bump()
                    self._emit("DELETED", k, gone, rtype=t)
        for k, dep in list(self._objects.items()):
            refs = dep["metadata"].get("ownerReferences") or []
            if not any(r.get("uid") == uid for r in refs):
                continue
            if policy == "Orphan":
                dep["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                if not dep["metadata"]["ownerReferences"]:
                    del dep["metadata"]["ownerReferences"]
                dep["metadata"]["resourceVersion"] = self._bump()
                self._emit("MODIFIED", k)
            else:
                self._remove(k, policy)

    def _delete_collection(self, req: Request, target: Target) -> dict[str, Any]:
        listed = self._list(req, target)
        options = self._delete_options(req)
        dry_run = self._dry_run(req, options)
        rtype = target.rtype
        for item in listed["items"]:
            meta = item["metadata"]
            key = self._key(rtype, meta.get("namespace", ""), meta["name"])
            if not dry_run:
                self._remove(key, options["propagationPolicy"])
        return listed

    # ----- controllers ---------------------------------------------------------------------

    def _after_write(self, rtype: ResourceType, key: Key, old: Mapping[str, Any] | None
                     ) -> None:
        if rtype.crd:
            return
        obj = self._objects[key]
        if rtype.kind == "CustomResourceDefinition":
            self._crd_written(obj, old)
        elif rtype.kind in controllers.WORKLOADS:
            generation = obj["metadata"].get("generation")
            if old is None or generation != old["metadata"].get("generation"):
                self._schedule_rollout(rtype.kind, key[3], key[2], in_write=True)

    def _set_status(self, key: Key, status: dict[str, Any], *, bump: bool = True) -> None:
        obj = self._objects.get(key)
        if obj is None:
            return
        new = clone(obj)
        new["status"] = status
        ssa.record_update(obj, new, manager=controllers.MANAGER,
                          api_version=obj.get("apiVersion", ""), now=self._now(),
                          subresource="status", status_is_subresource=True)
        if self._same(new, obj):
            return
        if bump:
            new["metadata"]["resourceVersion"] = self._bump()
        self._objects[key] = new
        if bump:
            self._emit("MODIFIED", key)

    def _workload_key(self, kind: str, name: str, namespace: str) -> Key | None:
        for t in BUILTINS:
            if t.kind == kind:
                key = self._key(t, namespace, name)
                return key if key in self._objects else None
        return None

    def _reconcile_status(self, kind: str, name: str, namespace: str, *, bump: bool = True
                          ) -> None:
        key = self._workload_key(kind, name, namespace)
        if key is None or kind not in controllers.WORKLOADS:
            return
        mode = self._holds.get((kind, namespace, name), "ready")
        obj = self._objects[key]
        self._set_status(key, controllers.WORKLOADS[kind](obj, mode, self._now()), bump=bump)

    def _schedule_rollout(self, kind: str, name: str, namespace: str, *, in_write: bool
                          ) -> None:
        if (kind, namespace, name) in self._holds or self.rollout_delay <= 0:
            self._reconcile_status(kind, name, namespace, bump=not in_write)
            return
        self._pending.append((self.clock() + self.rollout_delay,
                              lambda: self._reconcile_status(kind, name, namespace)))

    def _crd_written(self, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        name = obj["metadata"]["name"]
        key: Key = ("apiextensions.k8s.io", "customresourcedefinitions", "", name)
        if name in self._custom or self.crd_delay <= 0:
            self._establish(name, bump=False)
            return
        self._set_status(key, controllers.crd(obj, False, self._now()), bump=False)
        self._pending.append((self.clock() + self.crd_delay, lambda: self._establish(name)))

    def _establish(self, name: str, *, bump: bool = True) -> None:
        key: Key = ("apiextensions.k8s.io", "customresourcedefinitions", "", name)
        obj = self._objects.get(key)
        if obj is None:
            return
        self._custom[name] = types_from_crd(obj)
        self._set_status(key, controllers.crd(obj, True, self._now()), bump=bump)

    # ----- seeding -------------------------------------------------------------------------

    def seed(self, obj: Mapping[str, Any], *, manager: str = "kubectl",
             operation: str = "Update") -> dict[str, Any]:
        """Store ``obj`` as if ``manager`` had written it (``Update`` or ``Apply``), with no
        request; defaults and validation apply. Returns the stored object."""
        with self.lock:
            self.tick()
            api_version = str(obj.get("apiVersion", ""))
            group, _, version = api_version.rpartition("/")
            rtype = self.find_kind(group, str(obj.get("kind", "")))
            if rtype is None:
                raise ValueError(f"no served kind {obj.get('kind')} in {api_version!r}")
            meta = obj.get("metadata") or {}
            target = Target(rtype, str(meta.get("namespace", "")) if rtype.namespaced else "",
                            str(meta.get("name", "")), "")
            req = Request("PATCH", "", {"fieldManager": [manager]},
                          {"content-type": APPLY if operation == "Apply" else MERGE},
                          json.dumps(obj).encode(), "system:admin")
            if operation == "Apply":
                _, body, _ = self._apply(req, target)
            elif self._live(target) is None:
                _, body, _ = self._create(req, target)
            else:
                _, body, _ = self._patch(req, target)
            del version
            return dict(body)


__all__ = ["APPLY", "Cluster", "Key", "Request", "Response", "Target", "WatchStream",
           "json_patch", "load_json_or_yaml", "merge_patch", "rfc3339"]
