"""Calling tiers: OpenAI-compatible chat completions (router/upstream.py), streaming and not,
with per-tier timeouts, bounded retries on connect errors and 429/5xx, and fallback
along the policy's order. A stream falls back only until its first chunk arrives;
after that the client has seen tokens and a failure is reported, not hidden.

A tier's 4xx that says the request itself is wrong (400, 413, 422, ...) is the client's
error: it is neither retried nor sent to another tier, and the client gets the tier's
status and message. 408 and 429 are retried; 401, 403 and 404 say the tier is misconfigured
(key, URL, model name), so the next tier is tried.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import orjson

from router.policy import Policy, Tier
from router.upstream import (
    AiohttpUpstream,
    HttpxUpstream,
    Upstream,
    UpstreamDropped,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamUnreachable,
)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# 4xx that point at the tier's configuration rather than at the request: fall back.
TIER_CONFIG_STATUSES = frozenset({401, 403, 404})
NVIDIA_HOSTED = "integrate.api.nvidia.com"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A tier resolved against the environment: where to send, with which key."""

    tier: str
    model: str
    base_url: str
    api_key: str | None
    simulated: bool
    timeout_s: float
    max_retries: int

    def __repr__(self) -> str:  # never print the key
        return f"Endpoint({self.tier!r}, {self.base_url!r}, simulated={self.simulated})"


class EndpointError(RuntimeError):
    pass


def resolve_endpoint(name: str, tier: Tier, simulator_url: str | None,
                     environ: Mapping[str, str] = os.environ) -> Endpoint:
    """A tier whose key variable is unset goes to the simulator when one runs."""
    key = environ.get(tier.api_key_env) if tier.api_key_env else None
    if tier.api_key_env and not key:
        if simulator_url is None:
            raise EndpointError(f"tier {name!r}: environment variable {tier.api_key_env} is not set")
        return Endpoint(name, tier.model, simulator_url.rstrip("/"), None, True, tier.timeout_s, tier.max_retries)
    return Endpoint(name, tier.model, tier.base_url.rstrip("/"), key, False, tier.timeout_s, tier.max_retries)


@dataclass(slots=True)
class Attempt:
    tier: str
    try_no: int
    outcome: str  # ok | timeout | connect | status | malformed | dropped | config
    ms: float
    status: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


