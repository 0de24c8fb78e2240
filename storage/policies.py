"""Policy versions: immutable documents, one active version per name.

Documents are validated by the caller (router.policy); this module only stores
them, so it depends on nothing else of ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Session

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


def save_version(engine: Engine, name: str, document: dict[str, Any], *, created_by: str | None = None,
                 comment: str | None = None) -> StoredPolicy:
    """Store a new version (previous version + 1). Versions are never edited."""
    with Session(engine) as session:
        latest = session.execute(
            select(func.max(PolicyVersion.version)).where(PolicyVersion.name == name)
        ).one()[0]
        row = PolicyVersion(name=name, version=(latest or 0) + 1, document=document, created_by=created_by,
                            comment=comment)
        session.add(row)
        session.commit()
        session.refresh(row)
        return _stored(row)


def get_version(engine: Engine, name: str, version: int) -> StoredPolicy:
    with Session(engine) as session:
        row = session.execute(
            select(PolicyVersion).where(PolicyVersion.name == name, PolicyVersion.version == version)
        ).scalars().first()
        if row is None:
            raise PolicyNotFound(f"policy {name!r} has no version {version}")
        return _stored(row)


def list_versions(engine: Engine, name: str) -> list[StoredPolicy]:
    with Session(engine) as session:
        rows = session.execute(
            select(PolicyVersion).where(PolicyVersion.name == name).order_by(PolicyVersion.version)
        ).scalars().all()
        return [_stored(r) for r in rows]


def policy_names(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.execute(
            select(PolicyVersion.name).distinct().order_by(PolicyVersion.name)
        ).scalars().all())


def activate(engine: Engine, name: str, version: int, *, activated_by: str | None = None,
             comment: str | None = None) -> StoredPolicy:
    """Make `version` the active one for `name`. Rolling back is activating an older version."""
    stored = get_version(engine, name, version)
    with Session(engine) as session:
        session.add(PolicyActivation(name=name, version=version, activated_by=activated_by, comment=comment))
        session.commit()
    return stored


def active_versions(engine: Engine) -> dict[str, int]:
    """name -> active version, from the newest activation row per name."""
    newest = select(PolicyActivation.name, func.max(PolicyActivation.id).label("id")).group_by(
        PolicyActivation.name).subquery()
    query = select(PolicyActivation.name, PolicyActivation.version).join(
        newest, PolicyActivation.id == newest.c.id)
    with Session(engine) as session:
        return {name: version for name, version in session.execute(query)}


def activation_marker(engine: Engine) -> int:
    """A number that changes whenever any activation happens; cheap to poll."""
    with Session(engine) as session:
        return session.execute(select(func.coalesce(func.max(PolicyActivation.id), 0))).scalar_one()


def active_policies(engine: Engine) -> dict[str, StoredPolicy]:
    return {name: get_version(engine, name, version) for name, version in active_versions(engine).items()}


def activation_history(engine: Engine, name: str) -> list[PolicyActivation]:
    with Session(engine) as session:
        return list(session.execute(
            select(PolicyActivation).where(PolicyActivation.name == name).order_by(PolicyActivation.id.desc())
        ).scalars().all())


def seed(engine: Engine, documents: dict[str, dict[str, Any]], *, created_by: str = "seed") -> list[str]:
    """Store and activate version 1 of each named policy the database has never seen."""
    known = set(policy_names(engine))
    seeded = []
    for name, document in documents.items():
        if name in known:
            continue
        stored = save_version(engine, name, document, created_by=created_by, comment="seeded from config")
        activate(engine, name, stored.version, activated_by=created_by, comment="seeded from config")
        seeded.append(name)
    return seeded
