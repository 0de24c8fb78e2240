"""router/engine.py with its tiers behind httpx.MockTransport and a real SQLite decision log:
what it routes, what it records (its own refusals included), and how a tier's verdict on a
bad request reaches the client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from router.chat_request import parse_chat_request
from router.classifier import KeywordClassifier, Prediction
from router.classifier.guarded import GuardedClassifier
from router.classifier.prediction import TASK_LABELS
from router.config import DEFAULT_CONFIG, load_seed
from router.engine import CompletionResult, Engine, StreamResult
from router.errors import APIError
from router.metrics import Metrics
from router.policy_registry import PolicyRegistry
from router.recorder import Recorder
from router.tiers import TierClient
from storage import policies as store
from storage.db import make_engine, migrate
from storage.decision_log import DecisionLog
from storage.queries import get_decision, list_decisions

SEED = load_seed(DEFAULT_CONFIG)


def answer(model: str, text: str = "an answer") -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion", "model": model, "usage": {"prompt_tokens": 1000,
            "completion_tokens": 500}, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                   "finish_reason": "stop"}]}


class FixedClassifier:
    """Predictions chosen by the test, by prompt text."""

    name = "fixed"

    def __init__(self, by_text: dict[str, Prediction]) -> None:
        self.by_text = by_text

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        return [next(p for key, p in self.by_text.items() if t.startswith(key)) for t in texts]  # latest turn first

    def info(self) -> dict[str, Any]:
        return {"backend": "keyword"}  # inline, like the keyword classifier


def prediction(task: str, confidence: float) -> Prediction:
    rest = (1 - confidence) / (len(TASK_LABELS) - 1)
    return Prediction(task, {t: confidence if t == task else rest for t in TASK_LABELS}, 0.1, {}, "fixed")


class Harness:
    def __init__(self, tmp_path: Path, *, redact: bool = False) -> None:
        self.db = make_engine(f"sqlite:///{tmp_path / 'engine.db'}")
        migrate(self.db)
        docs = {}
        for name, policy in SEED.policies.items():
            doc = policy.to_document()
            for tier in doc["tiers"].values():
                tier.update(base_url="http://tiers.test/v1", api_key_env=None, max_retries=0)
            docs[name] = doc
        store.seed(self.db, docs)
        self.requests: list[dict[str, Any]] = []
        self.reply: Any = None  # a callable(body) -> httpx.Response
        self.metrics = Metrics()
        self.log = DecisionLog(self.db, spill_path=tmp_path / "spill.jsonl")
        self.engine = Engine(
            classifier=GuardedClassifier(KeywordClassifier()),
            registry=PolicyRegistry(self.db, SEED.default_policy),
            tiers=TierClient(transport=httpx.MockTransport(self._handle), environ={}),
            recorder=Recorder(self.log, metrics=self.metrics, redact_prompts=redact))

    def _handle(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        self.requests.append(body)
        if self.reply is not None:
            response: httpx.Response = self.reply(body)
            return response
        return httpx.Response(200, json=answer(body["model"]))

    def run(self, coro: Any) -> Any:
        return asyncio.run(coro)

    def close(self) -> None:
        self.log.close()
        self.db.dispose()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **extra}


def test_a_routed_answer_is_recorded_with_its_cost(harness: Harness) -> None:
    result = harness.run(harness.engine.chat(chat("Summarize this article in three lines"), source="api"))
    assert isinstance(result, CompletionResult)
    assert result.body["model"] == "meta/llama3-8b-instruct" and result.plan.choice.tier == "llama-3-8b"
    row = get_decision(harness.db, result.plan.decision_id)
    assert row is not None and row.status == "ok" and row.task == "Summarization" and row.tier == "llama-3-8b"
    assert row.cost_usd == pytest.approx((1000 * 0.03 + 500 * 0.06) / 1e6)
    assert row.baseline_cost_usd == pytest.approx((1000 * 0.30 + 500 * 0.40) / 1e6)
    assert not row.usage_estimated and row.prompt == "Summarize this article in three lines"
    exported = harness.metrics.render(harness.log.stats()).decode()
    assert 'router_requests_total{policy="task-complexity",status="ok",task="Summarization",tier="llama-3-8b"} 1.0' \
        in exported
    assert 'router_difficulty_count{routed_tier="llama-3-8b"} 1.0' in exported
    assert row.difficulty is not None and 0 <= row.difficulty <= 1 and row.reason == "task Summarization"


def test_the_engine_records_its_own_refusals(harness: Harness) -> None:
    with pytest.raises(APIError) as info:
        harness.run(harness.engine.chat(chat("hi", router={"policy": "nope"}, stream=True), source="api"))
    assert info.value.status == 400 and info.value.code == "policy_not_found"
    row = get_decision(harness.db, info.value.headers["x-router-decision-id"])
    assert row is not None and (row.status, row.http_status, row.policy_name, row.stream) == ("error", 400, "nope",
                                                                                               True)
    with pytest.raises(APIError) as bad:
        harness.run(harness.engine.chat({"messages": []}, source="api"))
    assert get_decision(harness.db, bad.value.headers["x-router-decision-id"]) is not None
    assert harness.requests == []  # nothing reached a tier


class SlowModel:
    """A model backend that takes 100 ms a prompt."""

    name = "slow"

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        import time

        time.sleep(0.1 * len(texts))
        return KeywordClassifier().classify(texts)

    def info(self) -> dict[str, Any]:
        return {"backend": "slow"}


def test_an_overloaded_classifier_refuses_with_503_and_retry_after(harness: Harness) -> None:
    harness.engine.classifier = GuardedClassifier(SlowModel(), max_pending=2)

    async def burst() -> list[Any]:
        return await asyncio.gather(*(harness.engine.chat(chat(f"question {i}"), source="api") for i in range(5)),
                                    return_exceptions=True)

    results = harness.run(burst())
    refused = [r for r in results if isinstance(r, APIError)]
    assert len(refused) == 3 and sum(isinstance(r, CompletionResult) for r in results) == 2
    err = refused[0]
    assert (err.status, err.code, err.headers["Retry-After"]) == (503, "classifier_busy", "1")
    assert "prompts waiting" in err.message
    row = get_decision(harness.db, err.headers["x-router-decision-id"])
    assert row is not None and (row.status, row.http_status) == ("error", 503)


def test_route_decides_without_calling_a_tier_or_recording(harness: Harness) -> None:
    request = parse_chat_request(chat("Write a Python function that reverses a list"))
    summary = harness.run(harness.engine.route(request))
    assert summary["classification"]["task"] == "Code Generation" and summary["tier"]
    assert harness.requests == [] and list_decisions(harness.db) == []


def test_a_tier_refusing_the_request_is_the_clients_error(harness: Harness) -> None:
    message = {"error": {"message": "max_tokens is too large for this model", "type": "invalid_request_error"}}
    harness.reply = lambda body: httpx.Response(400, json=message)
    with pytest.raises(APIError) as info:
        harness.run(harness.engine.chat(chat("Summarize this", max_tokens=10**9), source="api"))
    err = info.value
    assert err.status == 400 and "max_tokens is too large for this model" in err.message
    assert len(harness.requests) == 1  # no retry, no fallback
    row = get_decision(harness.db, err.headers["x-router-decision-id"])
    assert row is not None and row.http_status == 400 and row.status == "error"
    assert "max_tokens is too large" in (row.error or "") and len(row.attempts or []) == 1


def test_a_low_confidence_follow_up_stays_on_the_conversations_tier(harness: Harness) -> None:
    harness.engine.classifier.classifier = FixedClassifier({
        "Implement": prediction("Code Generation", 0.9), "shorter": prediction("Rewrite", 0.2)})
    first = harness.run(harness.engine.chat(chat("Implement quicksort"), source="api"))
    follow = chat("Implement quicksort")
    follow["messages"] += [{"role": "assistant", "content": "def qs(): ..."}, {"role": "user", "content": "shorter"}]
    second = harness.run(harness.engine.chat(follow, source="api"))
    assert isinstance(first, CompletionResult) and isinstance(second, CompletionResult)
    assert second.plan.choice.rule == "confidence_floor"
    assert second.plan.choice.tier == first.plan.answered_by


def test_a_stream_is_relayed_and_recorded_with_estimated_usage(harness: Harness) -> None:
    chunks = [{"id": "s", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": w}}]}
              for w in ("Hello", " there")]
    sse = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    harness.reply = lambda body: httpx.Response(200, content=sse, headers={"content-type": "text/event-stream"})

    async def run() -> tuple[StreamResult, list[dict[str, Any]]]:
        result = await harness.engine.chat(chat("Tell me a story", stream=True), source="api")
        assert isinstance(result, StreamResult)
        return result, [c async for c in result.chunks]

    result, got = harness.run(run())
    assert [c["choices"][0]["delta"]["content"] for c in got] == ["Hello", " there"]
    assert harness.requests[0]["stream_options"] == {"include_usage": True}
    row = get_decision(harness.db, result.plan.decision_id)
    assert row is not None and row.response == "Hello there" and row.usage_estimated and row.completion_tokens


def test_redaction_keeps_a_hash_and_a_length_only(tmp_path: Path) -> None:
    h = Harness(tmp_path, redact=True)
    try:
        result = h.run(h.engine.chat(chat("my secret plan"), source="api"))
        row = get_decision(h.db, result.plan.decision_id)
        assert row is not None and row.prompt is None and row.response is None
        assert row.prompt_chars == len("my secret plan") and row.prompt_hash and len(row.prompt_hash) == 64
    finally:
        h.close()


def test_valid_parameters_and_unknown_fields_reach_the_tier_untouched(harness: Harness) -> None:
    params = {"temperature": 0.2, "top_p": None, "max_completion_tokens": 64, "stop": ["\n\n"], "seed": 7,
              "response_format": {"type": "json_object"}, "user": "u1", "reasoning_effort": "low",
              "metadata": {"team": "a"}}
    harness.run(harness.engine.chat(chat("Summarize: a b c", router={"policy": "economy"}, **params), source="api"))
    sent = harness.requests[0]
    assert {k: sent[k] for k in params} == params
    assert "router" not in sent and sent["stream"] is False and sent["model"] == "meta/llama3-8b-instruct"
