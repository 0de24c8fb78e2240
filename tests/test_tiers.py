"""router/tiers.py through httpx.MockTransport: which failures are retried, which fall back
to the next tier, and which are the client's error and stop at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest

from router.policy import parse_policy
from router.tiers import AllTiersFailed, TierClient, TierRejected

POLICY = parse_policy({
    "name": "p", "default_tier": "small", "fallback_order": ["small", "large"],
    "tiers": {name: {"model": f"m-{name}", "base_url": f"http://{name}.test/v1", "api_key_env": "KEY",
                     "price_in": 1, "price_out": 1, "timeout_s": 2, "max_retries": 1}
              for name in ("small", "large")},
})
ANSWER = {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant",
          "content": "hi"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}


def client(responses: dict[str, list[httpx.Response]]) -> tuple[TierClient, Counter[str]]:
    """A tier client whose hosts answer from `responses` in turn (the last one repeats)."""
    calls: Counter[str] = Counter()

    def handle(request: httpx.Request) -> httpx.Response:
        host = request.url.host.split(".")[0]
        queue = responses[host]
        calls[host] += 1
        assert request.headers["authorization"] == "Bearer sk-secret"
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return TierClient(environ={"KEY": "sk-secret"}, transport=httpx.MockTransport(handle), retry_backoff_s=0), calls


def complete(tiers: TierClient) -> Any:
    return asyncio.run(tiers.complete(POLICY, ["small", "large"], {"messages": [{"role": "user", "content": "hi"}]}))


def test_an_answer_records_one_ok_attempt() -> None:
    tiers, calls = client({"small": [httpx.Response(200, json=ANSWER)]})
    result = complete(tiers)
    assert (result.tier, result.model) == ("small", "m-small")
    assert [(a.tier, a.outcome) for a in result.attempts] == [("small", "ok")]
    assert calls == {"small": 1}


@pytest.mark.parametrize("status", [400, 413, 422])
def test_a_4xx_about_the_request_is_neither_retried_nor_sent_to_another_tier(status: int) -> None:
    body = {"error": {"message": "max_tokens must be at least 1", "type": "invalid_request_error"}}
    tiers, calls = client({"small": [httpx.Response(status, json=body)], "large": [httpx.Response(200, json=ANSWER)]})
    with pytest.raises(TierRejected) as info:
        complete(tiers)
    assert calls == {"small": 1}
    assert info.value.status == status and info.value.tier == "small"
    assert "max_tokens must be at least 1" in str(info.value)
    assert [a.status for a in info.value.attempts] == [status]


@pytest.mark.parametrize("status", [408, 429, 503])
def test_busy_or_failing_tiers_are_retried_then_fall_back(status: int) -> None:
    tiers, calls = client({"small": [httpx.Response(status, text="busy")], "large": [httpx.Response(200, json=ANSWER)]})
    result = complete(tiers)
    assert result.tier == "large"
    assert calls == {"small": 2, "large": 1}  # one retry (max_retries 1), then the next tier


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_misconfigured_tier_falls_back_without_retrying(status: int) -> None:
    tiers, calls = client({"small": [httpx.Response(status, text="no")], "large": [httpx.Response(200, json=ANSWER)]})
    assert complete(tiers).tier == "large"
    assert calls == {"small": 1, "large": 1}


def test_every_tier_failing_names_each_and_never_echoes_the_key() -> None:
    echo = httpx.Response(500, content=orjson.dumps({"error": "bad auth header Bearer sk-secret"}))
    tiers, _ = client({"small": [echo], "large": [httpx.Response(200, text="not json")]})
    with pytest.raises(AllTiersFailed) as info:
        complete(tiers)
    message = str(info.value)
    assert "small" in message and "large" in message and "not JSON" in message
    assert "sk-secret" not in message and "[redacted]" in message


def test_a_stream_is_opened_on_the_first_tier_that_sends_a_chunk() -> None:
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "h"}}]}
    sse = b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n"
    tiers, calls = client({"small": [httpx.Response(502, text="down")],
                           "large": [httpx.Response(200, content=sse, headers={"content-type": "text/event-stream"})]})

    async def run() -> list[dict[str, Any]]:
        opened = await tiers.open_stream(POLICY, ["small", "large"], {"messages": [{"role": "user", "content": "x"}]})
        rest = [c async for c in opened.rest()]
        await opened.aclose()
        return [opened.first, *rest]

    chunks = asyncio.run(run())
    assert chunks == [chunk]
    assert calls == {"small": 2, "large": 1}
