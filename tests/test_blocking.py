"""router/blocking.py: the console's way into the engine, without an event loop of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.blocking import BlockingEngine
from router.chat_request import parse_chat_request
from router.errors import APIError
from storage.queries import get_decision
from tests.conftest import Simulator, make_runtime, write_config


@pytest.fixture
def blocking(tmp_path: Path, sqlite_url: str, simulator: Simulator):  # type: ignore[no-untyped-def]
    simulator.configure(default={"ttft_ms": 1, "tokens_per_s": 2000})
    engine = BlockingEngine(make_runtime(sqlite_url, write_config(tmp_path), simulator))
    yield engine
    engine.close()


def test_a_streamed_turn_yields_text_and_is_recorded(blocking: BlockingEngine) -> None:
    turn = blocking.chat(parse_chat_request({"messages": [{"role": "user", "content": "Tell me a joke"}]},
                                            source="playground"))
    text = "".join(turn.text())
    assert text and turn.answer == text and turn.error is None
    row = get_decision(blocking.runtime.db, turn.decision_id)
    assert row is not None and row.source == "playground" and row.status == "ok" and row.response == text


def test_a_refused_turn_raises_and_is_recorded(blocking: BlockingEngine) -> None:
    req = parse_chat_request({"messages": [{"role": "user", "content": "hi"}], "model": "gpt-9"},
                             source="playground")
    with pytest.raises(APIError) as info:
        blocking.chat(req)
    assert info.value.status == 404
    row = get_decision(blocking.runtime.db, info.value.headers["x-router-decision-id"])
    assert row is not None and row.source == "playground" and row.http_status == 404


def test_route_and_health(blocking: BlockingEngine) -> None:
    summary = blocking.route(parse_chat_request({"messages": [{"role": "user", "content": "Summarize: a b c"}]}))
    assert summary["tier"] in summary["fallback_order"] + [summary["tier"]]
    health = blocking.health()
    assert health["status"] == "ok" and set(health["tiers"]) == {"nemotron-super-49b", "llama-3-70b", "llama-3-8b"}
    assert all(t["reachable"] for t in health["tiers"].values())
