"""Hourly sums of the decisions, for every hour before a watermark.

The console's cost and latency figures over days of traffic read these instead of the
decisions table: a week of hours per outcome is a few thousand rows whatever the request
rate. Sums are exact; latency is kept as counts per bin, each bin 10% wider than the one
below, so a percentile read from bins is within 5% of the exact one.

Hours are sealed in the background (`seal`, about once a minute from each decision log),
SEAL_LAG_S after they end: their decisions are summed from the table and the watermark moves
past them. The request path adds nothing for fresh rows, which readers take from the
decisions table itself (everything at or after the watermark). A row that arrives late
(created more than LATE_S ago: a spill replayed at start, a long outage) is added to the sums
in its own insert's transaction; if its hour is not sealed yet the seal recounts that hour.
Increments are upserts (`ON CONFLICT DO UPDATE SET n = n + excluded.n`) in key order, so
several writers lose no count and cannot deadlock. A background round sums its hours without
the write lock (a long sum never holds up inserts on SQLite), then takes the watermark row (and
on Postgres the sums tables), counts its hours again and sums them again there only if a late
row came in meanwhile; two rounds or a round and a late row never count a decision twice.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from storage.models import DECISION_HOURS, DECISIONS, LATENCY_HOURS, ROLLUP_WATERMARK

# The columns a decision's hour row is keyed by, besides the hour.
OUTCOME = ("policy_name", "policy_version", "task", "routed_tier", "tier", "status", "source")
LATENCY_METRICS = ("classify_ms", "ttft_ms", "total_ms")
BIN_RATIO = 1.1
_LOG_RATIO = math.log(BIN_RATIO)
_SMALLEST_MS = 1e-4  # zero and negative times share the lowest bin
HOUR_SUMS = ("requests", "fallbacks", "cost_usd", "paid_baseline_usd", "baseline_cost_usd", "prompt_tokens",
             "completion_tokens")
BACKFILL_CHUNK = 20_000
LATE_S = 300.0  # a row created longer ago than this when it is written goes into the sums at once
SEAL_LAG_S = 900.0  # an hour is sealed this long after it ends (well past LATE_S)
SEAL_MAX_HOURS = 24  # one background seal sums at most this many hours (the next catches up)


def latency_bin(ms: float) -> int:
    """Bin b holds times in [BIN_RATIO**b, BIN_RATIO**(b+1)) milliseconds."""
    return math.floor(math.log(max(ms, _SMALLEST_MS)) / _LOG_RATIO)


def bin_value(b: int) -> float:
    """A bin's representative time: its geometric middle (at most 5% from any time in it)."""
    return float(BIN_RATIO ** (b + 0.5))


def hour_of(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def next_hour(t: datetime) -> datetime:
    start = hour_of(t)
    return start if start == t else start + timedelta(hours=1)


def _key(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, default=str).encode()).hexdigest()


class Sums:
    """Hour rows and latency-bin rows accumulated from decisions (column values)."""

    def __init__(self) -> None:
        self.hours: dict[str, dict[str, Any]] = {}
        self.bins: dict[str, dict[str, Any]] = {}
        self.count = 0

    def add(self, rows: Iterable[Mapping[str, Any]]) -> None:
        hours, bins = self.hours, self.bins
        for r in rows:
            self.count += 1
            created = r["created_at"]
            hour = hour_of(created)
            outcome = [r.get(c) for c in OUTCOME]
            key = _key(hour.isoformat(), *outcome)
            h = hours.get(key)
            if h is None:
                h = hours[key] = {"key": key, "hour": hour, **dict(zip(OUTCOME, outcome, strict=True)),
                                  **dict.fromkeys(HOUR_SUMS, 0), "first_at": created, "last_at": created}
            cost, baseline = r.get("cost_usd"), r.get("baseline_cost_usd") or 0.0
            h["requests"] += 1
            h["fallbacks"] += bool(r.get("fallback"))
            h["cost_usd"] += cost or 0.0
            h["paid_baseline_usd"] += baseline if cost is not None else 0.0
            h["baseline_cost_usd"] += baseline
            h["prompt_tokens"] += r.get("prompt_tokens") or 0
            h["completion_tokens"] += r.get("completion_tokens") or 0
            h["first_at"] = min(h["first_at"], created)
            h["last_at"] = max(h["last_at"], created)
            tier = r.get("tier")
            if tier is None:
                continue
            for metric in LATENCY_METRICS:
                value = r.get(metric)
                if value is None:
                    continue
                b = latency_bin(value)
                bin_key = _key(hour.isoformat(), r.get("policy_name"), tier, metric, b)
                entry = bins.setdefault(bin_key, {"key": bin_key, "hour": hour, "policy_name": r.get("policy_name"),
                                                  "tier": tier, "metric": metric, "bin": b, "n": 0})
                entry["n"] += 1

    def upsert(self, conn: Connection) -> None:
        """Add these sums to the tables, in key order (see the module's note on deadlocks)."""
        _upsert(conn, DECISION_HOURS, sorted(self.hours.values(), key=lambda h: h["key"]), HOUR_SUMS,
                earliest="first_at", latest="last_at")
        _upsert(conn, LATENCY_HOURS, sorted(self.bins.values(), key=lambda b: b["key"]), ("n",))


