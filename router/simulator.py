"""An OpenAI-compatible tier simulator for offline use and tests.

It answers any model name with a plainly simulated answer, with configurable
time to first token, tokens per second, answer length and injected failures
(error status, hang, malformed JSON, a stream dropped mid-answer), globally or
per model. `GET/PUT /sim/config` reads and changes that at run time;
`GET /sim/stats` counts requests per model.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from router.background import BackgroundServer

MODES = ("ok", "error", "hang", "malformed", "drop")

FILLER_TEXT = (
    "The tier simulator stands in for a real model so that routing, logging, cost and latency can be "
    "exercised offline. Configure an endpoint and an API key for this tier to get real answers."
)
FILLER = tuple(FILLER_TEXT.split(" "))


@dataclass(frozen=True)
class Behaviour:
    ttft_ms: float = 0.0  # delay before the first token (or before the whole answer)
    tokens_per_s: float = 0.0  # 0: all tokens at once
    answer_tokens: int = 48
    mode: str = "ok"
    fail_rate: float = 1.0  # share of requests that get `mode` when it is not "ok"
    error_status: int = 500
    send_usage: bool = True  # False: omit usage, as some servers do

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Behaviour | None = None) -> Behaviour:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown simulator setting(s) {sorted(unknown)}; known: {sorted(known)}")
        out = replace(base or cls(), **data)
        if out.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        return out


@dataclass
class SimulatorState:
    default: Behaviour
    models: dict[str, Behaviour]
    requests: Counter[str]

    def behaviour(self, model: str) -> Behaviour:
        return self.models.get(model, self.default)


def count_tokens(text: str) -> int:
    return len(text.split())


def _answer_words(model: str, prompt: str, n: int) -> list[str]:
    head = f"[simulated answer from {model}] You asked: \u201c{prompt[:80]}\u201d.".split()
    words = head + [FILLER[i % len(FILLER)] for i in range(max(0, n - len(head)))]
    return words[: max(1, n)]


def _prompt_text(messages: list[dict[str, Any]]) -> tuple[str, int]:
    last_user = ""
    total = 0
    for m in messages:
        content = m.get("content")
        text = content if isinstance(content, str) else " ".join(
            p.get("text", "") for p in content or [] if isinstance(p, dict))
        total += count_tokens(text) + 4
        if m.get("role") == "user":
            last_user = text
    return last_user, total


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "simulated_error", "code": status}}, status)


def create_app(default: Behaviour | None = None, models: dict[str, Behaviour] | None = None) -> Starlette:
    state = SimulatorState(default or Behaviour(), dict(models or {}), Counter())

    async def chat(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
            model = str(body["model"])
            messages = body["messages"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return _error(400, "body must be JSON with model and messages")
        state.requests[model] += 1
        b = state.behaviour(model)
        failing = b.mode != "ok" and random.random() < b.fail_rate
        mode = b.mode if failing else "ok"
        if mode == "error":
            await asyncio.sleep(b.ttft_ms / 1000)
            return _error(b.error_status, f"simulated failure with status {b.error_status}")
        if mode == "hang":
            await asyncio.sleep(3600)
        prompt, prompt_tokens = _prompt_text(messages)
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or b.answer_tokens
        words = _answer_words(model, prompt, min(int(limit), b.answer_tokens))
        completion_id = f"chatcmpl-sim-{uuid.uuid4().hex[:16]}"
        created = int(time.time())
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                 "total_tokens": prompt_tokens + len(words)}
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and b.send_usage
            gen = _stream(model, words, b, mode, completion_id, created, usage if include_usage else None)
            return StreamingResponse(gen, media_type="text/event-stream")
        await asyncio.sleep((b.ttft_ms + (len(words) / b.tokens_per_s * 1000 if b.tokens_per_s else 0)) / 1000)
        if mode == "malformed":
            return Response(b'{"id": "broken", "choices": [', media_type="application/json")
        payload: dict[str, Any] = {
            "id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(words)},
                         "finish_reason": "stop"}],
        }
        if b.send_usage:
            payload["usage"] = usage
        return Response(orjson.dumps(payload), media_type="application/json")

    async def models_list(_: Request) -> Response:
        names = sorted(set(state.models) | set(state.requests))
        return JSONResponse({"object": "list", "data": [
            {"id": n, "object": "model", "created": 0, "owned_by": "simulator"} for n in names]})

    async def get_config(_: Request) -> Response:
        return JSONResponse({"default": asdict(state.default),
                             "models": {k: asdict(v) for k, v in state.models.items()}})

    async def put_config(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
            if "default" in body:
                state.default = Behaviour.from_dict(body["default"])
            if "models" in body:
                state.models = {k: Behaviour.from_dict(v, state.default) for k, v in body["models"].items()}
        except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
            return _error(400, f"bad simulator config: {exc}")
        return await get_config(request)

    async def stats(_: Request) -> Response:
        return JSONResponse({"requests": dict(state.requests)})

    async def reset_stats(_: Request) -> Response:
        state.requests.clear()
        return JSONResponse({"requests": {}})

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "simulator": True})

    app = Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/models", models_list),
        Route("/sim/config", get_config, methods=["GET"]),
        Route("/sim/config", put_config, methods=["PUT"]),
        Route("/sim/stats", stats, methods=["GET"]),
        Route("/sim/stats", reset_stats, methods=["DELETE"]),
        Route("/health", health),
    ])
    app.state.sim = state
    return app


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def _stream(model: str, words: list[str], b: Behaviour, mode: str, completion_id: str, created: int,
                  usage: dict[str, int] | None) -> AsyncIterator[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    await asyncio.sleep(b.ttft_ms / 1000)
    if mode == "malformed":
        yield b'data: {"id": "broken", "choices": [\n\n'
        return
    gap = 1 / b.tokens_per_s if b.tokens_per_s else 0.0
    yield _sse(chunk({"role": "assistant", "content": ""}))
    for i, word in enumerate(words):
        if mode == "drop" and i == len(words) // 2:
            raise ConnectionAbortedError("simulated stream drop")
        yield _sse(chunk({"content": word if i == 0 else " " + word}))
        if gap:
            await asyncio.sleep(gap)
    yield _sse(chunk({}, "stop"))
    if usage is not None:
        yield _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


def start_simulator(host: str = "127.0.0.1", port: int = 0, default: Behaviour | None = None) -> BackgroundServer:
    """The built-in simulator for offline use; its OpenAI base URL is `.url + "/v1"`."""
    app = create_app(default or Behaviour(ttft_ms=150, tokens_per_s=60))
    return BackgroundServer(app, host, port, name="tier-simulator")
