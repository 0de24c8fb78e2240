"""The hourly sums behind the console's cost and latency figures, on SQLite and Postgres: sealed
hours equal a recount from the decisions, late rows are added once, ranges that cut hours or
cross the watermark count exactly, percentiles read from bins stay within 5% of the sorted
ones, several writers lose no count, and decisions logged before the migration are sealed
afterwards, a day per round."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, insert, select

from storage import analytics as a
from storage import rollups
from storage.db import MIGRATIONS, make_engine, migrate
from storage.decision_log import DecisionLog
from storage.models import DECISION_HOURS, DECISIONS, LATENCY_HOURS
from storage.queries import list_decisions
from storage.record import DecisionRecord
from tests.conftest import seeded_log

N = 600


@pytest.fixture
def seeded(database_url: str):
    with seeded_log(database_url, N, days=2, reviews=50) as log:
        yield log


def snapshot(db: Engine) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with db.connect() as conn:
        hours = [dict(r) for r in conn.execute(select(DECISION_HOURS).order_by(DECISION_HOURS.c.key)).mappings()]
        bins = [dict(r) for r in conn.execute(select(LATENCY_HOURS).order_by(LATENCY_HOURS.c.key)).mappings()]
    return hours, bins


def record(**fields: Any) -> DecisionRecord:
    return DecisionRecord.from_mapping({"id": uuid.uuid4().hex, "request_id": "r", "source": "api", "status": "ok",
                                        "policy_name": "p", "policy_version": 1, "task": "Open QA",
                                        "routed_tier": "small", "tier": "small", "cost_usd": 0.001,
                                        "baseline_cost_usd": 0.01, "total_ms": 120.0, **fields})


def watermark(db: Engine) -> datetime | None:
    with db.connect() as conn:
        return rollups.sealed_until(conn)


def test_sealed_hours_equal_a_recount_and_fresh_rows_wait_for_their_seal(seeded) -> None:
    db, rows = seeded
    sealed = watermark(db)
    assert sealed is not None and sealed <= datetime.now(UTC) - timedelta(seconds=rollups.SEAL_LAG_S)
    hours, bins = snapshot(db)
    assert sum(h["requests"] for h in hours) == sum(r.created_at < sealed for r in rows) > N // 2
    assert all(h["hour"] < sealed for h in hours)
    with db.begin() as conn:
        assert rollups.rebuild(conn) == sum(r.created_at < sealed for r in rows)
    again = snapshot(db)
    money = ("cost_usd", "paid_baseline_usd", "baseline_cost_usd")
    assert [h["key"] for h in hours] == [h["key"] for h in again[0]]
    for before, after in zip(hours, again[0], strict=True):
        assert {k: v for k, v in before.items() if k not in money} == {k: v for k, v in after.items() if k not in money}
        assert [before[k] for k in money] == pytest.approx([after[k] for k in money])
    assert bins == again[1]
    # A fresh row through the log is not summed on the way in: readers take it from the table.
    log = DecisionLog(db, seal_every_s=0)
    try:
        log.submit(record()).result(10)
    finally:
        log.close()
    assert snapshot(db)[0] == again[0]
    assert a.summary(db)["requests"] == N + 1


def test_late_rows_are_summed_once_whether_their_hour_is_sealed_or_not(seeded) -> None:
    db, _ = seeded
    sealed = watermark(db)
    assert sealed is not None
    old = sealed - timedelta(hours=5, minutes=20)  # an hour already sealed
    unsealed = datetime.now(UTC) - timedelta(minutes=10)  # late, in an hour not sealed yet
    log = DecisionLog(db, seal_every_s=0)
    try:
        for when in (old, old, unsealed, None):  # None: fresh
            log.submit(record(**({"created_at": when} if when else {}))).result(10)
    finally:
        log.close()
    everything = a.Filters()
    assert a.summary(db, everything)["requests"] == N + 4
    one_hour = a.Filters(since=rollups.hour_of(old), until=rollups.hour_of(old) + timedelta(hours=1))
    assert a.summary(db, one_hour)["requests"] == 2 + sum(
        1 for r in list_decisions(db, limit=N + 10)
        if one_hour.since <= r.created_at < one_hour.until and r.request_id != "r")
    with db.begin() as conn:  # a seal two hours on recounts the unsealed hours: each row still once
        rollups.seal(conn, now=datetime.now(UTC) + timedelta(hours=2))
    assert a.summary(db, everything)["requests"] == N + 4
    assert sum(h["requests"] for h in snapshot(db)[0]) == N + 4


def test_ranges_that_cut_hours_count_every_decision_once(seeded) -> None:
    db, rows = seeded
    now = datetime.now(UTC)
    sealed = watermark(db)
    assert sealed is not None
    ranges = [(now - timedelta(hours=30, minutes=17), now - timedelta(hours=2, minutes=41)),  # both ends inside hours
              (sealed - timedelta(hours=3, minutes=5), sealed + timedelta(minutes=7)),  # across the watermark
              (now - timedelta(hours=5, minutes=50), now - timedelta(hours=5, minutes=10)),  # inside one hour
              (rollups.hour_of(now) - timedelta(hours=20), rollups.hour_of(now) - timedelta(hours=3)),  # whole hours
              (None, now - timedelta(hours=7, minutes=3)), (now - timedelta(minutes=90), None)]
    for since, until in ranges:
        f = a.Filters(since=since, until=until)
        chosen = [r for r in rows
                  if (since is None or r.created_at >= since) and (until is None or r.created_at < until)]
        s = a.summary(db, f)
        assert s["requests"] == len(chosen), (since, until)
        assert s["cost_usd"] == pytest.approx(sum(r.cost_usd or 0 for r in chosen))
        assert sum(v["requests"] for v in a.by_policy_version(db, f)) == len(chosen)
        assert sum(t["requests"] for t in a.tier_over_time(db, f, "hour")) == len(chosen)
        answered = [r for r in chosen if r.tier is not None and r.total_ms is not None]
        counts = a.binned_latency(db, "total_ms", f)
        assert sum(sum(c.values()) for c in counts.values()) == len(answered)


def test_binned_percentiles_are_within_five_percent_of_the_sorted_ones(seeded, monkeypatch) -> None:
    db, _ = seeded
    since = datetime.now(UTC) - timedelta(hours=40, minutes=13)
    for metric in a.LATENCY_METRICS:
        exact = {r["tier"]: r for r in a.latency_percentiles(db, metric, a.Filters(since=since))}
        monkeypatch.setattr(a, "EXACT_PERCENTILES_UP_TO", 0)
        binned = {r["tier"]: r for r in a.latency_percentiles(db, metric, a.Filters(since=since))}
        monkeypatch.undo()
        assert binned.keys() == exact.keys() and binned
        for tier, row in binned.items():
            assert row["n"] == exact[tier]["n"]
            for q in ("p50", "p95", "p99"):
                assert row[q] == pytest.approx(exact[tier][q], rel=0.05), (metric, tier, q)


def test_concurrent_writers_lose_no_count(database_url: str) -> None:
    """Two processes' logs (two engines) adding late rows to the same sealed hours at once."""
    engines = [make_engine(database_url) for _ in range(2)]
    migrate(engines[0])
    with engines[0].begin() as conn:
        rollups.seal(conn)
    earlier = datetime.now(UTC) - timedelta(days=1)
    logs = [DecisionLog(e, max_batch=16, seal_every_s=0) for e in engines]
    per_writer = 300

    def write(log: DecisionLog) -> None:
        futures = [log.submit(record(created_at=earlier + timedelta(seconds=i))) for i in range(per_writer)]
        for future in futures:
            future.result(30)

    threads = [threading.Thread(target=write, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for log in logs:
        log.close()
    assert a.summary(engines[0])["requests"] == 2 * per_writer
    assert sum(h["requests"] for h in snapshot(engines[0])[0]) == 2 * per_writer  # all from the sums
    assert sum(sum(c.values()) for c in a.binned_latency(engines[0], "total_ms").values()) == 2 * per_writer
    for e in engines:
        e.dispose()


def test_decisions_logged_before_the_migration_are_sealed_a_day_at_a_time(database_url: str) -> None:
    db = make_engine(database_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0004")
    earlier = datetime.now(UTC) - timedelta(days=3)
    rows = [record(created_at=earlier + timedelta(minutes=7 * i)).to_row() for i in range(50)]
    with db.begin() as conn:
        conn.execute(insert(DECISIONS), rows)
    migrate(db)
    assert watermark(db) is None  # nothing sealed yet: every figure from the decisions
    assert a.summary(db)["requests"] == 50
    with db.begin() as conn:  # one round seals at most a day: the rest is left for the next
        assert rollups.seal(conn).more
    assert watermark(db) == rollups.hour_of(earlier) + timedelta(hours=rollups.SEAL_MAX_HOURS)
    rollups.seal_due(db)  # what the decision log's background step runs
    assert sum(h["requests"] for h in snapshot(db)[0]) == 50
    assert a.summary(db)["requests"] == 50
    assert a.summary(db, a.Filters(since=earlier + timedelta(minutes=7 * 10)))["requests"] == 40
    db.dispose()


def test_the_log_seals_due_hours_in_the_background(database_url: str) -> None:
    db = make_engine(database_url)
    migrate(db)
    earlier = datetime.now(UTC) - timedelta(days=2)
    with db.begin() as conn:  # written around the log, as before an upgrade
        conn.execute(insert(DECISIONS), [record(created_at=earlier + timedelta(minutes=i)).to_row() for i in range(30)])
    log = DecisionLog(db, seal_every_s=0.05)
    try:
        deadline = time.monotonic() + 10
        while log.stats().sealed_until is None and time.monotonic() < deadline:
            time.sleep(0.05)
        sealed = log.stats().sealed_until
    finally:
        log.close()
    assert sealed is not None and sealed > earlier + timedelta(days=1)  # two rounds: a day each, then the rest
    assert sum(h["requests"] for h in snapshot(db)[0]) == 30
    db.dispose()


def test_a_round_sums_without_the_lock_and_recounts_when_a_late_row_came_in(database_url: str) -> None:
    db = make_engine(database_url)
    migrate(db)
    earlier = datetime.now(UTC) - timedelta(hours=6)
    with db.begin() as conn:
        conn.execute(insert(DECISIONS), [record(created_at=earlier + timedelta(minutes=i)).to_row() for i in range(20)])
    plan = rollups.plan_seal(db)
    assert plan.summed.count == 20 and plan.sealed is None
    log = DecisionLog(db, seal_every_s=0)
    try:  # a late row of the planned hours, written between the plan and its write
        log.submit(record(created_at=earlier + timedelta(minutes=30))).result(10)
    finally:
        log.close()
    done = rollups.apply_seal(db, plan)
    assert done is not None and done.read == 21
    assert sum(h["requests"] for h in snapshot(db)[0]) == 21
    # A plan whose watermark another process has moved since is not written.
    stale = rollups.plan_seal(db, now=datetime.now(UTC) + timedelta(hours=3))
    with db.begin() as conn:
        rollups.seal(conn, now=datetime.now(UTC) + timedelta(hours=3))
    assert rollups.apply_seal(db, stale) is None
    assert sum(h["requests"] for h in snapshot(db)[0]) == 21
    db.dispose()
