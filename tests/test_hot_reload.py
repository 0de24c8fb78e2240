"""A policy version activated anywhere (console, CLI, another process) reaches the
running API server within 2 s, without a restart."""

from __future__ import annotations

import time

import httpx

from router import policy_admin
from storage.db import make_engine
from tests.conftest import Api

CODE = [{"role": "user", "content": "Write a Python function that merges two sorted lists"}]


def routed_tier(api: Api) -> tuple[str, int]:
    body = httpx.post(f"{api.base_url}/route", json={"messages": CODE}).json()
    return body["tier"], body["policy"]["version"]


def wait_for(api: Api, expected: tuple[str, int], limit_s: float = 2.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        if routed_tier(api) == expected:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"server still routes {routed_tier(api)} after {limit_s}s; expected {expected}")


def test_activation_and_rollback_reach_the_running_server(api: Api) -> None:
    assert routed_tier(api) == ("nemotron-super-49b", 1)  # the keyword classifier's code reads above easy-code
    # Another process's view of the same database: a separate engine.
    other = make_engine(api.runtime.db.url.render_as_string(hide_password=False))
    try:
        doc = api.runtime.registry.get().policy.to_document()
        doc["rules"] = [r for r in doc["rules"] if r["name"] != "code-reasoning"]
        for rule in doc["rules"]:
            if rule["name"] == "easy-code":
                rule.pop("difficulty")  # all code -> 8B
        stored = policy_admin.save(other, doc, created_by="test", comment="all code to 8B", activate=True)
        assert stored.version == 2
        wait_for(api, ("llama-3-8b", 2))
        r = httpx.post(f"{api.base_url}/chat/completions", json={"messages": CODE})
        assert r.headers["x-router-tier"] == "llama-3-8b"
        assert r.headers["x-router-policy"] == "task-complexity@2"

        policy_admin.rollback(other, "task-complexity", by="test")
        wait_for(api, ("nemotron-super-49b", 1))
        assert httpx.get(f"{api.url}/health?tiers=0").json()["default_policy"]["version"] == 1
    finally:
        other.dispose()
    rows = api.decisions()
    assert rows[-1]["policy_version"] == 2 and rows[-1]["tier"] == "llama-3-8b"
