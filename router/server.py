"""The OpenAI-compatible HTTP API. Applications adopt the router by changing base_url.

POST /v1/chat/completions  routed chat (stream or not); headers say tier, task, decision id
GET  /v1/models            the tiers of the default policy plus the virtual "router" model
POST /v1/route             the decision only, no upstream call
GET  /health               classifier, database, policies, tiers
GET  /metrics              Prometheus metrics
GET  /openapi.json         this API's OpenAPI description
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypedDict

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from router.chat_request import ROUTER_MODEL, parse_chat_request
from router.engine import StreamResult
from router.errors import APIError, invalid
from router.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from router.openapi import openapi
from router.runtime import Runtime, build_runtime
from storage.api_keys import active_key_hashes, hash_key

log = logging.getLogger(__name__)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers=headers, media_type="application/json")


def error_response(err: APIError) -> Response:
    return json_response(err.to_dict(), err.status, err.headers)


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON, refusing bodies over `limit` bytes before reading them whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"request body is {int(declared)} bytes; the limit is {limit} bytes "
                       "(ROUTER_MAX_BODY_BYTES)", code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"request body exceeds the limit of {limit} bytes (ROUTER_MAX_BODY_BYTES)",
                           code="request_too_large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise invalid("request body is empty; send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"request body is not valid JSON: {exc}") from None


async def sse(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """Server-sent events; [DONE] only after a stream that ended well (its row is committed by then)."""
    async for chunk in chunks:
        yield b"data: " + orjson.dumps(chunk) + b"\n\n"
        if "error" in chunk:
            return
    yield b"data: [DONE]\n\n"


class ApiKeys:
    """With ROUTER_AUTH=keys every /v1 call needs `Authorization: Bearer <key>`; the valid
    keys' hashes are reloaded from the database with the policies."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.required = runtime.settings.auth == "keys"
        self.active: frozenset[str] = frozenset()

    def refresh(self) -> None:
        if self.required:
            self.active = active_key_hashes(self.runtime.db)

    def check(self, request: Request) -> None:
        if not self.required:
            return
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise APIError(401, "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                           code="invalid_api_key")
        if hash_key(key) not in self.active:
            raise APIError(401, f"Incorrect API key provided: {key[:6]}…", code="invalid_api_key")


class State(TypedDict):
    runtime: Runtime
    keys: ApiKeys


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.state.runtime
    return runtime


async def _read_checked(request: Request) -> Any:
    """The body of an authenticated /v1 call."""
    request.state.keys.check(request)
    return await read_json(request, _runtime(request).settings.max_body_bytes)


async def chat_completions(request: Request) -> Response:
    engine = _runtime(request).engine
    try:
        body = await _read_checked(request)
    except APIError as err:
        await engine.refuse(err, source="api")
        return error_response(err)
    try:
        result = await engine.chat(body, source="api", request_id=request.headers.get("x-request-id") or None)
    except APIError as err:  # the engine has recorded it
        return error_response(err)
    if isinstance(result, StreamResult):
        return StreamingResponse(sse(result.chunks), media_type="text/event-stream",
                                 headers={**result.headers, "cache-control": "no-cache"})
    return json_response(result.body, headers=result.plan.headers)


async def route(request: Request) -> Response:
    try:
        req = parse_chat_request(await _read_checked(request), source="api")
        return json_response(await _runtime(request).engine.route(req))
    except APIError as err:
        return error_response(err)


async def models(request: Request) -> Response:
    try:
        request.state.keys.check(request)
    except APIError as err:
        return error_response(err)
    active = _runtime(request).registry.get()
    created = int(time.time())
    data = [{"id": ROUTER_MODEL, "object": "model", "created": created, "owned_by": "router",
             "policy": active.policy.name, "policy_version": active.version}]
    for name, tier in active.policy.tiers.items():
        data.append({"id": name, "object": "model", "created": created, "owned_by": "router",
                     "model": tier.model, "price_in": tier.price_in, "price_out": tier.price_out})
    return json_response({"object": "list", "data": data})


async def health(request: Request) -> Response:
    runtime = _runtime(request)
    with_tiers = request.query_params.get("tiers", "1") != "0"
    report = await runtime.health_with_tiers() if with_tiers else runtime.health()
    return json_response(report, 200 if report["status"] == "ok" else 503)


async def metrics(request: Request) -> Response:
    runtime = _runtime(request)
    if runtime.metrics is None:
        return error_response(APIError(404, "metrics are not enabled", code="not_found"))
    body = runtime.metrics.render(runtime.engine.decision_log.stats())
    return Response(body, media_type=METRICS_CONTENT_TYPE)


async def openapi_doc(_: Request) -> Response:
    return json_response(openapi())


async def http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return error_response(APIError(exc.status_code, str(exc.detail), code=kind))


async def disconnect(_: Request, __: Exception) -> Response:
    return error_response(APIError(499, "client closed the request", code="client_disconnected"))


async def server_error(_: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(APIError(500, "internal error in the router; see the server log",
                                   type="server_error", code="internal_error"))


async def refresh_forever(runtime: Runtime, keys: ApiKeys) -> None:
    """Pick up newly activated policies and API key changes within policy_refresh_s."""
    while True:
        await asyncio.sleep(runtime.settings.policy_refresh_s)
        try:
            await asyncio.to_thread(runtime.registry.refresh)
            await asyncio.to_thread(keys.refresh)
        except Exception as exc:  # the database may be briefly down; keep the last policies and keys
            log.warning("policy/key refresh failed: %s", exc)


CHAT_PATH = "/v1/chat/completions"
ROUTES = [
    Route(CHAT_PATH, chat_completions, methods=["POST"]),  # ChatFirst serves its POSTs; other methods get 405 here
    Route("/v1/route", route, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi_doc, methods=["GET"]),
]


class ChatFirst:
    """The API's ASGI entry. POST /v1/chat/completions, nearly every request a deployment serves,
    goes straight to its handler; everything else, lifespan included, goes through Starlette.
    Under load Starlette's router and its two error middlewares took about a quarter of the event
    loop's Python time on that path (py-spy, keyword classifier, wrk at 32 connections)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != CHAT_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        request = Request(scope, receive, send)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            response = await chat_completions(request)
            await response(scope, receive, tracked)
        except Exception as exc:
            if started:  # the client has a status line already; as Starlette does, let the server log it
                raise
            handler = disconnect if isinstance(exc, ClientDisconnect) else server_error
            await (await handler(request, exc))(scope, receive, send)


def create_app(runtime: Runtime | None = None, *, runtime_factory: Callable[[], Runtime] = build_runtime
               ) -> ChatFirst:
    """The API app. Pass a runtime to share one (tests, the console); otherwise one is
    built from the environment at startup and closed at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[State]:
        rt = runtime if runtime is not None else await asyncio.to_thread(runtime_factory)
        keys = ApiKeys(rt)
        await asyncio.to_thread(keys.refresh)
        if not keys.required:
            log.warning("API keys are off (the local-dev default); set ROUTER_AUTH=keys to require them")
        task = asyncio.create_task(refresh_forever(rt, keys))
        try:
            yield {"runtime": rt, "keys": keys}
        finally:
            task.cancel()
            if runtime is None:
                await rt.aclose()

    return ChatFirst(Starlette(
        routes=ROUTES,
        exception_handlers={HTTPException: http_error, ClientDisconnect: disconnect, Exception: server_error},
        lifespan=lifespan,
    ))