def add(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Add decisions (column values, as inserted) to the hourly sums, inside the caller's transaction."""
    summed = Sums()
    summed.add(rows)
    summed.upsert(conn)


def _upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], summed: tuple[str, ...],
            earliest: str | None = None, latest: str | None = None) -> None:
    if not rows:
        return
    is_sqlite = conn.dialect.name == "sqlite"
    statement = (sqlite.insert if is_sqlite else postgresql.insert)(table)
    excluded = statement.excluded
    updates: dict[str, Any] = {c: table.c[c] + excluded[c] for c in summed}
    # SQLite's two-argument min/max are scalar; Postgres spells them least/greatest.
    if earliest:
        updates[earliest] = (func.min if is_sqlite else func.least)(table.c[earliest], excluded[earliest])
    if latest:
        updates[latest] = (func.max if is_sqlite else func.greatest)(table.c[latest], excluded[latest])
    conn.execute(statement.on_conflict_do_update(index_elements=["key"], set_=updates), rows)


def late(rows: Iterable[Mapping[str, Any]], now: datetime) -> list[Mapping[str, Any]]:
    cutoff = now - timedelta(seconds=LATE_S)
    return [r for r in rows if r["created_at"] < cutoff]


def sealed_until(conn: Connection) -> datetime | None:
    """Every decision created before this time is in the sums (None: nothing sealed yet)."""
    return conn.execute(select(ROLLUP_WATERMARK.c.sealed_until).where(ROLLUP_WATERMARK.c.id == 1)).scalar()


@dataclass(frozen=True)
class Sealed:
    read: int  # decisions summed
    more: bool  # hours are still due (the round stopped at max_hours)


SEAL_COLUMNS = ("created_at", *OUTCOME, "fallback", "cost_usd", "baseline_cost_usd", "prompt_tokens",
                "completion_tokens", *LATENCY_METRICS)


