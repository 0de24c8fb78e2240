"""Reading decisions back: lists for review, and single rows."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlmodel import Session

from storage.models import Decision


def list_decisions(engine: Engine, *, limit: int = 100, offset: int = 0, conversation_id: str | None = None,
                   newest_first: bool = True) -> list[Decision]:
    query = select(Decision)
    if conversation_id is not None:
        query = query.where(Decision.conversation_id == conversation_id)
    order = (Decision.created_at.desc(), Decision.id) if newest_first else (Decision.created_at, Decision.id)
    query = query.order_by(*order).limit(limit).offset(offset)
    with Session(engine) as session:
        return list(session.execute(query).scalars().all())


def get_decision(engine: Engine, decision_id: str) -> Decision | None:
    with Session(engine) as session:
        return session.get(Decision, decision_id)
