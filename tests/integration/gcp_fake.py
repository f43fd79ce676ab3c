"""A loopback fake of Google Secret Manager's gRPC API, for tests.

No Secret Manager emulator exists in any registry this project can use, so this is a documented
FAKE: a real gRPC server (grpcio) speaking the real wire protocol, with request and response
messages from the client library's own types (``google.cloud.secretmanager_v1.types``). It
implements ``CreateSecret``, ``AddSecretVersion``, ``GetSecret`` and ``AccessSecretVersion``
(``latest`` = newest version), answers NOT_FOUND for unknown secrets/versions,
PERMISSION_DENIED for secrets marked with :meth:`FakeSecretManager.deny` and UNAVAILABLE for the
next calls after :meth:`FakeSecretManager.fail_next`, and counts
``AccessSecretVersion`` calls. The client reaches it over an insecure channel with anonymous
credentials (kiln: ``secrets.gcp.endpoint`` + ``insecure: true``). It binds 127.0.0.1 only and
is stopped by the fixture.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import pytest

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"


@dataclass
class FakeSecretManager:
    """The fake's state (secrets -> versions) and its running gRPC server."""

    endpoint: str = ""
    secrets: dict[str, list[bytes]] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)
    unavailable: int = 0
    access_calls: int = 0
    server: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def deny(self, name: str) -> None:
        """Answer PERMISSION_DENIED for ``projects/P/secrets/S``."""
        self.denied.add(name)

    def fail_next(self, count: int) -> None:
        """Answer UNAVAILABLE to the next ``count`` AccessSecretVersion calls."""
        with self.lock:
            self.unavailable = count

    def reset(self) -> None:
        """Forget every secret, denial, pending failure and counter."""
        with self.lock:
            self.secrets.clear()
            self.denied.clear()
            self.unavailable = 0
            self.access_calls = 0

    # -- handlers -------------------------------------------------------------------------------

    def create_secret(self, request: Any, context: Any) -> Any:
        import grpc
        from google.cloud.secretmanager_v1 import types

        name = f"{request.parent}/secrets/{request.secret_id}"
        with self.lock:
            if name in self.secrets:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"Secret [{name}] already exists.")
            self.secrets[name] = []
        return types.Secret(name=name, replication=request.secret.replication)

    def get_secret(self, request: Any, context: Any) -> Any:
        import grpc
        from google.cloud.secretmanager_v1 import types

        with self.lock:
            if request.name in self.denied:
                context.abort(grpc.StatusCode.PERMISSION_DENIED, "Permission denied.")
            if request.name not in self.secrets:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Secret [{request.name}] not found.")
        return types.Secret(name=request.name)

    def add_version(self, request: Any, context: Any) -> Any:
        import grpc
        from google.cloud.secretmanager_v1 import types

        with self.lock:
            versions = self.secrets.get(request.parent)
            if versions is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Secret [{request.parent}] not found.")
            versions.append(bytes(request.payload.data))
            number = len(versions)
        return types.SecretVersion(name=f"{request.parent}/versions/{number}",
                                   state=types.SecretVersion.State.ENABLED)

    def access(self, request: Any, context: Any) -> Any:
        import grpc
        from google.cloud.secretmanager_v1 import types

        secret, _, version = request.name.rpartition("/versions/")
        with self.lock:
            self.access_calls += 1
            if self.unavailable > 0:
                self.unavailable -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
            if secret in self.denied:
                context.abort(grpc.StatusCode.PERMISSION_DENIED, "Permission denied on resource.")
            versions = self.secrets.get(secret)
            if versions is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Secret [{secret}] not found.")
            if version == "latest" and versions:
                number = len(versions)
            elif version.isdigit() and 1 <= int(version) <= len(versions):
                number = int(version)
            else:
                context.abort(grpc.StatusCode.NOT_FOUND,
                              f"Secret Version [{request.name}] not found.")
            data = versions[number - 1]
        return types.AccessSecretVersionResponse(
            name=f"{secret}/versions/{number}", payload=types.SecretPayload(data=data))

    # -- server ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Serve on a free 127.0.0.1 port (``endpoint`` is set to HOST:PORT)."""
        import grpc
        from google.cloud.secretmanager_v1 import types

        def unary(fn: Callable[[Any, Any], Any], req: Any, resp: Any) -> Any:
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=req.deserialize, response_serializer=resp.serialize)

        handler = grpc.method_handlers_generic_handler(SERVICE, {
            "CreateSecret": unary(self.create_secret, types.CreateSecretRequest, types.Secret),
            "GetSecret": unary(self.get_secret, types.GetSecretRequest, types.Secret),
            "AddSecretVersion": unary(self.add_version, types.AddSecretVersionRequest,
                                      types.SecretVersion),
            "AccessSecretVersion": unary(self.access, types.AccessSecretVersionRequest,
                                         types.AccessSecretVersionResponse),
        })
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self.server = server
        self.endpoint = f"127.0.0.1:{port}"

    def stop(self) -> None:
        """Stop serving (in-flight calls are cancelled)."""
        if self.server is not None:
            self.server.stop(grace=None).wait(5)
            self.server = None

    def client(self) -> Any:
        """The real client library, bound to this fake over an insecure channel."""
        import grpc
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import secretmanager_v1
        from google.cloud.secretmanager_v1.services.secret_manager_service import transports

        transport = transports.SecretManagerServiceGrpcTransport(
            channel=grpc.insecure_channel(self.endpoint), credentials=AnonymousCredentials())
        return secretmanager_v1.SecretManagerServiceClient(transport=transport)

    def put(self, project: str, secret: str, *payloads: bytes | str) -> None:
        """Create ``secret`` (if needed) through the real client and add each payload."""
        from google.api_core import exceptions

        client = self.client()
        parent = f"projects/{project}"
        with contextlib.suppress(exceptions.AlreadyExists):
            client.create_secret(request={"parent": parent, "secret_id": secret,
                                          "secret": {"replication": {"automatic": {}}}})
        for payload in payloads:
            data = payload.encode() if isinstance(payload, str) else payload
            client.add_secret_version(request={"parent": f"{parent}/secrets/{secret}",
                                               "payload": {"data": data}})


@pytest.fixture(scope="session")
def gcp_fake_server() -> Iterator[FakeSecretManager]:
    """One fake Secret Manager per test session (per xdist worker)."""
    fake = FakeSecretManager()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def gcp_fake(gcp_fake_server: FakeSecretManager) -> FakeSecretManager:
    """The session's fake, emptied for this test."""
    gcp_fake_server.reset()
    return gcp_fake_server
