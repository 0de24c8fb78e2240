"""The official openai client against `serve`, with the simulator as tiers, on SQLite
and on Postgres: answers, headers, streaming, multi-turn and complete decision rows."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Api

CODE = "Write a Python function that merges two sorted lists"
HARD = ("Prove step by step why the algorithm's complexity is optimal, analyze the trade-offs, and derive the "
        "probability bound; compare with distributed quantum approaches and evaluate each option")


def test_non_streaming_answer_headers_and_row(api: Api) -> None:
    client = api.openai()
    raw = client.chat.completions.with_raw_response.create(
        model="router", messages=[{"role": "user", "content": CODE}])
    completion = raw.parse()
    # The keyword classifier's difficulty (a stand-in from its cue words) reads any code above the
    # easy-code ceiling, so code goes to the reasoning tier.
    assert raw.headers["x-router-tier"] == "nemotron-super-49b"
    assert raw.headers["x-router-task"] == "Code Generation"
    assert completion.model == "nvidia/llama-3.3-nemotron-super-49b-v1"
    assert "simulated answer from nvidia/llama-3.3-nemotron-super-49b-v1" in completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.completion_tokens > 0

    # Committed before the client got the response: a fresh connection sees it at once.
    rows = api.decisions()
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == raw.headers["x-router-decision-id"]
    assert row["source"] == "api" and row["status"] == "ok" and row["http_status"] == 200
    assert row["policy_name"] == "task-complexity" and row["policy_version"] == 1
    assert row["task"] == "Code Generation" and row["rule"] == "code-reasoning"
    assert 0.34 < row["difficulty"] <= 1
    assert row["reason"].startswith("task Code Generation")
    assert row["tier"] == row["routed_tier"] == "nemotron-super-49b"
    assert row["model"] == "nvidia/llama-3.3-nemotron-super-49b-v1"
    assert row["fallback"] is False or row["fallback"] == 0
    assert row["classifier_backend"] == "keyword"
    assert abs(sum(row["task_probs"].values()) - 1) < 1e-6 if isinstance(row["task_probs"], dict) else True
    assert row["prompt_tokens"] == completion.usage.prompt_tokens
    assert row["completion_tokens"] == completion.usage.completion_tokens
    assert not row["usage_estimated"]
    expected_cost = (row["prompt_tokens"] * 0.10 + row["completion_tokens"] * 0.40) / 1e6
    assert row["cost_usd"] == pytest.approx(expected_cost)
    baseline = (row["prompt_tokens"] * 0.30 + row["completion_tokens"] * 0.40) / 1e6
    assert row["baseline_tier"] == "llama-3-70b" and row["baseline_cost_usd"] == pytest.approx(baseline)
    for timing in ("classify_ms", "route_ms", "total_ms"):
        assert row[timing] is not None and row[timing] >= 0
    assert row["total_ms"] >= row["route_ms"] >= row["classify_ms"]
    assert row["prompt"] == CODE and row["prompt_chars"] == len(CODE)
    assert row["response"] == completion.choices[0].message.content
    assert row["turn"] == 1 and row["conversation_id"]


def test_streaming_answer_and_row(api: Api) -> None:
    client = api.openai()
    with client.chat.completions.with_streaming_response.create(
            model="router", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": HARD}]) as response:
        assert response.headers["x-router-tier"] == "nemotron-super-49b"  # hard -> reasoning tier
        decision_id = response.headers["x-router-decision-id"]
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "simulated answer from nvidia/llama-3.3-nemotron-super-49b-v1" in text
    usage = [c.usage for c in chunks if c.usage]
    assert len(usage) == 1 and usage[0].completion_tokens == 48

    row = {r["id"]: r for r in api.decisions()}[decision_id]
    assert row["stream"] and row["status"] == "ok" and row["rule"] == "hard-questions"
    assert row["ttft_ms"] is not None and 0 < row["ttft_ms"] <= row["total_ms"]
    assert row["response"] == text
    assert row["completion_tokens"] == 48 and not row["usage_estimated"]


def test_stream_without_include_usage_sends_no_usage_chunk(sqlite_api: Api) -> None:
    stream = sqlite_api.openai().chat.completions.create(
        model="router", stream=True, messages=[{"role": "user", "content": "Hello!"}])
    chunks = list(stream)
    assert chunks and all(c.usage is None for c in chunks)
    # ...but the router asked the tier for usage, so the row has real counts.
    row = sqlite_api.decisions()[0]
    assert row["completion_tokens"] == 48 and not row["usage_estimated"]


def test_multi_turn_each_turn_is_its_own_decision(api: Api) -> None:
    client = api.openai()
    messages = [{"role": "user", "content": "Pythonでソートアルゴリズムを実装して"}]
    tiers = []
    for follow_up in ("このアルゴリズムの計算量を説明して", "もっと簡潔にまとめて", None):
        raw = client.chat.completions.with_raw_response.create(model="router", messages=messages)
        tiers.append((raw.headers["x-router-task"], raw.headers["x-router-tier"]))
        messages.append({"role": "assistant", "content": raw.parse().choices[0].message.content})
        if follow_up:
            messages.append({"role": "user", "content": follow_up})
    assert tiers == [("Code Generation", "nemotron-super-49b"), ("Open QA", "llama-3-70b"), ("Rewrite", "llama-3-8b")]
    rows = api.decisions()
    assert [r["turn"] for r in rows] == [1, 2, 3]
    assert len({r["conversation_id"] for r in rows}) == 1
    assert [r["prompt"] for r in rows] == [m["content"] for m in messages if m["role"] == "user"]


def test_pin_tier_by_model_name_and_policy_by_extra_body(api: Api) -> None:
    client = api.openai()
    raw = client.chat.completions.with_raw_response.create(
        model="nemotron-super-49b", messages=[{"role": "user", "content": "Hello!"}])
    assert raw.headers["x-router-tier"] == "nemotron-super-49b"
    raw = client.chat.completions.with_raw_response.create(
        model="router", messages=[{"role": "user", "content": "What is the capital of France?"}],
        extra_body={"router": {"policy": "economy"}})
    assert raw.headers["x-router-tier"] == "llama-3-8b"
    assert raw.headers["x-router-policy"] == "economy@1"
    rows = api.decisions()
    assert rows[0]["pinned_tier"] == "nemotron-super-49b" and rows[0]["rule"] == "pinned"
    assert rows[1]["policy_name"] == "economy" and rows[1]["rule"] == "default"


def test_models_route_and_health(sqlite_api: Api) -> None:
    models = sqlite_api.openai().models.list()
    ids = [m.id for m in models.data]
    assert ids[0] == "router" and {"llama-3-8b", "llama-3-70b", "nemotron-super-49b"} <= set(ids)

    r = httpx.post(f"{sqlite_api.base_url}/route",
                   json={"model": "router", "messages": [{"role": "user", "content": CODE}]})
    assert r.status_code == 200
    body = r.json()
    assert body["tier"] == "nemotron-super-49b" and body["rule"] == "code-reasoning"
    assert 0.34 < body["classification"]["difficulty"] <= 1 and body["reason"].startswith("task Code Generation")
    probs = body["classification"]["probabilities"]
    assert len(probs) == 11 and abs(sum(probs.values()) - 1) < 1e-4
    assert body["fallback_order"] == ["llama-3-70b", "llama-3-8b"]
    assert sqlite_api.decisions() == []  # a dry decision is not logged

    health = httpx.get(f"{sqlite_api.url}/health").json()
    assert health["status"] == "ok"
    assert health["classifier"]["backend"] == "keyword" and health["classifier"]["difficulty"] == "complexity score"
    assert health["database"]["location"].startswith("SQLite")
    assert health["default_policy"] == {"name": "task-complexity", "version": 1}
    assert all(t["reachable"] for t in health["tiers"].values())
