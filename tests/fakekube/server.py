"""A FAKE Kubernetes API server on loopback, for kiln's apply and diff tests.

This is not Kubernetes. It is a small, single-process imitation of kube-apiserver's HTTP API,
written for tests because no real API server can be installed here. It speaks the wire format
(paths, verbs, media types, ``Status`` error bodies, discovery documents) closely enough for
the official ``kubernetes`` Python client (``DynamicClient``) and kubectl to talk to it.

What it emulates:

- Discovery: ``/version``, legacy ``/api``, ``/api/v1``, ``/apis``, ``/apis/<g>``,
  ``/apis/<g>/<v>``, and aggregated discovery (``apidiscovery.k8s.io`` v2 and v2beta1) when the
  Accept header asks for it. A kind with no type (and no established CRD) is absent, so the
  Python client raises ``ResourceNotFoundError``; its paths answer 404.
- Built-in kinds (:mod:`tests.fakekube.kinds`): Namespace, ConfigMap, Secret, Service,
  ServiceAccount, PVC, Pod, ResourceQuota, LimitRange, Deployment, StatefulSet, DaemonSet,
  ReplicaSet, Job, CronJob, the four RBAC kinds, CRD, StorageClass, IngressClass, Ingress,
  NetworkPolicy, PodDisruptionBudget, PriorityClass, the webhook configurations.
- GET, LIST (``labelSelector`` with ``=``/``==``/``!=``/``in``/``notin``/exists/``!key``,
  ``fieldSelector`` on ``metadata.name``/``metadata.namespace``, ``limit``/``continue``), POST,
  PUT, PATCH (apply, merge, an approximated strategic merge, JSON patch), DELETE (propagation
  policy, ``preconditions.uid``/``resourceVersion``), DELETE on a collection, ``status``
  subresource. ``dryRun=All`` on every write. ``fieldValidation=Strict|Warn|Ignore`` on
  create/update/patch (400 ``strict decoding error`` / a ``Warning`` header / silence); an
  apply with an undeclared field fails whatever the directive, as the real one does: its type
  conversion errors, served as a reason-less 500 ``failed to create typed patch object``.
- Watches (``watch=true`` on a collection, chunked JSON lines): ADDED/MODIFIED/DELETED from
  ``resourceVersion`` (or, from ``0``/none, ADDED for what exists first), selectors,
  ``timeoutSeconds`` (default 60 s), ``sendInitialEvents`` with its closing BOOKMARK, 410 Expired
  beyond the last 20,000 events.
- Object bookkeeping: a global monotonic ``resourceVersion`` (a no-op write keeps it), uid,
  creationTimestamp, ``generation`` bumped on changes outside metadata/status, managedFields
  (FieldsV1) per manager and operation, namespaced writes refused (404 ``namespaces "x" not
  found``) when the namespace does not exist.
- Server-side apply with per-manager field ownership, 409 conflicts worded as the API words
  them, ``force``, removal of fields a manager stops applying — at the granularity documented in
  :mod:`tests.fakekube.ssa` (leaf paths; lists keyed by ``name`` or atomic).
- Server defaults, validation and immutable fields for a documented subset of kinds
  (:mod:`tests.fakekube.strategy`); Secret ``stringData`` folded into base64 ``data``.
- CRDs: a CRD's kinds become discoverable and servable once it is Established (after
  ``crd_delay`` seconds, default at once); deleting it deletes its objects.
- Status "controllers" (:mod:`tests.fakekube.controllers`): Deployments, StatefulSets,
  DaemonSets, ReplicaSets, Jobs, PVCs and Pods report a rolled-out status after
  ``rollout_delay`` seconds (default: in the same write), or stay in progress / failed while
  :meth:`FakeKube.hold` says so.
- Deletion: objects with ``metadata.finalizers`` get a ``deletionTimestamp`` and stay until an
  update empties the finalizers; otherwise they go at once, with their ``ownerReferences``
  dependents (deleted for Background/Foreground, orphaned for Orphan); a Namespace takes its
  contents with it at once.
- Test hooks: a request log, fault injection (:meth:`FakeKube.set_fail`), RBAC refusals
  (:meth:`FakeKube.forbid`), optional bearer-token authentication (401), TLS with a throwaway
  CA, an object dump, direct seeding, kubeconfig files.

What it does NOT emulate:

- The real schema: field-level merge semantics beyond the rules in :mod:`tests.fakekube.ssa`
  (lists keyed by anything but ``name``, atomic maps and structs, value types); OpenAPI
  validation beyond unknown top-level, ``metadata`` and a few ``spec`` keys (and a CRD's own
  schema); ``/openapi/*`` answers 404, so kubectl needs ``--validate=false``.
- Admission: webhooks, quotas, limit ranges, Pod Security.
- Controllers: no ReplicaSets or Pods are created; the garbage collector acts synchronously;
  Foreground deletion does not wait for dependents; a Namespace is deleted at once (no
  Terminating phase).
- Watch bookmarks other than the initial-events one; the legacy ``/watch/`` paths.
- Authentication and authorisation beyond bearer tokens and :meth:`FakeKube.forbid`.
- API version conversion: a CRD's versions share one stored object (strategy None); built-ins
  have one version each.
- Protobuf (a protobuf body gets 415), table output, server-side printing, ``resourceVersion``
  semantics on reads (``resourceVersionMatch``), the eviction/scale/binding subresources, field
  selectors beyond name and namespace.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import re
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PosixPath
from typing import Any

import yaml

from tests.fakekube.cluster import Cluster, Request
from tests.fakekube.patches import load_json_or_yaml
from tests.fakekube.status import ApiError, for_code, unauthorized
from tests.fakekube.watch import WatchStream

DEFAULT_TOKEN = "fakekube-token"
ALT_TOKEN = "fakekube-alt-token"
USERS = {DEFAULT_TOKEN: "kiln-test", ALT_TOKEN: "kiln-alt"}
"""Bearer tokens the kubeconfig files carry, and the user each one authenticates as."""


@dataclass(frozen=True)
class LoggedRequest:
    """One request the fake served: enough to count and inspect calls in tests."""

    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    status: int
    user: str
    body: Any = None
    """The request body parsed as JSON (or YAML for apply), or None."""

    def param(self, name: str) -> str | None:
        """The last value of query parameter ``name``, or None."""
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class Fault:
    """An injected failure: requests matching ``method`` and ``path`` get ``status``."""

    method: str
    path: re.Pattern[str]
    status: int
    message: str
    reason: str | None = None
    after: int = 0
    times: int | None = None
    seen: int = 0
    fired: int = 0

    def take(self, method: str, path: str) -> bool:
        """Whether this request must fail (counting it when it matches)."""
        if self.method not in ("*", method) or not self.path.search(path):
            return False
        self.seen += 1
        if self.seen <= self.after or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib's per-request stderr line (the fake keeps its own log)."""

    def _serve(self) -> None:
        fake = self.server.fake
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        user = USERS.get(token, "system:anonymous")
        req = Request(self.command, url.path, query, headers, body, user)
        fault = fake._fault(self.command, url.path)
        headers_out: dict[str, str] = {}
        if fault is not None and fault.status == 0:
            fake._record(req, 0)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None:
            err = for_code(fault.status, fault.message, fault.reason)
            code, payload = err.code, err.body
        elif fake.require_token and token not in USERS:
            err = unauthorized()
            code, payload = err.code, err.body
        else:
            code, payload, headers_out = fake.cluster.handle(req)
        fake._record(req, code)
        if isinstance(payload, WatchStream):
            self._stream(payload)
            return
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", headers_out.pop("Content-Type", "application/json"))
        for key, value in headers_out.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, watch: WatchStream) -> None:
        """Send a watch as a chunked response, one JSON event per line."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for line in watch.lines():
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake: FakeKube) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


def _self_signed() -> tuple[bytes, bytes]:
    """A throwaway CA-signed-by-itself certificate for 127.0.0.1/localhost: (cert, key) PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fakekube")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


