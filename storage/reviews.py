"""Operator reviews of decisions: verdicts, the right task and tier, and exports for retraining."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Subquery, func, select
from sqlmodel import Session, col

from storage.models import DECISIONS, REVIEWS, DecisionRow, Review

VERDICTS = ("correct", "misrouted", "thumbs_up", "thumbs_down")


class ReviewError(ValueError):
    pass


def add_review(db: Engine, decision_id: str, verdict: str, *, correct_task: str | None = None,
               correct_tier: str | None = None, note: str | None = None, reviewer: str | None = None) -> Review:
    if verdict not in VERDICTS:
        raise ReviewError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    if verdict == "misrouted" and not (correct_task or correct_tier):
        raise ReviewError("a misrouted verdict needs the correct task or the correct tier")
    with Session(db) as session:
        if session.get(DecisionRow, decision_id) is None:
            raise ReviewError(f"no decision with id {decision_id!r}")
        review = Review(decision_id=decision_id, verdict=verdict, correct_task=correct_task or None,
                        correct_tier=correct_tier or None, note=note or None, reviewer=reviewer or None)
        session.add(review)
        session.commit()
        session.refresh(review)
        return review


def latest_review_ids() -> Subquery:
    """Subquery: the newest review id per decision."""
    return select(col(Review.decision_id), func.max(col(Review.id)).label("review_id")).group_by(
        col(Review.decision_id)).subquery()


def reviews_for(db: Engine, decision_id: str) -> list[Review]:
    with Session(db) as session:
        return list(session.execute(select(Review).where(col(Review.decision_id) == decision_id)
                                    .order_by(col(Review.id).desc())).scalars())


EXPORT_FIELDS = ("decision_id", "created_at", "prompt", "predicted_task", "confidence", "difficulty",
                 "complexity", "routed_tier", "tier", "verdict", "correct_task", "correct_tier", "note", "reviewer")


def reviewed_rows(db: Engine, *, since: datetime | None = None) -> list[dict[str, Any]]:
    """Decisions with their newest verdict (correct/misrouted), for retraining."""
    latest = latest_review_ids()
    dc, rc = DECISIONS.c, REVIEWS.c
    query = (select(dc.id, dc.created_at, dc.prompt, dc.task, dc.confidence, dc.difficulty, dc.complexity,
                    dc.routed_tier, dc.tier,
                    rc.verdict, rc.correct_task, rc.correct_tier, rc.note, rc.reviewer)
             .join(latest, latest.c.decision_id == col(DecisionRow.id))
             .join(Review, col(Review.id) == latest.c.review_id)
             .where(col(Review.verdict).in_(("correct", "misrouted")))
             .order_by(col(DecisionRow.created_at)))
    if since is not None:
        query = query.where(col(DecisionRow.created_at) >= since)
    with db.connect() as conn:
        rows = conn.execute(query).all()
    out = []
    for r in rows:
        item = dict(zip(EXPORT_FIELDS, r, strict=True))
        item["created_at"] = r[1].isoformat() if r[1] else None
        if item["verdict"] == "correct":  # a confirmed decision is its own label
            item["correct_task"] = item["correct_task"] or item["predicted_task"]
            item["correct_tier"] = item["correct_tier"] or item["tier"]
        out.append(item)
    return out


def to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
