"""Operator reviews of decisions: verdicts, the right task and tier, and exports for retraining."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from storage.models import Decision, Review

VERDICTS = ("correct", "misrouted", "thumbs_up", "thumbs_down")


class ReviewError(ValueError):
    pass


def add_review(engine: Engine, decision_id: str, verdict: str, *, correct_task: str | None = None,
               correct_tier: str | None = None, note: str | None = None, reviewer: str | None = None) -> Review:
    if verdict not in VERDICTS:
        raise ReviewError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    if verdict == "misrouted" and not (correct_task or correct_tier):
        raise ReviewError("a misrouted verdict needs the correct task or the correct tier")
    with Session(engine) as session:
        if session.get(Decision, decision_id) is None:
            raise ReviewError(f"no decision with id {decision_id!r}")
        review = Review(decision_id=decision_id, verdict=verdict, correct_task=correct_task or None,
                        correct_tier=correct_tier or None, note=note or None, reviewer=reviewer or None)
        session.add(review)
        session.commit()
        session.refresh(review)
        return review


def latest_review_ids():  # type: ignore[no-untyped-def]
    """Subquery: the newest review id per decision."""
    return select(Review.decision_id, func.max(Review.id).label("review_id")).group_by(
        Review.decision_id).subquery()


def reviews_for(engine: Engine, decision_id: str) -> list[Review]:
    with Session(engine) as session:
        return list(session.execute(select(Review).where(Review.decision_id == decision_id)
                                    .order_by(Review.id.desc())).scalars())


EXPORT_FIELDS = ("decision_id", "created_at", "prompt", "predicted_task", "confidence", "complexity",
                 "routed_tier", "tier", "verdict", "correct_task", "correct_tier", "note", "reviewer")


def reviewed_rows(engine: Engine, *, since: datetime | None = None) -> list[dict[str, Any]]:
    """Decisions with their newest verdict (correct/misrouted), for retraining."""
    latest = latest_review_ids()
    query = (select(Decision.id, Decision.created_at, Decision.prompt, Decision.task, Decision.confidence,
                    Decision.complexity, Decision.routed_tier, Decision.tier, Review.verdict, Review.correct_task,
                    Review.correct_tier, Review.note, Review.reviewer)
             .join(latest, latest.c.decision_id == Decision.id)
             .join(Review, Review.id == latest.c.review_id)
             .where(Review.verdict.in_(("correct", "misrouted")))
             .order_by(Decision.created_at))
    if since is not None:
        query = query.where(Decision.created_at >= since)
    with engine.connect() as conn:
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
