"""The decision record: one routed turn (or one refused request), as the engine builds it,
the metrics count it and the decision log writes it. Its fields are the columns of the
`decisions` table (tests/test_recorder.py keeps the two equal)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from storage.models import utcnow


@dataclass(slots=True)
class DecisionRecord:
    id: str
    request_id: str
    source: str  # playground | api
    status: str = "error"  # ok | error
    http_status: int = 200
    error: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    conversation_id: str | None = None
    turn: int | None = None
    stream: bool = False

    policy_name: str | None = None
    policy_version: int | None = None

    task: str | None = None
    confidence: float | None = None
    task_probs: dict[str, float] | None = None
    complexity: float | None = None
    complexity_dims: dict[str, float] | None = None
    difficulty: float | None = None
    tier_success: dict[str, float] | None = None
    classifier_backend: str | None = None

    rule: str | None = None
    reason: str | None = None  # why the rule matched, in words
    pinned_tier: str | None = None
    routed_tier: str | None = None  # what the policy chose
    tier: str | None = None  # what answered
    model: str | None = None
    fallback: bool = False
    attempts: list[dict[str, Any]] | None = None

    classify_ms: float | None = None
    route_ms: float | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage_estimated: bool = False
    cost_usd: float | None = None
    baseline_tier: str | None = None
    baseline_cost_usd: float | None = None

    prompt: str | None = None  # the latest user turn (None when prompts are redacted)
    prompt_hash: str | None = None
    prompt_chars: int | None = None
    response: str | None = None  # the answer, truncated

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DecisionRecord:
        """A record from column values (benchmarks, imports); unknown names are refused."""
        unknown = set(values) - FIELDS
        if unknown:
            raise ValueError(f"unknown decision field(s): {sorted(unknown)}")
        return cls(**values)

    def to_row(self) -> dict[str, Any]:
        """Column values for an insert."""
        return {name: getattr(self, name) for name in FIELDS}


FIELDS = frozenset(f.name for f in dataclasses.fields(DecisionRecord))
