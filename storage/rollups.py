"""Hourly sums of the decisions, written in the same transaction as the decisions themselves.

The console's cost and latency figures over days of traffic read these instead of the
decisions table: a week of hours per outcome is a few thousand rows whatever the request
rate. Sums are exact; latency is kept as counts per bin, each bin 10% wider than the one
below, so a percentile read from bins is within 5% of the exact one.

Increments are upserts (`ON CONFLICT DO UPDATE SET n = n + excluded.n`), so several
processes writing at once never lose a count; rows are upserted in key order so two
writers take their locks in the same order and cannot deadlock.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from storage.models import DECISION_HOURS, DECISIONS, LATENCY_HOURS

# The columns a decision's hour row is keyed by, besides the hour.
OUTCOME = ("policy_name", "policy_version", "task", "routed_tier", "tier", "status", "source")
LATENCY_METRICS = ("classify_ms", "ttft_ms", "total_ms")
BIN_RATIO = 1.1
_LOG_RATIO = math.log(BIN_RATIO)
_SMALLEST_MS = 1e-4  # zero and negative times share the lowest bin
HOUR_SUMS = ("requests", "fallbacks", "cost_usd", "paid_baseline_usd", "baseline_cost_usd", "prompt_tokens",
             "completion_tokens")
BACKFILL_CHUNK = 20_000


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


def sums(rows: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The hour rows and latency-bin rows that `rows` (decision column values) add up to."""
    hours: dict[str, dict[str, Any]] = {}
    bins: dict[str, dict[str, Any]] = {}
    for r in rows:
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
    return sorted(hours.values(), key=lambda h: h["key"]), sorted(bins.values(), key=lambda b: b["key"])


def add(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Add decisions (column values, as inserted) to the hourly sums, inside the caller's transaction."""
    hours, bins = sums(rows)
    _upsert(conn, DECISION_HOURS, hours, HOUR_SUMS, earliest="first_at", latest="last_at")
    _upsert(conn, LATENCY_HOURS, bins, ("n",))


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


def rebuild(conn: Connection) -> int:
    """Recompute every hourly sum from the decisions table (a migration's backfill); returns the
    decisions read."""
    conn.execute(DECISION_HOURS.delete())
    conn.execute(LATENCY_HOURS.delete())
    columns = ["created_at", *OUTCOME, "fallback", "cost_usd", "baseline_cost_usd", "prompt_tokens",
               "completion_tokens", *LATENCY_METRICS]
    query = select(*(DECISIONS.c[c] for c in columns)).execution_options(yield_per=BACKFILL_CHUNK)
    result = conn.execute(query)
    total = 0
    for chunk in result.mappings().partitions():
        add(conn, (dict(r) for r in chunk))
        total += len(chunk)
    return total
