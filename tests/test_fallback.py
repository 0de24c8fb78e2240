"""Tier failures: retries, fallback along the policy's order, and what the row records."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import Api, Simulator

QA = "What is the capital of France?"  # routes to llama-3-70b; fallback order 70b -> 49b -> 8b
M70 = "meta/llama3-70b-instruct"
M49 = "nvidia/llama-3.3-nemotron-super-49b-v1"
M8 = "meta/llama3-8b-instruct"


def ask(api: Api, stream: bool = False) -> tuple[httpx.Response, str]:
    r = httpx.post(f"{api.base_url}/chat/completions", timeout=30,
                   json={"model": "router", "stream": stream, "messages": [{"role": "user", "content": QA}]})
    return r, r.headers.get("x-router-decision-id", "")


def row_for(api: Api, decision_id: str) -> dict:
    return {r["id"]: r for r in api.decisions()}[decision_id]


def test_500_retries_once_then_falls_back(api: Api, simulator: Simulator) -> None:
    simulator.configure(models={M70: {"mode": "error", "error_status": 500}})
    r, decision_id = ask(api)
    assert r.status_code == 200
    assert r.headers["x-router-tier"] == "nemotron-super-49b"  # who answered
    assert r.headers["x-router-routed-tier"] == "llama-3-70b"  # what the policy chose
    assert r.json()["model"] == M49
    assert simulator.stats() == {M70: 2, M49: 1}  # one retry on 5xx, then the next tier
    row = row_for(api, decision_id)
    assert row["routed_tier"] == "llama-3-70b" and row["tier"] == "nemotron-super-49b"
    assert row["fallback"] and row["status"] == "ok"
    outcomes = [(a["tier"], a["outcome"], a.get("status")) for a in row["attempts"]]
    assert outcomes == [("llama-3-70b", "status", 500), ("llama-3-70b", "status", 500),
                        ("nemotron-super-49b", "ok", 200)]
    assert row["cost_usd"] == pytest.approx((row["prompt_tokens"] * 0.10 + row["completion_tokens"] * 0.40) / 1e6)
    metrics = httpx.get(f"{api.url}/metrics").text
    assert 'router_fallbacks_total{routed_tier="llama-3-70b",tier="nemotron-super-49b"} 1.0' in metrics
    assert 'router_errors_total{cause="tier_status"} 2.0' in metrics


@pytest.mark.parametrize("stream", [False, True])
def test_a_tiers_400_is_the_clients_error_neither_retried_nor_fallen_back(sqlite_api: Api, simulator: Simulator,
                                                                          stream: bool) -> None:
    simulator.configure(models={M70: {"mode": "error", "error_status": 400}})
    r, decision_id = ask(sqlite_api, stream=stream)
    assert r.status_code == 400, r.text  # not 502 all_tiers_failed, which clients retry
    error = r.json()["error"]
    assert "simulated failure with status 400" in error["message"] and error["type"] == "invalid_request_error"
    assert simulator.stats() == {M70: 1}
    row = row_for(sqlite_api, decision_id)
    assert (row["status"], row["http_status"], row["routed_tier"]) == ("error", 400, "llama-3-70b")
    assert [a["status"] for a in row["attempts"]] == [400]


def test_timeout_falls_back(api_factory, sqlite_url: str, simulator: Simulator) -> None:
    api = api_factory(sqlite_url, timeout_s=0.5)
    simulator.configure(models={M70: {"mode": "hang"}})
    r, decision_id = ask(api)
    assert r.status_code == 200 and r.json()["model"] == M49
    row = row_for(api, decision_id)
    assert [a["outcome"] for a in row["attempts"]] == ["timeout", "ok"]  # a timeout is not retried
    assert row["total_ms"] >= 500


def test_malformed_json_falls_back(sqlite_api: Api, simulator: Simulator) -> None:
    simulator.configure(models={M70: {"mode": "malformed"}})
    r, decision_id = ask(sqlite_api)
    assert r.status_code == 200 and r.json()["model"] == M49
    assert row_for(sqlite_api, decision_id)["attempts"][0]["outcome"] == "malformed"


def test_every_tier_failing_is_a_502_with_the_reasons(api: Api, simulator: Simulator) -> None:
    simulator.configure(default={"mode": "error", "error_status": 503})
    client = api.openai()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="router", messages=[{"role": "user", "content": QA}])
    err = info.value
    assert err.status_code == 502
    assert err.body["code"] == "all_tiers_failed" and err.body["type"] == "upstream_error"
    assert "llama-3-70b: HTTP 503" in err.body["message"] and "llama-3-8b: HTTP 503" in err.body["message"]
    decision_id = err.response.headers["x-router-decision-id"]
    row = row_for(api, decision_id)
    assert row["status"] == "error" and row["http_status"] == 502 and row["tier"] is None
    assert "every tier failed" in row["error"] and len(row["attempts"]) == 6
    assert row["cost_usd"] is None


def test_all_timeouts_is_a_504(api_factory, sqlite_url: str, simulator: Simulator) -> None:
    api = api_factory(sqlite_url, timeout_s=0.3, fallback_order=["llama-3-70b"])
    simulator.configure(default={"mode": "hang"})
    r, decision_id = ask(api)
    assert r.status_code == 504 and r.json()["error"]["code"] == "all_tiers_failed"
    assert row_for(api, decision_id)["http_status"] == 504


def test_stream_falls_back_before_the_first_token(api: Api, simulator: Simulator) -> None:
    simulator.configure(models={M70: {"mode": "error"}})
    stream = api.openai().chat.completions.create(model="router", stream=True,
                                                  messages=[{"role": "user", "content": QA}])
    chunks = list(stream)
    assert {c.model for c in chunks} == {M49}
    row = api.decisions()[0]
    assert row["fallback"] and row["tier"] == "nemotron-super-49b" and row["status"] == "ok"


def test_stream_dropped_mid_answer_reports_an_error(api: Api, simulator: Simulator) -> None:
    simulator.configure(models={M70: {"mode": "drop"}})
    client = api.openai()
    stream = client.chat.completions.create(model="router", stream=True, messages=[{"role": "user", "content": QA}])
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "stopped mid-answer" in str(info.value.message)
    assert "".join(received)  # the first half arrived
    row = api.decisions()[0]
    assert row["status"] == "error" and row["http_status"] == 502 and row["tier"] == "llama-3-70b"
    assert row["attempts"][-1]["outcome"] == "dropped"
    assert row["response"] == "".join(received)
    assert row["usage_estimated"] and row["completion_tokens"] > 0


def test_missing_usage_is_estimated(sqlite_api: Api, simulator: Simulator) -> None:
    simulator.configure(default={"send_usage": False})
    r, decision_id = ask(sqlite_api)
    assert r.status_code == 200 and "usage" not in r.json()
    row = row_for(sqlite_api, decision_id)
    assert row["usage_estimated"] and row["prompt_tokens"] > 0 and row["completion_tokens"] > 40
    r, decision_id = ask(sqlite_api, stream=True)
    assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n")
    row = row_for(sqlite_api, decision_id)
    assert row["usage_estimated"] and row["completion_tokens"] > 40


def test_unreachable_tier_falls_back(api_factory, sqlite_url: str, simulator: Simulator) -> None:
    api = api_factory(sqlite_url)
    # Point one tier at a closed port: connect errors are retried, then the next tier answers.
    policy = api.runtime.registry.get().policy
    broken = policy.model_copy(update={"tiers": {**policy.tiers, "llama-3-70b": policy.tiers["llama-3-70b"]
                                                 .model_copy(update={"api_key_env": None,
                                                                     "base_url": "http://127.0.0.1:9/v1"})}})
    from router import policy_admin

    policy_admin.save(api.runtime.db, broken.to_document(), activate=True)
    api.runtime.registry.refresh()
    r, decision_id = ask(api)
    assert r.status_code == 200 and r.json()["model"] == M49
    outcomes = [a["outcome"] for a in row_for(api, decision_id)["attempts"]]
    assert outcomes == ["connect", "connect", "ok"]
