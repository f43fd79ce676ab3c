"""The FastAPI application of ``kiln serve``: routes, errors, auth and the body limit.

:func:`create_app` takes a :class:`kiln.serve.service.ServeService` (the engine and server
core behind it) and :class:`AppConfig` and returns the ASGI application. Routes:

- ``POST /v1/render``: :class:`kiln.serve.models.RenderRequest` in,
  :class:`kiln.serve.models.RenderResponse` out;
- ``GET /healthz`` (the process answers), ``GET /readyz`` (not draining, git and cache
  health), ``GET /metrics`` (Prometheus text of the server's registry), ``GET /openapi.json``.

Every error is ``{"error": "<one line>"}`` with the status :func:`kiln.serve.errors.status_for`
gives (schema and JSON errors 400, a missing or wrong token 401, a body over the limit 413),
redacted, never a traceback. The render runs in a worker thread under the request's
deadline (``X-Kiln-Timeout`` seconds, capped by the operator's timeout), cancelled when the
client goes away.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from kiln.core.errors import KilnError
from kiln.serve.models import ErrorResponse, RenderRequest, RenderResponse

if TYPE_CHECKING:
    from kiln.core.deadline import Deadline
    from kiln.serve.auth import BearerAuth
    from kiln.serve.service import Answer, ServeService

log = logging.getLogger("kiln.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

RENDER = "/v1/render"
PROTECTED = frozenset({RENDER, "/metrics"})
"""The routes a bearer token guards (probes and the OpenAPI document stay open)."""
TIMEOUT_HEADER = "x-kiln-timeout"
REQUEST_ID_HEADER = "x-request-id"
INTERNAL = "kiln: internal error (the server log has the details)"
DISCONNECT_POLL = 0.25
"""Seconds between checks that the client is still there while a render runs."""
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class AppConfig:
    """The operator's settings the application enforces."""

    max_body_bytes: int
    timeout: float
    auth: BearerAuth | None = None
    workers: int = 16


def _error(status: int, text: str, headers: dict[str, str] | None = None) -> JSONResponse:
    line = " ".join(text.split())[:MAX_ERROR_CHARS] or "error"
    return JSONResponse({"error": line}, status_code=status, headers=headers)


