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
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from router.chat_request import ROUTER_MODEL, parse_chat_request
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


def create_app(runtime: Runtime | None = None, *, runtime_factory: Callable[[], Runtime] = build_runtime
               ) -> Starlette:
    """The API app. Pass a runtime to share one (tests, the console); otherwise one is
    built from the environment at startup and closed at shutdown."""
    holder: dict[str, Runtime] = {}

    keys: dict[str, frozenset[str]] = {"active": frozenset()}

    def rt() -> Runtime:
        return holder["runtime"]

    def check_key(request: Request) -> None:
        """With ROUTER_AUTH=keys every /v1 call needs `Authorization: Bearer <key>`."""
        if rt().settings.auth != "keys":
            return
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise APIError(401, "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                           code="invalid_api_key")
        if hash_key(key.strip()) not in keys["active"]:
            raise APIError(401, f"Incorrect API key provided: {key.strip()[:6]}…", code="invalid_api_key")

    def refresh_keys() -> None:
        if rt().settings.auth == "keys":
            keys["active"] = active_key_hashes(rt().db)

    async def chat_completions(request: Request) -> Response:
        r = rt()
        body: Any = None
        try:
            check_key(request)
            body = await read_json(request, r.settings.max_body_bytes)
            req = parse_chat_request(body, source="api")
            req.request_id = request.headers.get("x-request-id") or None
            if req.stream:
                result = await r.engine.stream(req)
                return StreamingResponse(sse(result.chunks), media_type="text/event-stream",
                                         headers={**result.headers, "cache-control": "no-cache"})
            payload, plan = await r.engine.complete(req)
            return json_response(payload, headers=plan.headers)
        except APIError as err:
            if "x-router-decision-id" not in err.headers:  # refused before routing: log it here
                fields = body if isinstance(body, dict) else {}
                policy = (fields.get("router") or {}).get("policy") if isinstance(fields.get("router"), dict) else None
                err.headers["x-router-decision-id"] = await r.engine.log_rejected(
                    err, source="api", stream=fields.get("stream") is True,
                    policy=policy if isinstance(policy, str) else None)
            return error_response(err)

    async def route(request: Request) -> Response:
        try:
            check_key(request)
            body = await read_json(request, rt().settings.max_body_bytes)
            req = parse_chat_request(body, source="api")
            return json_response(await rt().engine.route(req))
        except APIError as err:
            return error_response(err)

    async def models(request: Request) -> Response:
        try:
            check_key(request)
        except APIError as err:
            return error_response(err)
        active = rt().registry.get()
        created = int(time.time())
        data = [{"id": ROUTER_MODEL, "object": "model", "created": created, "owned_by": "router",
                 "policy": active.policy.name, "policy_version": active.version}]
        for name, tier in active.policy.tiers.items():
            data.append({"id": name, "object": "model", "created": created, "owned_by": "router",
                         "model": tier.model, "price_in": tier.price_in, "price_out": tier.price_out})
        return json_response({"object": "list", "data": data})

    async def health(request: Request) -> Response:
        with_tiers = request.query_params.get("tiers", "1") != "0"
        report = await rt().health_with_tiers() if with_tiers else rt().health()
        return json_response(report, 200 if report["status"] == "ok" else 503)

    async def metrics(_: Request) -> Response:
        engine = rt().engine
        if engine.metrics is None:
            return error_response(APIError(404, "metrics are not enabled", code="not_found"))
        body = engine.metrics.render(engine.decision_log.stats().queued)
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

    async def refresh_policies(interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(rt().registry.refresh)
                await asyncio.to_thread(refresh_keys)
            except Exception as exc:  # the database may be briefly down; keep the last policies and keys
                log.warning("policy/key refresh failed: %s", exc)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        owned = runtime is None
        holder["runtime"] = runtime if runtime is not None else await asyncio.to_thread(runtime_factory)
        await asyncio.to_thread(refresh_keys)
        if rt().settings.auth == "off":
            log.warning("API keys are off (the local-dev default); set ROUTER_AUTH=keys to require them")
        task = asyncio.create_task(refresh_policies(rt().settings.policy_refresh_s))
        try:
            yield
        finally:
            task.cancel()
            if owned:
                await rt().aclose()

    if runtime is not None:
        holder["runtime"] = runtime
    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/route", route, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi_doc, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, ClientDisconnect: disconnect, Exception: server_error},
        lifespan=lifespan,
    )
