"""Policy versions: immutable documents, one active version per name.

Documents are validated by the caller (router.policy); this module only stores
them, so it depends on nothing else of ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from storage.models import PolicyActivation, PolicyVersion


class PolicyNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    name: str
    version: int
    document: dict[str, Any]
    created_at: datetime
    created_by: str | None
    comment: str | None


def _stored(row: PolicyVersion) -> StoredPolicy:
    return StoredPolicy(row.name, row.version, row.document, row.created_at, row.created_by, row.comment)


def save_version(db: Engine, name: str, document: dict[str, Any], *, created_by: str | None = None,
                 comment: str | None = None) -> StoredPolicy:
    """Store a new version (previous version + 1). Versions are never edited."""
    with Session(db) as session:
        latest = session.execute(
            select(func.max(col(PolicyVersion.version))).where(col(PolicyVersion.name) == name)
        ).one()[0]
        row = PolicyVersion(name=name, version=(latest or 0) + 1, document=document, created_by=created_by,
                            comment=comment)
        session.add(row)
        session.commit()
        session.refresh(row)
        return _stored(row)


def get_version(db: Engine, name: str, version: int) -> StoredPolicy:
    with Session(db) as session:
        row = session.execute(
            select(PolicyVersion).where(col(PolicyVersion.name) == name, col(PolicyVersion.version) == version)
        ).scalars().first()
        if row is None:
            raise PolicyNotFound(f"policy {name!r} has no version {version}")
        return _stored(row)


def list_versions(db: Engine, name: str) -> list[StoredPolicy]:
    with Session(db) as session:
        rows = session.execute(
            select(PolicyVersion).where(col(PolicyVersion.name) == name).order_by(col(PolicyVersion.version))
        ).scalars().all()
        return [_stored(r) for r in rows]


def policy_names(db: Engine) -> list[str]:
    with Session(db) as session:
        return list(session.execute(
            select(col(PolicyVersion.name)).distinct().order_by(col(PolicyVersion.name))
        ).scalars().all())


def activate(db: Engine, name: str, version: int, *, activated_by: str | None = None,
             comment: str | None = None) -> StoredPolicy:
    """Make `version` the active one for `name`. Rolling back is activating an older version."""
    stored = get_version(db, name, version)
    with Session(db) as session:
        session.add(PolicyActivation(name=name, version=version, activated_by=activated_by, comment=comment))
        session.commit()
    return stored


def active_versions(db: Engine) -> dict[str, int]:
    """name -> active version, from the newest activation row per name."""
    newest = select(col(PolicyActivation.name), func.max(col(PolicyActivation.id)).label("id")).group_by(
        col(PolicyActivation.name)).subquery()
    query = select(col(PolicyActivation.name), col(PolicyActivation.version)).join(
        newest, col(PolicyActivation.id) == newest.c.id)
    with Session(db) as session:
        return {name: version for name, version in session.execute(query)}


def activation_marker(db: Engine) -> int:
    """A number that changes whenever any activation happens; cheap to poll."""
    with Session(db) as session:
        marker: int = session.execute(select(func.coalesce(func.max(col(PolicyActivation.id)), 0))).scalar_one()
        return marker


def active_policies(db: Engine) -> dict[str, StoredPolicy]:
    return {name: get_version(db, name, version) for name, version in active_versions(db).items()}


def activation_history(db: Engine, name: str) -> list[PolicyActivation]:
    with Session(db) as session:
        return list(session.execute(
            select(PolicyActivation).where(col(PolicyActivation.name) == name).order_by(col(PolicyActivation.id).desc())
        ).scalars().all())


def seed(db: Engine, documents: dict[str, dict[str, Any]], *, created_by: str = "seed") -> list[str]:
    """Store and activate version 1 of each named policy the database has never seen."""
    known = set(policy_names(db))
    seeded = []
    for name, document in documents.items():
        if name in known:
            continue
        stored = save_version(db, name, document, created_by=created_by, comment="seeded from config")
        activate(db, name, stored.version, activated_by=created_by, comment="seeded from config")
        seeded.append(name)
    return seeded
