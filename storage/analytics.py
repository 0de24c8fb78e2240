"""Aggregates for the console's charts and review queue, computed in SQL (SQLite and
Postgres alike). Cost, request and latency figures read the hourly sums (storage/rollups.py)
for a range's whole hours before the watermark and the decisions themselves for the rest (a
partial first hour, the last hour or so), so a page stays fast with millions of decisions."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Float,
    Select,
    Subquery,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    union,
    union_all,
)
from sqlalchemy.sql.base import ReadOnlyColumnCollection

from storage.models import DECISION_HOURS, DECISIONS, LATENCY_HOURS, REVIEWS
from storage.reviews import latest_review_ids
from storage.rollups import (
    HOUR_SUMS,
    LATENCY_METRICS,
    OUTCOME,
    bin_value,
    hour_of,
    latency_bin,
    next_hour,
    sealed_until,
)

# Any select over the decision and review tables.
Query = Select[*tuple[Any, ...]]

D = DECISIONS.c
R = REVIEWS.c
H = DECISION_HOURS.c
L = LATENCY_HOURS.c
# Up to this many answered requests in a range, latency percentiles are exact (sorted rows);
# beyond it they come from the hourly bins, within 5%.
EXACT_PERCENTILES_UP_TO = 20_000
Columns = ReadOnlyColumnCollection[str, Any]


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    policy: str | None = None
    tier: str | None = None
    task: str | None = None
    status: str | None = None
    source: str | None = None

    def apply(self, query: Query) -> Query:
        conditions = [*self.outcome_conditions(D), *_between(self.since, self.until)]
        return query.where(and_(*conditions)) if conditions else query

    def outcome_conditions(self, c: Columns) -> list[ColumnElement[bool]]:
        """Everything but the time range, on the decisions' or the hourly sums' columns."""
        conditions = []
        for column, value in (("policy_name", self.policy), ("task", self.task), ("status", self.status),
                              ("source", self.source)):
            if value is not None:
                conditions.append(c[column] == value)
        if self.tier is not None:
            conditions.append(or_(c.tier == self.tier, c.routed_tier == self.tier))
        return conditions

    def split(self, sealed_until: datetime | None) -> tuple[tuple[datetime | None, datetime] | None,
                                                           list[tuple[datetime | None, datetime | None]]]:
        """The range's whole hours before the watermark, [start, end) (None: none), read from the
        sums, and the rest of the range, read from the decisions."""
        if sealed_until is None:
            return None, [(self.since, self.until)]
        start = next_hour(self.since) if self.since is not None else None
        end = min(hour_of(self.until), sealed_until) if self.until is not None else sealed_until
        if start is not None and start >= end:
            return None, [(self.since, self.until)]
        rest: list[tuple[datetime | None, datetime | None]] = []
        if self.since is not None and start is not None and start != self.since:
            rest.append((self.since, start))
        if self.until is None or end < self.until:
            rest.append((end, self.until))
        return (start, end), rest


def _rows(db: Engine, query: Query) -> list[dict[str, Any]]:
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def bucket(db: Engine, unit: str, at: Any = D.created_at) -> Any:
    """A time column (created_at unless told) truncated to an hour or a day, as text, in the database's own dialect."""
    if unit not in ("hour", "day"):
        raise ValueError("unit must be hour or day")
    if db.dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d %H:00" if unit == "hour" else "%Y-%m-%d", at)
    return func.to_char(func.date_trunc(unit, at), "YYYY-MM-DD HH24:00" if unit == "hour" else "YYYY-MM-DD")


def distinct_values(db: Engine, column: str) -> list[str]:
    """The values a column has taken; for the outcome columns from the hourly sums (far fewer
    rows) and the decisions after the watermark."""
    with db.connect() as conn:
        sealed = sealed_until(conn) if column in OUTCOME else None
        recent = select(D[column]).where(D[column].is_not(None), *_between(sealed, None))
        query = recent.distinct() if sealed is None else union(select(H[column]).where(H[column].is_not(None)), recent)
        return sorted({r[0] for r in conn.execute(query)})


def sums_sealed_until(db: Engine) -> datetime | None:
    """Decisions before this time are read from the hourly sums (None: none sealed yet)."""
    with db.connect() as conn:
        return sealed_until(conn)


