"""Client API keys: created once (the plaintext is shown then and never stored),
checked by hash, revoked by prefix."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from storage.models import ApiKey

KEY_PREFIX = "rk-"


class ApiKeyError(LookupError):
    pass


def hash_key(key: str) -> str:
    # Keys are 256 random bits, so a plain SHA-256 is as strong as a slow hash here.
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(db: Engine, name: str) -> tuple[str, ApiKey]:
    if not name.strip():
        raise ApiKeyError("a key needs a name that says who uses it")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name.strip(), prefix=key[:10], key_hash=hash_key(key))
    with Session(db) as session:
        session.add(row)
        session.commit()
        session.refresh(row)
    return key, row


def list_keys(db: Engine) -> list[ApiKey]:
    with Session(db) as session:
        return list(session.execute(select(ApiKey).order_by(col(ApiKey.id))).scalars())


def revoke_key(db: Engine, prefix: str) -> ApiKey:
    with Session(db) as session:
        rows: list[ApiKey] = list(session.execute(select(ApiKey).where(col(ApiKey.prefix) == prefix)).scalars())
        if not rows:
            raise ApiKeyError(f"no key with prefix {prefix!r}")
        row = rows[0]
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
            session.add(row)
            session.commit()
            session.refresh(row)
        return row


def active_key_hashes(db: Engine) -> frozenset[str]:
    with Session(db) as session:
        query = select(col(ApiKey.key_hash)).where(col(ApiKey.revoked_at).is_(None))
        return frozenset(session.execute(query).scalars())