class KubeconfigPath(PosixPath):
    """A kubeconfig file's path that, called with a directory, writes a fresh kubeconfig for
    the same fake there (``fake.kubeconfig(tmp_path) -> Path``)."""

    fake: FakeKube | None = None

    def __call__(self, directory: Path, name: str = "kubeconfig",
                 namespace: str = "default") -> Path:
        """Write a kubeconfig for this fake into ``directory``; return its path."""
        if self.fake is None:
            raise TypeError("this path is not bound to a FakeKube")
        return self.fake.write_kubeconfig(directory, name, namespace)


class FakeKube:
    """A running fake API server: ``url``, the :class:`Cluster` state, and test hooks.

    ``tls``: serve HTTPS with a throwaway self-signed certificate (``ca_pem``; the kubeconfig
    carries it as ``certificate-authority-data``). ``require_token``: answer 401 unless the
    request carries one of :data:`USERS`' bearer tokens (the kubeconfig's users do).
    ``crd_delay``/``rollout_delay``: see :class:`~tests.fakekube.cluster.Cluster`. ``version``:
    the (major, minor) ``/version`` reports.
    """

    def __init__(self, *, tls: bool = False, require_token: bool = False,
                 crd_delay: float = 0.0, rollout_delay: float = 0.0,
                 version: tuple[str, str] = ("1", "37")) -> None:
        self.cluster = Cluster(crd_delay=crd_delay, rollout_delay=rollout_delay,
                               version=version)
        self.require_token = require_token
        self.tls = tls
        self.ca_pem: bytes | None = None
        self._lock = threading.Lock()
        self._log: list[LoggedRequest] = []
        self._faults: list[Fault] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.kubeconfig: KubeconfigPath | None = None
        """The kubeconfig file last written by :meth:`write_kubeconfig` (the fixture writes
        one into the test's ``tmp_path``). It is a :class:`~pathlib.Path`; calling it,
        ``fake.kubeconfig(directory)``, writes another one there and returns its path."""

    # ----- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeKube:
        """Listen on a free 127.0.0.1 port and serve in a background thread."""
        server = _Server(self)
        if self.tls:
            import tempfile

            cert, key = _self_signed()
            self.ca_pem = cert
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "tls.crt").write_bytes(cert)
                (Path(tmp) / "tls.key").write_bytes(key)
                context.load_cert_chain(Path(tmp) / "tls.crt", Path(tmp) / "tls.key")
            server.socket = context.wrap_socket(server.socket, server_side=True)
        port = server.server_address[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        self.cluster.address = f"127.0.0.1:{port}"
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fakekube",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.cluster.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- request log ---------------------------------------------------------------------

    def _record(self, req: Request, status: int) -> None:
        body: Any = None
        if req.body:
            try:
                body = load_json_or_yaml(req.body)
            except ApiError:
                body = None
        entry = LoggedRequest(req.method, req.path, req.query, req.content_type, status,
                              req.user, body)
        with self._lock:
            self._log.append(entry)

    @property
    def log(self) -> list[LoggedRequest]:
        """A copy of every request served so far, in order."""
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        """Forget the requests logged so far."""
        with self._lock:
            self._log.clear()

    def requests(self, method: str | None = None, path: str | None = None,
                 ) -> list[LoggedRequest]:
        """Logged requests with ``method`` (any if None) whose path matches regex ``path``."""
        return [r for r in self.log if (method is None or r.method == method)
                and (path is None or re.search(path, r.path))]

    # ----- fault injection -----------------------------------------------------------------

    def set_fail(self, method: str, path_regex: str, status: int,
                 message: str = "injected failure", *, reason: str | None = None,
                 after: int = 0, times: int | None = None) -> Fault:
        """Fail requests (``method`` or ``*``) whose path matches ``path_regex`` (re.search).

        The first ``after`` matching requests pass; then ``times`` of them (all if None) get a
        Status with ``status`` and ``message`` (reason: the API's for that code unless given).
        ``status=0`` drops the connection without a response. Returns the fault (its
        ``seen``/``fired`` counters say what happened).
        """
        fault = Fault(method.upper(), re.compile(path_regex), status, message, reason, after,
                      times)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_fails(self) -> None:
        """Remove every injected fault."""
        with self._lock:
            self._faults.clear()

    def _fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.take(method, path):
                    return fault
        return None

    # ----- state hooks (see Cluster) -------------------------------------------------------

    def objects(self, kind: str | None = None, namespace: str | None = None
                ) -> list[dict[str, Any]]:
        """Deep copies of the stored objects (the four default namespaces included), sorted by
        group, resource, namespace, name; only ``kind``/``namespace`` ones when given."""
        return [o for o in self.cluster.objects()
                if (kind is None or o.get("kind") == kind)
                and (namespace is None or o["metadata"].get("namespace", "") == namespace)]

    def get(self, kind: str, name: str, namespace: str = "", group: str | None = None
            ) -> dict[str, Any] | None:
        """The stored object of ``kind`` named ``name`` (in ``namespace``), or None."""
        return self.cluster.get_object(kind, name, namespace, group)

    def seed(self, obj: dict[str, Any], *, manager: str = "kubectl",
             operation: str = "Update") -> dict[str, Any]:
        """Store ``obj`` as written by ``manager`` (``Update`` or ``Apply``), bypassing HTTP."""
        return self.cluster.seed(obj, manager=manager, operation=operation)

    def hold(self, kind: str, name: str, namespace: str = "", mode: str = "stuck") -> None:
        """Keep a workload InProgress (``stuck``) or ``failed`` until :meth:`release`."""
        self.cluster.hold(kind, name, namespace, mode)

    def release(self, kind: str, name: str, namespace: str = "") -> None:
        """Let a held workload roll out."""
        self.cluster.release(kind, name, namespace)

    def forbid(self, verb: str, resource: str, group: str = "",
               namespace: str | None = None) -> None:
        """Answer 403 to ``verb`` (get, list, create, update, patch, delete, ``*``) on
        ``resource`` (a plural such as ``configmaps``, or ``*``) in ``group``."""
        self.cluster.forbid(verb, resource, group, namespace)

    def settle(self) -> None:
        """Run every delayed event (CRD establishment, rollouts) now."""
        self.cluster.settle()

    @property
    def crd_delay(self) -> float:
        """Seconds between a CRD's creation and its kinds being served."""
        return self.cluster.crd_delay

    @crd_delay.setter
    def crd_delay(self, value: float) -> None:
        self.cluster.crd_delay = value

    @property
    def rollout_delay(self) -> float:
        """Seconds before a written workload reports its rolled-out status."""
        return self.cluster.rollout_delay

    @rollout_delay.setter
    def rollout_delay(self, value: float) -> None:
        self.cluster.rollout_delay = value

    # ----- kubeconfig ----------------------------------------------------------------------

    def kubeconfig_dict(self, namespace: str = "default") -> dict[str, Any]:
        """A kubeconfig for this server: contexts ``fake`` (current; user ``kiln-test``),
        ``fake-alt`` (same server, user ``kiln-alt``, namespace ``alt``) and ``unreachable``
        (a closed port on 127.0.0.1)."""
        cluster: dict[str, Any] = {"server": self.url}
        if self.ca_pem is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            dead_port = sock.getsockname()[1]
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": cluster},
                         {"name": "unreachable",
                          "cluster": {"server": f"http://127.0.0.1:{dead_port}"}}],
            "users": [{"name": "kiln-test", "user": {"token": DEFAULT_TOKEN}},
                      {"name": "kiln-alt", "user": {"token": ALT_TOKEN}}],
            "contexts": [
                {"name": "fake", "context": {"cluster": "fake", "user": "kiln-test",
                                             "namespace": namespace}},
                {"name": "fake-alt", "context": {"cluster": "fake", "user": "kiln-alt",
                                                 "namespace": "alt"}},
                {"name": "unreachable", "context": {"cluster": "unreachable",
                                                    "user": "kiln-test"}}],
        }

    def write_service_account(self, directory: Path) -> dict[str, str]:
        """Write an in-cluster service-account directory (``token``, ``ca.crt``, ``namespace``)
        into ``directory`` and return the environment a pod would have
        (``KUBERNETES_SERVICE_HOST``/``_PORT``). Needs ``tls=True``: in-cluster config is HTTPS.
        The ``kubernetes`` client reads fixed paths; point
        ``kubernetes.config.incluster_config.InClusterConfigLoader`` at these files."""
        if self.ca_pem is None:
            raise RuntimeError("in-cluster config needs a FakeKube started with tls=True")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "token").write_text(DEFAULT_TOKEN)
        (directory / "ca.crt").write_bytes(self.ca_pem)
        (directory / "namespace").write_text("default")
        host, _, port = self.cluster.address.rpartition(":")
        return {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}

    def write_kubeconfig(self, directory: Path, name: str = "kubeconfig",
                         namespace: str = "default") -> Path:
        """Write :meth:`kubeconfig_dict` to ``directory/name`` (mode 0600), remember it as
        :attr:`kubeconfig`, and return its path."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        path = KubeconfigPath(path)
        path.fake = self
        path.write_text(yaml.safe_dump(self.kubeconfig_dict(namespace), sort_keys=False))
        path.chmod(0o600)
        self.kubeconfig = path
        return path


def serving(**options: Any) -> Iterator[FakeKube]:
    """Start a :class:`FakeKube` with ``options``, yield it, stop it (a generator for fixtures
    and ``contextlib.contextmanager``)."""
    fake = FakeKube(**options).start()
    try:
        yield fake
    finally:
        fake.stop()


__all__ = [
    "ALT_TOKEN",
    "DEFAULT_TOKEN",
    "USERS",
    "FakeKube",
    "Fault",
    "LoggedRequest",
    "serving",
]
