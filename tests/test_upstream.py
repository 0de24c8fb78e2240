"""router/upstream.py's aiohttp client against real sockets on loopback: a hand-written HTTP
server sends exactly the bytes each failure needs (a refused port, a body cut short, a stall,
an SSE line far over aiohttp's default buffer)."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from router.policy import parse_policy
from router.tiers import AllTiersFailed, TierClient
from router.upstream import AiohttpUpstream, UpstreamDropped, UpstreamResponse, UpstreamTimeout, UpstreamUnreachable
from tests.conftest import Simulator, free_port

Handler = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]  # the request's head, the reply's writer


@asynccontextmanager
async def raw_server(handle: Handler) -> AsyncIterator[str]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        try:
            await handle(head, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


async def post(upstream: AiohttpUpstream, url: str, timeout_s: float = 2.0) -> UpstreamResponse:
    return await upstream.post(url + "/v1/chat/completions", b"{}", {"content-type": "application/json"},
                               timeout_s=timeout_s, connect_timeout_s=1.0)


def test_a_refused_connection_is_unreachable() -> None:
    async def main() -> None:
        upstream = AiohttpUpstream()
        with pytest.raises(UpstreamUnreachable):
            await post(upstream, f"http://127.0.0.1:{free_port()}")
        await upstream.aclose()

    asyncio.run(main())


def test_a_body_cut_short_is_dropped_and_a_silent_one_times_out() -> None:
    async def cut(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"ch")
        await writer.drain()

    async def silent(_: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(3)

    async def main() -> None:
        upstream = AiohttpUpstream()
        async with raw_server(cut) as url:
            response = await post(upstream, url)
            assert response.status == 200
            with pytest.raises(UpstreamDropped):
                await response.body()
        async with raw_server(silent) as url:
            response = await post(upstream, url, timeout_s=0.3)
            with pytest.raises(UpstreamTimeout) as info:
                await response.body()
            assert info.value.connect is False  # the request went out: a retry would repeat it
        await upstream.aclose()

    asyncio.run(main())


def sse_lines(big: str) -> list[str]:
    """The lines of a stream whose first event carries `big`."""
    async def stream(_: bytes, writer: asyncio.StreamWriter) -> None:
        body = f'data: {{"v": "{big}"}}\n\ndata: [DONE]\n\n'.encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()

    async def main() -> list[str]:
        upstream = AiohttpUpstream()
        try:
            async with raw_server(stream) as url:
                response = await post(upstream, url)
                try:
                    return [line async for line in response.lines()]
                finally:
                    await response.aclose()
        finally:
            await upstream.aclose()

    return asyncio.run(main())


def test_a_long_sse_line_arrives_whole() -> None:
    big = "x" * 300_000  # aiohttp's default buffer refuses lines over 128 KiB
    assert sse_lines(big) == [f'data: {{"v": "{big}"}}', "", "data: [DONE]", ""]


def test_a_line_over_the_limit_is_a_dropped_stream_not_a_crash() -> None:
    with pytest.raises(UpstreamDropped, match="stream ended early: LineTooLong"):
        sse_lines("x" * 3_000_000)


def test_one_client_serves_one_event_loop_after_another(simulator: Simulator) -> None:
    """The console's and the tests' loops come and go; the client follows them."""
    tiers = TierClient()
    policy = parse_policy({"name": "p", "default_tier": "t", "tiers": {
        "t": {"model": "m", "base_url": simulator.url + "/v1", "price_in": 0, "price_out": 0}}})
    payload = {"messages": [{"role": "user", "content": "hi"}]}
    for _ in range(2):
        assert asyncio.run(tiers.complete(policy, ["t"], payload)).tier == "t"
    tiers.release()


def test_an_unreachable_tier_is_retried_then_reported_as_connect_failures() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    policy = parse_policy({"name": "p", "default_tier": "t", "tiers": {
        "t": {"model": "m", "base_url": url, "price_in": 0, "price_out": 0, "max_retries": 2}}})
    with pytest.raises(AllTiersFailed) as info:
        asyncio.run(TierClient(retry_backoff_s=0).complete(policy, ["t"], {"messages": []}))
    assert [(a.try_no, a.outcome) for a in info.value.attempts] == [(1, "connect"), (2, "connect"), (3, "connect")]
    assert "cannot reach" in str(info.value) and "127.0.0.1" in str(info.value)


def test_a_loop_that_ended_leaves_no_unclosed_session_behind(simulator: Simulator) -> None:
    tiers = TierClient()
    policy = parse_policy({"name": "p", "default_tier": "t", "tiers": {
        "t": {"model": "m", "base_url": simulator.url + "/v1", "price_in": 0, "price_out": 0}}})
    asyncio.run(tiers.complete(policy, ["t"], {"messages": [{"role": "user", "content": "hi"}]}))
    gc.collect()  # what earlier tests left is not this client's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiers.release()  # what Runtime.close does once its server's loop has stopped
        del tiers
        gc.collect()
    assert not [w for w in caught if "Unclosed" in str(w.message)]


def test_an_http_proxy_in_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY reaches tiers behind a corporate proxy, as it did with httpx."""
    seen: list[bytes] = []
    answer = b'{"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}'

    async def proxy(head: bytes, writer: asyncio.StreamWriter) -> None:
        seen.append(head)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: "
                     + str(len(answer)).encode() + b"\r\n\r\n" + answer)
        await writer.drain()

    async def main() -> str:
        policy = parse_policy({"name": "p", "default_tier": "t", "tiers": {
            "t": {"model": "m", "base_url": "http://tier.invalid/v1", "price_in": 0, "price_out": 0}}})
        async with raw_server(proxy) as url:
            monkeypatch.setenv("HTTP_PROXY", url)
            tiers = TierClient()
            try:
                return (await tiers.complete(policy, ["t"], {"messages": []})).tier
            finally:
                await tiers.aclose()

    assert asyncio.run(main()) == "t"
    assert seen and seen[0].startswith(b"POST http://tier.invalid/v1/chat/completions HTTP/1.1")
