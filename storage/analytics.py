"""Aggregates for the console's charts and review queue, computed in SQL (SQLite and
Postgres alike), so pages stay fast with hundreds of thousands of decisions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, and_, case, func, literal, or_, select

from storage.models import DECISIONS, REVIEWS
from storage.reviews import latest_review_ids

# Any select over the decision and review tables.
Query = Select[*tuple[Any, ...]]

D = DECISIONS.c
R = REVIEWS.c
LATENCY_METRICS = ("classify_ms", "ttft_ms", "total_ms")


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
        conditions = []
        if self.since is not None:
            conditions.append(D.created_at >= self.since)
        if self.until is not None:
            conditions.append(D.created_at < self.until)
        for column, value in (("policy_name", self.policy), ("task", self.task), ("status", self.status),
                              ("source", self.source)):
            if value is not None:
                conditions.append(D[column] == value)
        if self.tier is not None:
            conditions.append(or_(D.tier == self.tier, D.routed_tier == self.tier))
        return query.where(and_(*conditions)) if conditions else query


def _rows(db: Engine, query: Query) -> list[dict[str, Any]]:
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def bucket(db: Engine, unit: str) -> Any:
    """created_at truncated to an hour or a day, as text, in the database's own dialect."""
    if unit not in ("hour", "day"):
        raise ValueError("unit must be hour or day")
    if db.dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d %H:00" if unit == "hour" else "%Y-%m-%d", D.created_at)
    return func.to_char(func.date_trunc(unit, D.created_at), "YYYY-MM-DD HH24:00" if unit == "hour" else "YYYY-MM-DD")


def distinct_values(db: Engine, column: str) -> list[str]:
    query = select(D[column]).where(D[column].is_not(None)).distinct().order_by(D[column])
    with db.connect() as conn:
        return [r[0] for r in conn.execute(query)]


def summary(db: Engine, f: Filters = Filters()) -> dict[str, Any]:
    query = f.apply(select(
        func.count().label("requests"),
        func.sum(case((D.status == "ok", 1), else_=0)).label("ok"),
        func.sum(case((D.status == "error", 1), else_=0)).label("errors"),
        func.sum(case((D.fallback.is_(True), 1), else_=0)).label("fallbacks"),
        func.coalesce(func.sum(D.cost_usd), 0.0).label("cost_usd"),
        func.coalesce(func.sum(case((D.cost_usd.is_not(None), D.baseline_cost_usd))), 0.0).label("baseline_cost_usd"),
        func.coalesce(func.sum(D.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(D.completion_tokens), 0).label("completion_tokens"),
    ))
    out = _rows(db, query)[0]
    out = {k: (v or 0) for k, v in out.items()}
    out["savings_usd"] = out["baseline_cost_usd"] - out["cost_usd"]
    out["savings_pct"] = 100 * out["savings_usd"] / out["baseline_cost_usd"] if out["baseline_cost_usd"] else 0.0
    return out


def tier_over_time(db: Engine, f: Filters = Filters(), unit: str = "hour") -> list[dict[str, Any]]:
    b = bucket(db, unit).label("bucket")
    tier = func.coalesce(D.tier, D.routed_tier, literal("(refused)")).label("tier")
    query = f.apply(select(b, tier, func.count().label("requests"),
                           func.coalesce(func.sum(D.cost_usd), 0.0).label("cost_usd"),
                           func.coalesce(func.sum(D.baseline_cost_usd), 0.0).label("baseline_cost_usd")))
    return _rows(db, query.group_by(b, tier).order_by(b, tier))


def by_task(db: Engine, f: Filters = Filters()) -> list[dict[str, Any]]:
    query = f.apply(select(D.task, D.routed_tier.label("tier"), func.count().label("requests"))
                    .where(D.task.is_not(None)))
    return _rows(db, query.group_by(D.task, D.routed_tier).order_by(D.task, D.routed_tier))


REFUSED = "(refused before routing)"


def rates_by_tier(db: Engine, f: Filters = Filters()) -> list[dict[str, Any]]:
    """Error and fallback rates per routed tier; requests refused before routing have a row of their own."""
    tier = func.coalesce(D.routed_tier, REFUSED).label("tier")
    query = f.apply(select(
        tier, func.count().label("requests"),
        func.avg(case((D.status == "error", 1.0), else_=0.0)).label("error_rate"),
        func.avg(case((D.fallback.is_(True), 1.0), else_=0.0)).label("fallback_rate"),
    ))
    return _rows(db, query.group_by(tier).order_by(tier))


def latency_percentiles(db: Engine, metric: str, f: Filters = Filters(),
                        quantiles: tuple[int, ...] = (50, 95, 99)) -> list[dict[str, Any]]:
    """Nearest-rank percentiles per answering tier, with window functions (portable SQL)."""
    if metric not in LATENCY_METRICS:
        raise ValueError(f"metric must be one of {LATENCY_METRICS}")
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
    """Decisions to review: thumbs-down first, then the least confident, newest first within."""
    latest = latest_review_ids()
    query = (select(D.id, D.created_at, D.policy_name, D.policy_version, D.routed_tier, D.tier, D.task,
                    D.confidence, D.difficulty, D.complexity, D.status, D.source, D.prompt, R.verdict)
             .outerjoin(latest, latest.c.decision_id == D.id)
             .outerjoin(REVIEWS, R.id == latest.c.review_id)
             .where(D.task.is_not(None)))
    query = f.apply(query)
    if max_confidence is not None:
        query = query.where(D.confidence < max_confidence)
    if unreviewed_only:
        query = query.where(or_(R.verdict.is_(None), R.verdict.in_(("thumbs_up", "thumbs_down"))))
    thumbs_down_first = case((R.verdict == "thumbs_down", 0), else_=1)
    query = query.order_by(thumbs_down_first, D.confidence, D.created_at.desc()).limit(limit)
    return _rows(db, query)


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
    query = f.apply(select(
        D.policy_name.label("policy"), D.policy_version.label("version"), func.count().label("requests"),
        func.coalesce(func.sum(D.cost_usd), 0.0).label("cost_usd"),
        func.coalesce(func.sum(case((D.cost_usd.is_not(None), D.baseline_cost_usd))), 0.0).label("baseline_cost_usd"),
        func.min(D.created_at).label("first"), func.max(D.created_at).label("last"),
    ).where(D.policy_version.is_not(None)))
    rows = _rows(db, query.group_by(D.policy_name, D.policy_version).order_by(D.policy_name, D.policy_version))
    for r in rows:
        base = r["baseline_cost_usd"]
        r["saved_pct"] = 100 * (base - r["cost_usd"]) / base if base else 0.0
    return rows
