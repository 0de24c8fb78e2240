"""Reading decisions back: lists for review, and single rows."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from storage.models import DecisionRow


def list_decisions(db: Engine, *, limit: int = 100, offset: int = 0, conversation_id: str | None = None,
                   newest_first: bool = True) -> list[DecisionRow]:
    query = select(DecisionRow)
    if conversation_id is not None:
        query = query.where(col(DecisionRow.conversation_id) == conversation_id)
    created = col(DecisionRow.created_at).desc() if newest_first else col(DecisionRow.created_at)
    order = (created, col(DecisionRow.id))
    query = query.order_by(*order).limit(limit).offset(offset)
    with Session(db) as session:
        return list(session.execute(query).scalars().all())


def get_decision(db: Engine, decision_id: str) -> DecisionRow | None:
    with Session(db) as session:
        return session.get(DecisionRow, decision_id)
