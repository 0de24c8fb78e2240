"""Replaying logged decisions under a draft policy, before activating it. Pure: the
rows come in, a report goes out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from router.classifier.prediction import Prediction
from router.policy import Policy, decide


@dataclass
class DryRunReport:
    replayed: int = 0
    changed: int = 0
    cost_before_usd: float = 0.0
    cost_after_usd: float = 0.0
    reviewed: int = 0
    misroutes_fixed: int = 0
    misroutes_introduced: int = 0
    skipped: int = 0  # pinned turns, or tiers the draft does not know
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def cost_delta_usd(self) -> float:
        return self.cost_after_usd - self.cost_before_usd

    @property
    def changed_share(self) -> float:
        return self.changed / self.replayed if self.replayed else 0.0


def replay(rows: Iterable[Mapping[str, Any]], draft: Policy, current: Policy | None = None) -> DryRunReport:
    """Rows need task, task_probs, complexity, complexity_dims, difficulty (None on rows logged before
    it existed: the complexity stands in), routed_tier, tier, prompt_tokens,
    completion_tokens, pinned_tier and, where reviewed, correct_tier; with conversation_id (and
    created_at, turn to order them) a turn is decided with its conversation's previous tier, as
    live routing does: the tier the draft gave the previous turn, assumed to have answered it.
    Costs use each policy's own prices (the current one's for the 'before' side when given)."""
    report = DryRunReport()
    before_prices = current or draft
    previous: dict[str, str] = {}  # conversation -> the tier its last turn had under the draft
    for row in sorted(rows, key=_chronological):
        conversation = row.get("conversation_id")
        if row.get("pinned_tier") or row.get("routed_tier") is None:
            report.skipped += 1
            if conversation and row.get("tier"):
                previous[conversation] = row["tier"]
            continue
        prediction = Prediction(row["task"], dict(row["task_probs"] or {}), float(row["complexity"] or 0.0),
                                dict(row.get("complexity_dims") or {}), "replay",
                                difficulty=-1.0 if row.get("difficulty") is None else float(row["difficulty"]),
                                tier_success=dict(row.get("tier_success") or {}))
        old = row["routed_tier"]
        new = decide(prediction, draft, previous.get(conversation) if conversation else None).tier
        if conversation and row.get("tier", old) is not None:
            previous[conversation] = new
        report.replayed += 1
        if new != old:
            report.changed += 1
            report.moves[(old, new)] += 1
        tokens_in, tokens_out = row.get("prompt_tokens"), row.get("completion_tokens")
        if tokens_in is not None and tokens_out is not None:
            old_tier = before_prices.tiers.get(old) or draft.tiers.get(old)
            if old_tier is not None:
                report.cost_before_usd += old_tier.cost_usd(tokens_in, tokens_out)
            report.cost_after_usd += draft.tiers[new].cost_usd(tokens_in, tokens_out)
        correct = row.get("correct_tier") or (old if row.get("verdict") == "correct" else None)
        if correct:
            report.reviewed += 1
            if old != correct and new == correct:
                report.misroutes_fixed += 1
            elif old == correct and new != correct:
                report.misroutes_introduced += 1
    return report


def _chronological(row: Mapping[str, Any]) -> tuple[Any, ...]:
    created = row.get("created_at")
    return (created is None, created or 0, row.get("turn") or 0)