def facts(db: Engine, f: Filters) -> Subquery:
    """Rows shaped like the hourly sums for everything `f` selects: the sums for its whole
    sealed hours, one row per decision for the rest."""
    with db.connect() as conn:
        whole, rest = f.split(sealed_until(conn))
    parts: list[Query] = []
    if whole is not None:
        start, end = whole
        conditions = [*f.outcome_conditions(H), H.hour < end]
        if start is not None:
            conditions.append(H.hour >= start)
        parts.append(select(H.hour, *(H[c] for c in (*OUTCOME, *HOUR_SUMS)), H.first_at, H.last_at)
                     .where(*conditions))
    for since, until in rest:
        parts.append(select(
            D.created_at.label("hour"), *(D[c] for c in OUTCOME), literal(1).label("requests"),
            case((D.fallback.is_(True), 1), else_=0).label("fallbacks"),
            func.coalesce(D.cost_usd, 0.0).label("cost_usd"),
            case((D.cost_usd.is_not(None), func.coalesce(D.baseline_cost_usd, 0.0)), else_=0.0)
            .label("paid_baseline_usd"),
            func.coalesce(D.baseline_cost_usd, 0.0).label("baseline_cost_usd"),
            func.coalesce(D.prompt_tokens, 0).label("prompt_tokens"),
            func.coalesce(D.completion_tokens, 0).label("completion_tokens"),
            D.created_at.label("first_at"), D.created_at.label("last_at"),
        ).where(*f.outcome_conditions(D), *_between(since, until)))
    return (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("facts")


def _between(since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    conditions = []
    if since is not None:
        conditions.append(D.created_at >= since)
    if until is not None:
        conditions.append(D.created_at < until)
    return conditions


def summary(db: Engine, f: Filters = Filters()) -> dict[str, Any]:
    x = facts(db, f).c
    query = select(
        func.coalesce(func.sum(x.requests), 0).label("requests"),
        func.sum(case((x.status == "ok", x.requests), else_=0)).label("ok"),
        func.sum(case((x.status == "error", x.requests), else_=0)).label("errors"),
        func.sum(x.fallbacks).label("fallbacks"),
        func.coalesce(func.sum(x.cost_usd), 0.0).label("cost_usd"),
        func.coalesce(func.sum(x.paid_baseline_usd), 0.0).label("baseline_cost_usd"),
        func.coalesce(func.sum(x.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(x.completion_tokens), 0).label("completion_tokens"),
    )
    out = _rows(db, query)[0]
    out = {k: (v or 0) for k, v in out.items()}
    out["savings_usd"] = out["baseline_cost_usd"] - out["cost_usd"]
    out["savings_pct"] = 100 * out["savings_usd"] / out["baseline_cost_usd"] if out["baseline_cost_usd"] else 0.0
    return out


def tier_over_time(db: Engine, f: Filters = Filters(), unit: str = "hour") -> list[dict[str, Any]]:
    x = facts(db, f).c
    b = bucket(db, unit, x.hour).label("bucket")
    tier = func.coalesce(x.tier, x.routed_tier, literal("(refused)")).label("tier")
    query = select(b, tier, func.sum(x.requests).label("requests"),
                   func.coalesce(func.sum(x.cost_usd), 0.0).label("cost_usd"),
                   func.coalesce(func.sum(x.baseline_cost_usd), 0.0).label("baseline_cost_usd"))
    return _rows(db, query.group_by(b, tier).order_by(b, tier))


def by_task(db: Engine, f: Filters = Filters()) -> list[dict[str, Any]]:
    x = facts(db, f).c
    query = (select(x.task, x.routed_tier.label("tier"), func.sum(x.requests).label("requests"))
             .where(x.task.is_not(None)))
    return _rows(db, query.group_by(x.task, x.routed_tier).order_by(x.task, x.routed_tier))


REFUSED = "(refused before routing)"


def rates_by_tier(db: Engine, f: Filters = Filters()) -> list[dict[str, Any]]:
    """Error and fallback rates per routed tier; requests refused before routing have a row of their own."""
    x = facts(db, f).c
    tier = func.coalesce(x.routed_tier, REFUSED).label("tier")
    requests = func.sum(x.requests)
    errors = func.sum(case((x.status == "error", x.requests), else_=0))
    query = select(
        tier, requests.label("requests"),
        (cast(errors, Float) / requests).label("error_rate"),
        (cast(func.sum(x.fallbacks), Float) / requests).label("fallback_rate"),
    )
    return _rows(db, query.group_by(tier).order_by(tier))


def latency_percentiles(db: Engine, metric: str, f: Filters = Filters(),
                        quantiles: tuple[int, ...] = (50, 95, 99)) -> list[dict[str, Any]]:
    """Nearest-rank percentiles per answering tier: exact up to EXACT_PERCENTILES_UP_TO answered
    requests, from the hourly latency bins (within 5%) beyond, where the filter is a time range
    and a policy (the bins are kept per policy and tier only)."""
    if metric not in LATENCY_METRICS:
        raise ValueError(f"metric must be one of {LATENCY_METRICS}")
    if f.task is not None or f.tier is not None or f.status is not None or f.source is not None:
        return exact_percentiles(db, metric, f, quantiles)
    counts = binned_latency(db, metric, f)
    if sum(sum(bins.values()) for bins in counts.values()) <= EXACT_PERCENTILES_UP_TO:
        return exact_percentiles(db, metric, f, quantiles)
    out = []
    for tier in sorted(counts):
        bins = sorted(counts[tier].items())
        n = sum(k for _, k in bins)
        row: dict[str, Any] = {"tier": tier, "n": n}
        for q in quantiles:
            rank, seen = max(1, math.ceil(n * q / 100)), 0
            for b, k in bins:
                seen += k
                if seen >= rank:
                    row[f"p{q}"] = bin_value(b)
                    break
        out.append(row)
    return out


def binned_latency(db: Engine, metric: str, f: Filters = Filters()) -> dict[str, Counter[int]]:
    """Answered requests per tier and latency bin in the range of `f` (time and policy only)."""
    counts: dict[str, Counter[int]] = defaultdict(Counter)
    with db.connect() as conn:
        whole, rest = f.split(sealed_until(conn))
        if whole is not None:
            start, end = whole
            conditions = [L.metric == metric, L.hour < end]
            if f.policy is not None:
                conditions.append(L.policy_name == f.policy)
            if start is not None:
                conditions.append(L.hour >= start)
            binned: Query = select(L.tier, L.bin, func.sum(L.n)).where(*conditions).group_by(L.tier, L.bin)
            for tier, b, n in conn.execute(binned):
                counts[tier][b] += n
        for since, until in rest:
            raw: Query = select(D.tier, D[metric]).where(*_between(since, until), D.tier.is_not(None),
                                                         D[metric].is_not(None))
            if f.policy is not None:
                raw = raw.where(D.policy_name == f.policy)
            for tier, value in conn.execute(raw):
                counts[tier][latency_bin(value)] += 1
    return counts


def exact_percentiles(db: Engine, metric: str, f: Filters = Filters(),
                      quantiles: tuple[int, ...] = (50, 95, 99)) -> list[dict[str, Any]]:
    """Nearest-rank percentiles per answering tier from the decisions, with window functions (portable SQL)."""
    value = D[metric]
    ranked = f.apply(select(
        D.tier.label("tier"), value.label("v"),
        func.row_number().over(partition_by=D.tier, order_by=value).label("rn"),
        func.count().over(partition_by=D.tier).label("n"),
    ).where(value.is_not(None), D.tier.is_not(None))).subquery()
    columns = [func.min(case((ranked.c.rn >= func.ceil(ranked.c.n * q / 100.0), ranked.c.v))).label(f"p{q}")
               for q in quantiles]
    query = select(ranked.c.tier, func.max(ranked.c.n).label("n"), *columns).group_by(ranked.c.tier)
    return _rows(db, query.order_by(ranked.c.tier))


def review_queue(db: Engine, f: Filters = Filters(), *, limit: int = 200, max_confidence: float | None = None,
                 unreviewed_only: bool = False) -> list[dict[str, Any]]:
    """Decisions to review: thumbs-down first, then the least confident, newest first within.
    Two queries, each in the order of an index (reviews; confidence and time), so neither
    sorts every decision in the range."""
    columns = (D.id, D.created_at, D.policy_name, D.policy_version, D.routed_tier, D.tier, D.task,
               D.confidence, D.difficulty, D.complexity, D.status, D.source, D.prompt, R.verdict)
    order = (D.confidence, D.created_at.desc())

    def narrowed(query: Query) -> Query:
        query = f.apply(query.where(D.task.is_not(None)))
        if max_confidence is not None:
            query = query.where(D.confidence < max_confidence)
        return query

    latest = latest_review_ids()
    thumbs_down = narrowed(select(*columns).select_from(latest)
                           .join(REVIEWS, R.id == latest.c.review_id).join(DECISIONS, D.id == latest.c.decision_id)
                           .where(R.verdict == "thumbs_down"))
    first = _rows(db, thumbs_down.order_by(*order).limit(limit))
    if len(first) >= limit:
        return first
    latest = latest_review_ids()
    rest = narrowed(select(*columns).outerjoin(latest, latest.c.decision_id == D.id)
                    .outerjoin(REVIEWS, R.id == latest.c.review_id))
    if unreviewed_only:
        rest = rest.where(or_(R.verdict.is_(None), R.verdict == "thumbs_up"))
    else:
        rest = rest.where(or_(R.verdict.is_(None), R.verdict != "thumbs_down"))
    return first + _rows(db, rest.order_by(*order).limit(limit - len(first)))


def _reviewed(f: Filters, *columns: Any) -> Query:
    latest = latest_review_ids()
    query = (select(*columns).join(latest, latest.c.decision_id == D.id)
             .join(REVIEWS, R.id == latest.c.review_id)
             .where(R.verdict.in_(("correct", "misrouted"))))
    return f.apply(query)


def task_confusion(db: Engine, f: Filters = Filters()) -> list[dict[str, Any]]:
    """Predicted task vs the reviewed task (a 'correct' verdict confirms the prediction)."""
    actual = func.coalesce(R.correct_task, D.task).label("actual")
    query = _reviewed(f, D.task.label("predicted"), actual, func.count().label("n"))
    return _rows(db, query.group_by(D.task, actual).order_by(D.task, actual))


def tier_confusion(db: Engine, f: Filters = Filters()) -> list[dict[str, Any]]:
    """Routed tier vs the tier it should have gone to."""
    should = func.coalesce(R.correct_tier, D.routed_tier).label("should")
    query = _reviewed(f, D.routed_tier.label("routed"), should, func.count().label("n"))
    return _rows(db, query.group_by(D.routed_tier, should).order_by(D.routed_tier, should))


def misroute_rate(db: Engine, f: Filters = Filters(), unit: str = "day") -> list[dict[str, Any]]:
    b = bucket(db, unit).label("bucket")
    query = _reviewed(f, b, func.count().label("reviewed"),
                      func.sum(case((R.verdict == "misrouted", 1), else_=0)).label("misrouted"))
    rows = _rows(db, query.group_by(b).order_by(b))
    for r in rows:
        r["rate"] = r["misrouted"] / r["reviewed"] if r["reviewed"] else 0.0
    return rows


def replay_rows(db: Engine, *, policy: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """The newest classified decisions with what a dry run needs, and any reviewed tier."""
    latest = latest_review_ids()
    query = (select(D.id, D.created_at, D.conversation_id, D.turn, D.task, D.task_probs,
                    D.complexity, D.complexity_dims, D.difficulty, D.tier_success, D.routed_tier, D.tier,
                    D.prompt_tokens, D.completion_tokens, D.pinned_tier,
                    R.verdict, R.correct_tier)
             .outerjoin(latest, latest.c.decision_id == D.id)
             .outerjoin(REVIEWS, R.id == latest.c.review_id)
             .where(D.task.is_not(None), D.task_probs.is_not(None)))
    if policy is not None:
        query = query.where(D.policy_name == policy)
    return _rows(db, query.order_by(D.created_at.desc()).limit(limit))


def by_policy_version(db: Engine, f: Filters = Filters()) -> list[dict[str, Any]]:
    """Requests, cost and savings per policy version: how each edit paid off."""
    x = facts(db, f).c
    query = select(
        x.policy_name.label("policy"), x.policy_version.label("version"), func.sum(x.requests).label("requests"),
        func.coalesce(func.sum(x.cost_usd), 0.0).label("cost_usd"),
        func.coalesce(func.sum(x.paid_baseline_usd), 0.0).label("baseline_cost_usd"),
        func.min(x.first_at).label("first"), func.max(x.last_at).label("last"),
    ).where(x.policy_version.is_not(None))
    rows = _rows(db, query.group_by(x.policy_name, x.policy_version).order_by(x.policy_name, x.policy_version))
    for r in rows:
        base = r["baseline_cost_usd"]
        r["saved_pct"] = 100 * (base - r["cost_usd"]) / base if base else 0.0
    return rows