async def _send_error(send: Send, status: int, text: str,
                      headers: dict[str, str] | None = None) -> None:
    """Answer an ASGI request with the error body directly (the middleware's refusals)."""
    body = _error(status, text).body
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           (b"connection", b"close")]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Pure ASGI middleware in front of the routes: the bearer token for :data:`PROTECTED`
    routes (before anything is read), and the body limit, checked as the body arrives: a
    declared ``Content-Length`` over it is refused before reading a byte, a chunked body the
    moment its bytes pass it. The body (at most the limit) is then replayed to the app, as
    JSON."""

    def __init__(self, app: ASGIApp, *, auth: BearerAuth | None, max_body_bytes: int) -> None:
        self.app = app
        self.auth = auth
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        if self.auth is not None and scope.get("path") in PROTECTED \
                and not self.auth.allows(headers.get("authorization")):
            await _send_error(send, 401, "missing or wrong bearer token (Authorization: "
                              "Bearer ...)", {"www-authenticate": "Bearer"})
            return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > limit:
            await _send_error(send, 413, f"request body: {declared} bytes, more than the "
                              f"{limit} allowed (KILN_SERVE_MAX_BODY_BYTES)")
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                await _send_error(send, 413, f"request body: more than the {limit} bytes "
                                  "allowed (KILN_SERVE_MAX_BODY_BYTES)")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        # The API takes JSON only: a body is read as JSON whatever Content-Type it came with
        # (curl -d sends a form type), so every body gets the same JSON and schema errors.
        scope = {**scope, "headers": [
            *((k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-type"),
            (b"content-type", b"application/json")]}
        await self.app(scope, replay, send)


def validation_line(exc: RequestValidationError) -> str:
    """One line for a schema or JSON error: where (``request body: git.repoURL``) and what."""
    errors = exc.errors()
    if not errors:
        return "request body: invalid"
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    if first.get("type") == "json_invalid":
        ctx = first.get("ctx") or {}
        return f"request body: not valid JSON ({ctx.get('error', 'malformed')})"
    where = "request body" + (": " + ".".join(loc) if loc else "")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


def request_deadline(header: str | None, timeout: float) -> Deadline:
    """The request's :class:`kiln.core.deadline.Deadline`: ``X-Kiln-Timeout`` seconds when
    given (capped by ``timeout``), else ``timeout``. Raises BadRequest for a header that is
    not a positive number."""
    from kiln.core.deadline import Deadline
    from kiln.serve.errors import BadRequest

    if header is None or not header.strip():
        return Deadline(timeout, source="KILN_SERVE_TIMEOUT")
    try:
        seconds = float(header)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise BadRequest(f"not a positive number of seconds: {header[:40]!r}",
                         source="X-Kiln-Timeout")
    if seconds >= timeout:
        return Deadline(timeout, source="KILN_SERVE_TIMEOUT")
    return Deadline(seconds, source="X-Kiln-Timeout")


def create_app(service: ServeService, config: AppConfig, *,
               redact: Callable[[str], str],
               readiness: Callable[[], tuple[bool, dict[str, Any]]]) -> ASGIApp:
    """The ASGI application (see the module docstring). ``redact`` cleans every error text;
    ``readiness()`` says whether to serve and what ``/readyz`` shows."""
    import anyio

    from kiln import __version__
    from kiln.serve.errors import status_for

    core = service.core
    limiter = anyio.CapacityLimiter(config.workers)
    api = FastAPI(title="kiln serve", version=str(__version__),
                  description="Render Kubernetes manifests from a local directory or a git "
                  "repository, secrets resolved last, through kiln's cache.",
                  docs_url=None, redoc_url=None)
    bearer = HTTPBearer(auto_error=False, description="The operator's token "
                        "(--token-file); not needed when the server runs without one.")

    @api.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, validation_line(exc))

    @api.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @api.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s", type(exc).__name__, exc_info=exc)
        return _error(500, INTERNAL)

    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse, "description": what} for code, what in (
            (400, "malformed JSON or a schema error"), (401, "no or a wrong bearer token"),
            (403, "a path outside the allowed roots, a repository not allowed, a setting "
                  "only the operator may make"),
            (404, "an unknown revision or a missing app path"),
            (413, "the body is over the limit"), (422, "the app cannot be rendered"),
            (502, "a secret backend or git remote unreachable"),
            (503, "the server is shutting down"), (504, "the deadline passed"))}

    @api.post(RENDER, response_model=RenderResponse, responses=errors,
              dependencies=[Depends(bearer)], summary="Render an app")
    async def render(request: Request, body: RenderRequest) -> Response:
        """Render the app ``body`` names; ``X-Kiln-Timeout`` (seconds) shortens the
        operator's deadline, ``X-Request-Id`` names the request in the server's log."""
        try:
            deadline = request_deadline(request.headers.get(TIMEOUT_HEADER), config.timeout)
        except KilnError as exc:
            return _error(status_for(exc), redact(exc.one_line()))
        offered = request.headers.get(REQUEST_ID_HEADER)
        ids: list[str] = []

        def work() -> Answer:
            with core.request("render", deadline, offered) as scope:
                ids.append(scope.request_id)
                answer = service.render(body, deadline)
                scope.note = "cache hit" if answer.cache_hit else "rendered"
                return answer

        task = asyncio.ensure_future(anyio.to_thread.run_sync(work, limiter=limiter))
        try:
            while True:
                done, _pending = await asyncio.wait({task}, timeout=DISCONNECT_POLL)
                if done:
                    break
                if await request.is_disconnected():
                    deadline.cancel("the client went away")
            answer = task.result()
        except KilnError as exc:
            headers = {REQUEST_ID_HEADER: ids[0]} if ids else None
            return _error(status_for(exc), redact(exc.one_line()), headers)
        return Response(answer.body(), media_type="application/json",
                        headers={REQUEST_ID_HEADER: ids[0]} if ids else None)

    @api.get("/healthz", summary="The process answers")
    async def healthz() -> dict[str, Any]:
        return {"ok": True}

    @api.get("/readyz", summary="Ready to render: not draining; git and cache health",
             responses={503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        ok, detail = await anyio.to_thread.run_sync(readiness)
        return JSONResponse({"ok": ok, **detail}, status_code=200 if ok else 503)

    @api.get("/metrics", summary="Prometheus metrics", dependencies=[Depends(bearer)],
             response_class=Response)
    async def metrics() -> Response:
        if core.metrics is None:
            return _error(404, "metrics are off")
        body, content_type = core.metrics.exposition()
        return Response(body, media_type=content_type)

    return Guard(api, auth=config.auth, max_body_bytes=config.max_body_bytes)


__all__ = ["AppConfig", "Guard", "create_app", "request_deadline", "validation_line"]
