"""The SQL aggregates behind the console, on SQLite and Postgres, checked against the
same figures computed in Python from the rows."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from router.config import DEFAULT_CONFIG, load_seed
from router.dry_run import replay
from storage import analytics as a
from storage.decision_log import DecisionLog
from storage.record import DecisionRecord
from storage.reviews import add_review, reviewed_rows, to_csv, to_jsonl
from tests.conftest import seeded_log

N = 600


@pytest.fixture
def seeded(database_url: str):
    with seeded_log(database_url, N, days=3, reviews=120) as log:
        yield log


def nearest_rank(values: list[float], q: int) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * q / 100) - 1)]


def test_summary_matches_the_rows(seeded) -> None:
    db, rows = seeded
    s = a.summary(db)
    assert s["requests"] == N
    assert s["errors"] == sum(r.status == "error" for r in rows)
    assert s["fallbacks"] == sum(bool(r.fallback) for r in rows)
    assert s["cost_usd"] == pytest.approx(sum(r.cost_usd or 0 for r in rows))
    baseline = sum(r.baseline_cost_usd for r in rows if r.cost_usd is not None)
    assert s["baseline_cost_usd"] == pytest.approx(baseline)
    assert s["savings_pct"] == pytest.approx(100 * (baseline - s["cost_usd"]) / baseline)


def test_time_buckets_and_filters(seeded) -> None:
    db, rows = seeded
    hourly = a.tier_over_time(db, unit="hour")
    assert sum(r["requests"] for r in hourly) == N
    assert all(len(r["bucket"]) == len("2026-01-01 00:00") for r in hourly)
    daily = a.tier_over_time(db, unit="day")
    assert sum(r["requests"] for r in daily) == N and all(len(r["bucket"]) == 10 for r in daily)
    since = datetime.now(UTC) - timedelta(days=1)
    recent = a.summary(db, a.Filters(since=since))
    assert recent["requests"] == sum(r.created_at >= since for r in rows)
    only_8b = a.summary(db, a.Filters(tier="llama-3-8b"))
    assert only_8b["requests"] == sum("llama-3-8b" in (r.tier, r.routed_tier) for r in rows)
    by_task = Counter()
    for r in a.by_task(db):
        by_task[r["task"]] += r["requests"]
    assert by_task == Counter(r.task for r in rows)


def test_latency_percentiles_are_nearest_rank(seeded) -> None:
    db, rows = seeded
    for metric in ("classify_ms", "ttft_ms", "total_ms"):
        for row in a.latency_percentiles(db, metric):
            values = [getattr(r, metric) for r in rows if r.tier == row["tier"]]
            assert row["n"] == len(values)
            for q in (50, 95, 99):
                assert row[f"p{q}"] == pytest.approx(nearest_rank(values, q))
    with pytest.raises(ValueError, match="metric must be one of"):
        a.latency_percentiles(db, "prompt; DROP TABLE decisions")


def test_rates_and_versions(seeded) -> None:
    db, rows = seeded
    rates = a.rates_by_tier(db)
    for r in rates:
        mine = [x for x in rows if (x.routed_tier or a.REFUSED) == r["tier"]]
        assert r["requests"] == len(mine)
        assert r["error_rate"] == pytest.approx(sum(x.status == "error" for x in mine) / len(mine))
    assert sum(r["requests"] for r in rates) == len(rows)  # refused requests count too
    versions = a.by_policy_version(db)
    assert [(v["policy"], v["version"], v["requests"]) for v in versions] == [("task-complexity", 1, N)]


def test_review_queue_confusion_and_export(seeded) -> None:
    db, rows = seeded
    queue = a.review_queue(db, limit=50)
    verdicts = [q["verdict"] for q in queue]
    downs = verdicts.count("thumbs_down")
    assert downs and all(v == "thumbs_down" for v in verdicts[:downs])  # thumbs-down first
    rest = [q["confidence"] for q in queue[downs:]]
    assert rest == sorted(rest)  # then the least confident
    target = next(r for r in rows if r.task == "Code Generation")
    add_review(db, target.id, "misrouted", correct_task="Open QA", correct_tier="llama-3-70b", note="é ✓")
    confusion = {(c["predicted"], c["actual"]): c["n"] for c in a.task_confusion(db)}
    assert confusion[("Code Generation", "Open QA")] >= 1
    tiers = {(c["routed"], c["should"]): c["n"] for c in a.tier_confusion(db)}
    assert tiers[(target.routed_tier, "llama-3-70b")] >= 1
    rate = a.misroute_rate(db, unit="day")
    assert sum(r["reviewed"] for r in rate) == len(reviewed_rows(db))
    exported = reviewed_rows(db)
    mine = next(e for e in exported if e["decision_id"] == target.id)
    assert mine["correct_task"] == "Open QA" and mine["verdict"] == "misrouted"
    assert to_csv(exported).count("\n") == len(exported) + 1
    assert '"note": "é ✓"' in to_jsonl(exported)


def test_dry_run_on_logged_rows(seeded) -> None:
    db, _ = seeded
    policy = load_seed(DEFAULT_CONFIG).policies["task-complexity"]
    rows = a.replay_rows(db, policy="task-complexity", limit=N)
    same = replay(rows, policy, policy)
    assert same.replayed == N and same.changed == 0 and same.cost_delta_usd == pytest.approx(0)
    everything_small = policy.model_copy(update={"rules": (), "default_tier": "llama-3-8b"})
    report = replay(rows, everything_small, policy)
    assert report.changed == sum(r["routed_tier"] != "llama-3-8b" for r in rows)
    assert report.cost_after_usd < report.cost_before_usd


def test_refused_requests_have_their_own_row_in_the_rates(seeded) -> None:
    db, _ = seeded
    log = DecisionLog(db)
    log.submit(DecisionRecord(id="refused1", request_id="r", source="api", status="error", http_status=400,
                              error="invalid_request_error: messages is required")).result(10)
    log.close()
    refused = [r for r in a.rates_by_tier(db) if r["tier"] == a.REFUSED]
    assert refused == [{"tier": a.REFUSED, "requests": 1, "error_rate": 1.0, "fallback_rate": 0.0}]