class TierFailure(Exception):
    def __init__(self, outcome: str, message: str, status: int | None = None, retryable: bool = False,
                 detail: str | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.status = status
        self.retryable = retryable
        self.detail = detail  # the tier's own error message, where it sent one

    @property
    def client_error(self) -> bool:
        """The tier refused the request itself: another tier would refuse it too."""
        return (self.status is not None and 400 <= self.status < 500 and self.status not in RETRY_STATUSES
                and self.status not in TIER_CONFIG_STATUSES)


class TierRejected(Exception):
    """A tier refused the request as invalid (a 4xx that is the client's error)."""

    def __init__(self, tier: str, failure: TierFailure, attempts: list[Attempt]) -> None:
        self.tier = tier
        self.failure = failure
        self.attempts = attempts
        self.status = failure.status or 400
        super().__init__(f"tier {tier!r} refused the request: {failure.detail or failure}")


class AllTiersFailed(Exception):
    def __init__(self, attempts: list[Attempt]) -> None:
        self.attempts = attempts
        failed = "; ".join(f"{a.tier}: {a.error}" for a in attempts if a.outcome != "ok")
        super().__init__(f"every tier failed ({failed})")

    @property
    def all_timeouts(self) -> bool:
        return all(a.outcome == "timeout" for a in self.attempts)


@dataclass
class Completion:
    tier: str
    model: str
    body: dict[str, Any]
    attempts: list[Attempt]
    simulated: bool


@dataclass
class OpenStream:
    """A stream whose first chunk has arrived; iterate for the rest."""

    tier: str
    model: str
    first: dict[str, Any]
    attempts: list[Attempt]
    simulated: bool
    _lines: AsyncIterator[str]
    _response: UpstreamResponse
    _closed: bool = field(default=False)
    _secret: str | None = field(default=None, repr=False)

    async def rest(self) -> AsyncIterator[dict[str, Any]]:
        try:
            async for line in self._lines:
                data = _sse_data(line)
                if data is None:
                    continue
                if data == "[DONE]":
                    return
                yield _parse_chunk(data, self._secret)
        except UpstreamTimeout as exc:
            raise TierFailure("timeout", str(exc)) from None
        except UpstreamDropped as exc:
            raise TierFailure("dropped", str(exc)) from None
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._response.aclose()


_Answer = TypeVar("_Answer", Completion, OpenStream)


def _sse_data(line: str) -> str | None:
    if not line.startswith("data:"):
        return None
    return line[5:].strip()


def _scrub(text: str, secret: str | None) -> str:
    """A tier may echo the request (headers included) in an error: never pass its key on."""
    return text.replace(secret, "[redacted]") if secret else text


def _parse_chunk(data: str, secret: str | None = None) -> dict[str, Any]:
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise TierFailure("malformed", "stream chunk is not JSON") from None
    if not isinstance(chunk, dict):
        raise TierFailure("malformed", "stream chunk is not a JSON object")
    if "error" in chunk:
        raise TierFailure("status", _scrub(f"tier sent an error: {str(chunk['error'])[:200]}", secret))
    return chunk


def _status_failure(status: int, body: bytes, secret: str | None) -> TierFailure:
    text = _scrub(body.decode("utf-8", "replace"), secret)
    return TierFailure("status", f"HTTP {status}: {text[:200]}", status, retryable=status in RETRY_STATUSES,
                       detail=_error_message(text)[:1000])


def _error_message(text: str) -> str:
    """The message of an OpenAI-style error body, else the body itself."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text.strip()
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    if not isinstance(message, str) and isinstance(body, dict):
        message = body.get("detail")  # Starlette/FastAPI servers
    return message if isinstance(message, str) else text.strip()


class TierClient:
    def __init__(self, *, simulator_url: str | None = None, environ: Mapping[str, str] | None = None,
                 max_connections: int = 512, retry_backoff_s: float = 0.05,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        """`transport` replaces the network (httpx.MockTransport in unit tests)."""
        self.simulator_url = simulator_url
        self.environ = environ if environ is not None else os.environ
        self.retry_backoff_s = retry_backoff_s
        self._upstream: Upstream = (HttpxUpstream(transport) if transport is not None
                                    else AiohttpUpstream(max_connections=max_connections))

    async def aclose(self) -> None:
        await self._upstream.aclose()

    def release(self) -> None:
        """Without a running loop (Runtime.close): let go of connections whose loop has ended."""
        self._upstream.release()

    def endpoint(self, name: str, tier: Tier) -> Endpoint:
        return resolve_endpoint(name, tier, self.simulator_url, self.environ)

    async def complete(self, policy: Policy, chain: list[str], payload: dict[str, Any]) -> Completion:
        async def send(ep: Endpoint) -> Completion:
            result = await self._post_json(ep, {**payload, "model": ep.model, "stream": False})
            return Completion(ep.tier, ep.model, result, [], ep.simulated)

        return await self._first_success(policy, chain, send)

    async def open_stream(self, policy: Policy, chain: list[str], payload: dict[str, Any]) -> OpenStream:
        usage = {**(payload.get("stream_options") or {}), "include_usage": True}

        async def send(ep: Endpoint) -> OpenStream:
            return await self._open(ep, {**payload, "model": ep.model, "stream": True, "stream_options": usage})

        return await self._first_success(policy, chain, send)

    async def _first_success(self, policy: Policy, chain: list[str],
                             send: Callable[[Endpoint], Awaitable[_Answer]]) -> _Answer:
        """Each tier in turn, retrying retryable failures, until one answers; every try is recorded."""
        attempts: list[Attempt] = []
        for name in chain:
            try:
                ep = self.endpoint(name, policy.tiers[name])
            except EndpointError as exc:
                attempts.append(Attempt(name, 1, "config", 0.0, error=str(exc)))
                continue
            for try_no in range(1, ep.max_retries + 2):
                start = time.perf_counter()
                try:
                    answer = await send(ep)
                except TierFailure as exc:
                    attempts.append(Attempt(name, try_no, exc.outcome, _ms(start), exc.status, str(exc)))
                    if exc.client_error:
                        raise TierRejected(name, exc, attempts) from None
                    if exc.retryable and try_no <= ep.max_retries:
                        await asyncio.sleep(self.retry_backoff_s * 2 ** (try_no - 1))
                        continue
                    break
                attempts.append(Attempt(name, try_no, "ok", _ms(start), 200))
                answer.attempts = attempts
                return answer
        raise AllTiersFailed(attempts)

    async def _send(self, ep: Endpoint, body: dict[str, Any]) -> UpstreamResponse:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if ep.api_key:
            headers["authorization"] = f"Bearer {ep.api_key}"
        return await self._upstream.post(f"{ep.base_url}/chat/completions", orjson.dumps(body), headers,
                                         timeout_s=ep.timeout_s, connect_timeout_s=min(5.0, ep.timeout_s))

    async def _post_json(self, ep: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with asyncio.timeout(ep.timeout_s):
                response = await self._send(ep, body)
                content = await response.body()
        except (TimeoutError, UpstreamTimeout) as exc:
            retryable = isinstance(exc, UpstreamTimeout) and exc.connect
            raise TierFailure("timeout", f"no answer within {ep.timeout_s:g}s", retryable=retryable) from None
        except (UpstreamUnreachable, UpstreamDropped) as exc:
            raise TierFailure("connect", f"cannot reach {ep.base_url}: {exc}", retryable=True) from None
        if response.status != 200:
            raise _status_failure(response.status, content, ep.api_key)
        try:
            result = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise TierFailure("malformed", "response is not JSON") from None
        if not isinstance(result, dict) or not isinstance(result.get("choices"), list) or not result["choices"]:
            raise TierFailure("malformed", "response has no choices")
        return result

    async def _open(self, ep: Endpoint, body: dict[str, Any]) -> OpenStream:
        """Send the request and wait for the first content chunk, all within the tier's timeout."""
        response: UpstreamResponse | None = None

        async def first_chunk() -> tuple[dict[str, Any], AsyncIterator[str]]:
            nonlocal response
            response = await self._send(ep, body)
            if response.status != 200:
                raise _status_failure(response.status, await response.body(), ep.api_key)
            lines = response.lines()
            async for line in lines:
                data = _sse_data(line)
                if data is None:
                    continue
                if data == "[DONE]":
                    raise TierFailure("malformed", "stream ended before any chunk")
                return _parse_chunk(data, ep.api_key), lines
            raise TierFailure("dropped", "stream ended before any chunk")

        try:
            async with asyncio.timeout(ep.timeout_s):
                first, lines = await first_chunk()
        except TierFailure:
            await _close(response)
            raise
        except (TimeoutError, UpstreamTimeout) as exc:
            await _close(response)
            raise TierFailure("timeout", f"no first token within {ep.timeout_s:g}s",
                              retryable=isinstance(exc, UpstreamTimeout) and exc.connect) from None
        except (UpstreamUnreachable, UpstreamDropped) as exc:
            await _close(response)
            raise TierFailure("connect", f"cannot reach {ep.base_url}: {exc}",
                              retryable=response is None) from None
        assert response is not None
        return OpenStream(ep.tier, ep.model, first, [], ep.simulated, lines, response, _secret=ep.api_key)


async def _close(response: UpstreamResponse | None) -> None:
    if response is not None:
        await response.aclose()


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
