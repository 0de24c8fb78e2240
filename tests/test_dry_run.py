"""router/dry_run.py: a replay decides each turn as live routing would, the previous tier of
its conversation included, and counts moves, costs and reviewed misroutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from router.classifier.prediction import TASK_LABELS
from router.dry_run import replay
from router.policy import parse_policy

TIERS = {name: {"model": name, "base_url": "http://x/v1", "price_in": price, "price_out": price}
         for name, price in (("small", 1.0), ("large", 10.0))}
POLICY = parse_policy({"name": "p", "tiers": TIERS, "default_tier": "small", "confidence_floor": 0.5,
                       "rules": [{"name": "code", "tasks": ["Code Generation"], "tier": "large"}]})
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def row(turn: int, task: str, confidence: float, routed: str, **extra: Any) -> dict[str, Any]:
    rest = (1 - confidence) / (len(TASK_LABELS) - 1)
    return {"id": f"d{turn}", "conversation_id": "c1", "turn": turn, "created_at": T0 + timedelta(seconds=turn),
            "task": task, "task_probs": {t: confidence if t == task else rest for t in TASK_LABELS},
            "complexity": 0.1, "complexity_dims": {}, "routed_tier": routed, "tier": routed,
            "prompt_tokens": 1000, "completion_tokens": 0, "pinned_tier": None, **extra}


def test_a_low_confidence_follow_up_replays_on_its_conversations_previous_tier() -> None:
    rows = [row(2, "Rewrite", 0.2, "large"), row(1, "Code Generation", 0.9, "large")]  # newest first, as queried
    report = replay(rows, POLICY)
    assert report.replayed == 2 and report.changed == 0  # without the previous tier, turn 2 would go to small


def test_the_previous_tier_is_the_drafts_choice_for_the_previous_turn() -> None:
    draft = parse_policy({**POLICY.to_document(), "rules": []})  # code no longer goes to large
    report = replay([row(1, "Code Generation", 0.9, "large"), row(2, "Rewrite", 0.2, "large")], draft, POLICY)
    assert report.changed == 2 and report.moves[("large", "small")] == 2
    assert report.cost_before_usd == 2 * 1000 * 10.0 / 1e6 and report.cost_after_usd == 2 * 1000 * 1.0 / 1e6


def test_conversations_do_not_share_previous_tiers_and_pinned_turns_are_skipped() -> None:
    other = row(2, "Rewrite", 0.2, "small", conversation_id="c2")
    pinned = row(3, "Chatbot", 0.9, "large", pinned_tier="large")
    report = replay([row(1, "Code Generation", 0.9, "large"), other, pinned], POLICY)
    assert report.replayed == 2 and report.changed == 0 and report.skipped == 1


def test_reviewed_misroutes_fixed_and_introduced() -> None:
    draft = parse_policy({**POLICY.to_document(), "rules": []})
    rows = [row(1, "Code Generation", 0.9, "large", correct_tier="small", conversation_id="a"),
            row(1, "Code Generation", 0.9, "large", verdict="correct", conversation_id="b")]
    report = replay(rows, draft, POLICY)
    assert (report.reviewed, report.misroutes_fixed, report.misroutes_introduced) == (2, 1, 1)


def test_difficulty_and_tolerance_rules_replay_from_the_logged_estimates() -> None:
    classed = {name: {**tier, "quality_class": name} for name, tier in TIERS.items()}
    draft = parse_policy({"name": "p", "tiers": classed, "default_tier": "large",
                          "rules": [{"name": "easy", "difficulty": {"max": 0.3}, "tier": "small"},
                                    {"name": "close", "tolerance": 0.1}]})
    rows = [row(1, "Open QA", 0.9, "large", difficulty=0.2),  # easy: small
            {**row(2, "Open QA", 0.9, "large", difficulty=0.6, tier_success={"small": 0.85, "large": 0.9}),
             "conversation_id": "c2"},  # within 0.1 of the best: small
            {**row(3, "Open QA", 0.9, "large", difficulty=0.6, tier_success={"small": 0.5, "large": 0.9}),
             "conversation_id": "c3"},  # too far: large
            {**row(4, "Open QA", 0.9, "large", difficulty=None), "conversation_id": "c4"}]  # logged before both
    report = replay(rows, draft, POLICY)
    assert report.replayed == 4 and report.moves[("large", "small")] == 2 and report.changed == 2
