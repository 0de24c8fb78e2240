"""Tables: routing decisions and their hourly sums, operator reviews, policy versions and activations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Table, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class DecisionRow(SQLModel, table=True):
    """One routed turn (or one refused request), written by the engine."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_created_at", "created_at"),
        Index("ix_decisions_conversation", "conversation_id", "turn"),
        Index("ix_decisions_policy_created", "policy_name", "created_at"),
        # The review queue: least confident first, newest first within.
        Index("ix_decisions_confidence", "confidence", text("created_at DESC")),
    )

    id: str = Field(primary_key=True, max_length=32)
    request_id: str = Field(max_length=64)
    conversation_id: str | None = Field(default=None, max_length=64)
    turn: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    source: str = Field(max_length=16)  # playground | api
    stream: bool = False

    policy_name: str | None = Field(default=None, max_length=128)
    policy_version: int | None = None

    task: str | None = Field(default=None, max_length=32)
    confidence: float | None = None
    task_probs: dict[str, float] | None = Field(default=None, sa_column=Column(JSON))
    complexity: float | None = None
    complexity_dims: dict[str, float] | None = Field(default=None, sa_column=Column(JSON))
    difficulty: float | None = None  # the chance a small tier falls short, as routing read it
    tier_success: dict[str, float] | None = Field(default=None, sa_column=Column(JSON))  # per quality class
    classifier_backend: str | None = Field(default=None, max_length=32)

    rule: str | None = Field(default=None, max_length=128)
    reason: str | None = Field(default=None, max_length=256)  # why the rule matched, in words
    pinned_tier: str | None = Field(default=None, max_length=128)
    routed_tier: str | None = Field(default=None, max_length=128)  # what the policy chose
    tier: str | None = Field(default=None, max_length=128)  # what answered
    model: str | None = Field(default=None, max_length=256)
    fallback: bool = False
    attempts: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))

    status: str = Field(max_length=16)  # ok | error
    http_status: int = 200
    error: str | None = None

    classify_ms: float | None = None
    route_ms: float | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage_estimated: bool = False
    cost_usd: float | None = None
    baseline_tier: str | None = Field(default=None, max_length=128)
    baseline_cost_usd: float | None = None

    prompt: str | None = None  # the latest user turn (None when prompts are redacted)
    prompt_hash: str | None = Field(default=None, max_length=64)  # sha256 of the latest user turn
    prompt_chars: int | None = None
    response: str | None = None  # the answer, truncated


class Review(SQLModel, table=True):
    """An operator's verdict on one decision."""

    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_decision", "decision_id"),)

    id: int | None = Field(default=None, primary_key=True)
    decision_id: str = Field(foreign_key="decisions.id", max_length=32)
    created_at: datetime = Field(default_factory=utcnow)
    verdict: str = Field(max_length=16)  # correct | misrouted | thumbs_up | thumbs_down
    correct_task: str | None = Field(default=None, max_length=32)
    correct_tier: str | None = Field(default=None, max_length=128)
    note: str | None = None
    reviewer: str | None = Field(default=None, max_length=128)


class PolicyVersion(SQLModel, table=True):
    """An immutable policy document. Versions count up from 1 per name."""

    __tablename__ = "policy_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_policy_versions_name_version"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    version: int
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str | None = Field(default=None, max_length=128)
    comment: str | None = None


class PolicyActivation(SQLModel, table=True):
    """Append-only: the newest row per name is the active version."""

    __tablename__ = "policy_activations"
    __table_args__ = (Index("ix_policy_activations_name", "name", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    version: int
    activated_at: datetime = Field(default_factory=utcnow)
    activated_by: str | None = Field(default=None, max_length=128)
    comment: str | None = None


class ApiKey(SQLModel, table=True):
    """A client key for the API server. Only a SHA-256 of the key is stored."""

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    prefix: str = Field(max_length=16)  # shown to operators to tell keys apart
    key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class DeadLetter(SQLModel, table=True):
    """A decision row the database refused, kept as ASCII JSON with the error, so one bad
    row never blocks the log and nothing is silently dropped."""

    __tablename__ = "dead_letters"

    id: int | None = Field(default=None, primary_key=True)
    decision_id: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow)
    error: str
    record: str  # json.dumps(row, ensure_ascii=True)


class DecisionHour(SQLModel, table=True):
    """Decisions summed per hour and per outcome (policy, task, tiers, status, source), for
    every hour before the watermark (storage/rollups.py), so the console's cost figures read
    thousands of rows where the decisions table holds millions."""

    __tablename__ = "decision_hours"
    __table_args__ = (Index("ix_decision_hours_hour", "hour"),)

    key: str = Field(primary_key=True, max_length=40)  # sha1 of the hour and the outcome, NULLs included
    hour: datetime
    policy_name: str | None = Field(default=None, max_length=128)
    policy_version: int | None = None
    task: str | None = Field(default=None, max_length=32)
    routed_tier: str | None = Field(default=None, max_length=128)
    tier: str | None = Field(default=None, max_length=128)
    status: str = Field(max_length=16)
    source: str = Field(max_length=16)
    requests: int = 0
    fallbacks: int = 0
    cost_usd: float = 0.0
    paid_baseline_usd: float = 0.0  # the baseline tier's cost, summed where the request had a cost
    baseline_cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_at: datetime
    last_at: datetime


class LatencyHour(SQLModel, table=True):
    """How many answered requests per hour, policy and answering tier fell in each latency bin
    (bins grow by 10%), for percentiles over ranges too long to sort."""

    __tablename__ = "latency_hours"
    __table_args__ = (Index("ix_latency_hours_hour", "hour"),)

    key: str = Field(primary_key=True, max_length=40)
    hour: datetime
    policy_name: str | None = Field(default=None, max_length=128)
    tier: str = Field(max_length=128)
    metric: str = Field(max_length=16)  # classify_ms | ttft_ms | total_ms
    bin: int
    n: int = 0


class RollupWatermark(SQLModel, table=True):
    """One row: every decision created before `sealed_until` is in the hourly sums."""

    __tablename__ = "rollup_watermark"

    id: int = Field(default=1, primary_key=True)
    sealed_until: datetime | None = None


# The tables as SQLAlchemy Core sees them, for bulk inserts and aggregates.
DECISIONS: Table = SQLModel.metadata.tables[DecisionRow.__tablename__]
REVIEWS: Table = SQLModel.metadata.tables[Review.__tablename__]
DEAD_LETTERS: Table = SQLModel.metadata.tables[DeadLetter.__tablename__]
DECISION_HOURS: Table = SQLModel.metadata.tables[DecisionHour.__tablename__]
LATENCY_HOURS: Table = SQLModel.metadata.tables[LatencyHour.__tablename__]
ROLLUP_WATERMARK: Table = SQLModel.metadata.tables[RollupWatermark.__tablename__]