def _lock(conn: Connection) -> datetime | None:
    """Take the write lock (SQLite then serialises other writers, Postgres other seals by the
    row lock and late rows' upserts by the table locks) and read the watermark under it."""
    insert_watermark = (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(ROLLUP_WATERMARK)
    conn.execute(insert_watermark.values(id=1, sealed_until=None).on_conflict_do_nothing(index_elements=["id"]))
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE decision_hours, latency_hours IN SHARE ROW EXCLUSIVE MODE"))
    return conn.execute(select(ROLLUP_WATERMARK.c.sealed_until).where(ROLLUP_WATERMARK.c.id == 1)
                        .with_for_update()).scalar()


def _span(conn: Connection, sealed: datetime | None, now: datetime,
          max_hours: int | None) -> tuple[datetime, datetime, bool]:
    """The hours to seal, [start, target), and whether more are due after them."""
    target = hour_of(now - timedelta(seconds=SEAL_LAG_S))
    start = sealed
    if start is None:
        oldest = conn.execute(select(func.min(DECISIONS.c.created_at))).scalar()
        start = hour_of(oldest) if oldest is not None else target
    behind = max_hours is not None and start + timedelta(hours=max_hours) < target
    if max_hours is not None:
        target = min(target, start + timedelta(hours=max_hours))
    return start, target, behind


def _in_span(start: datetime, target: datetime) -> Any:
    return (DECISIONS.c.created_at >= start) & (DECISIONS.c.created_at < target)


def _sum_span(conn: Connection, start: datetime, target: datetime) -> Sums:
    summed = Sums()
    if start < target:
        query = (select(*(DECISIONS.c[c] for c in SEAL_COLUMNS)).where(_in_span(start, target))
                 .execution_options(yield_per=BACKFILL_CHUNK))
        for chunk in conn.execute(query).mappings().partitions():
            summed.add(dict(r) for r in chunk)
    return summed


def _replace(conn: Connection, start: datetime, target: datetime, summed: Sums) -> None:
    """Put `summed` in place of the span's sums (late rows upserted there are in the recount)
    and move the watermark past the span."""
    if start < target:
        for table in (DECISION_HOURS, LATENCY_HOURS):
            conn.execute(table.delete().where(table.c.hour >= start, table.c.hour < target))
        summed.upsert(conn)
    conn.execute(ROLLUP_WATERMARK.update().where(ROLLUP_WATERMARK.c.id == 1).values(sealed_until=max(start, target)))


def seal(conn: Connection, *, now: datetime | None = None, max_hours: int | None = SEAL_MAX_HOURS) -> Sealed:
    """Sum the hours that ended SEAL_LAG_S ago and are not sealed yet (at most `max_hours` of
    them), all inside the caller's transaction, and move the watermark past them."""
    start, target, behind = _span(conn, _lock(conn), now or datetime.now(UTC), max_hours)
    summed = _sum_span(conn, start, target)
    _replace(conn, start, target, summed)
    return Sealed(summed.count, behind)


def rebuild(conn: Connection, *, now: datetime | None = None) -> int:
    """Forget every sum and seal all history again (after decisions were written around the
    decision log, as a bulk import does); returns the decisions read."""
    for table in (DECISION_HOURS, LATENCY_HOURS, ROLLUP_WATERMARK):
        conn.execute(table.delete())
    return seal(conn, now=now, max_hours=None).read


def seal_due(db: Engine, *, stop: Callable[[], bool] = lambda: False) -> int:
    """Seal every hour that is due (the decision log's background step), SEAL_MAX_HOURS per
    round. Each round sums its hours without the write lock (a long sum never holds up the
    decision log's inserts on SQLite) and then, under the lock, counts the span again: if a late
    row came in meanwhile it sums the span again there. Returns the decisions summed."""
    total = 0
    while not stop():
        plan = plan_seal(db)
        done = apply_seal(db, plan)
        if done is None:
            continue  # another process moved the watermark meanwhile: plan again
        total += done.read
        if not done.more:
            break
    return total


@dataclass(frozen=True)
class SealPlan:
    sealed: datetime | None  # the watermark the plan started from
    start: datetime
    target: datetime
    more: bool
    summed: Sums


def plan_seal(db: Engine, *, now: datetime | None = None) -> SealPlan:
    """A round's hours and their sums, read without the write lock."""
    with db.connect() as conn:
        sealed = sealed_until(conn)
        start, target, more = _span(conn, sealed, now or datetime.now(UTC), SEAL_MAX_HOURS)
        return SealPlan(sealed, start, target, more, _sum_span(conn, start, target))


def apply_seal(db: Engine, plan: SealPlan) -> Sealed | None:
    """Write a planned round under the lock; None if the watermark is no longer the plan's."""
    with db.begin() as conn:
        if _lock(conn) != plan.sealed:
            return None
        summed = plan.summed
        if plan.start < plan.target:
            count = conn.execute(select(func.count()).select_from(DECISIONS)
                                 .where(_in_span(plan.start, plan.target))).scalar_one()
            if count != summed.count:  # a late row arrived after the plan read the span
                summed = _sum_span(conn, plan.start, plan.target)
        _replace(conn, plan.start, plan.target, summed)
        return Sealed(summed.count, plan.more)
