"""router/policy_table.py: a policy round-trips through the form's tables, and bad rows are
named by row and column."""

from __future__ import annotations

import math

import pytest

from router.config import DEFAULT_CONFIG, load_seed
from router.policy import PolicyError
from router.policy_table import from_tables, rows_to_rules, rows_to_tiers, rules_to_rows, tiers_to_rows

SEED = load_seed(DEFAULT_CONFIG)
POLICY = SEED.policies[SEED.default_policy]


def test_a_policy_round_trips_through_its_tables() -> None:
    again = from_tables(POLICY, rules=rules_to_rows(POLICY), tiers=tiers_to_rows(POLICY),
                        default_tier=POLICY.default_tier, baseline_tier=POLICY.baseline_tier,
                        confidence_floor=POLICY.confidence_floor, fallback_order=POLICY.fallback_order)
    assert again == POLICY


def test_rows_the_editor_left_empty_are_dropped_and_blank_cells_mean_defaults() -> None:
    rules = rows_to_rules([{"name": "hard", "tasks": "", "complexity_min": 0.5, "complexity_max": math.nan,
                            "tier": "big"}, {c: None for c in ("name", "tasks", "tier")}])
    assert rules == [{"name": "hard", "tier": "big", "complexity": {"min": 0.5, "max": 1.0}}]
    tiers = rows_to_tiers([{"name": "big", "model": "m", "base_url": "http://x/v1", "api_key_env": " ",
                            "price_in": 1, "price_out": 2}])
    assert tiers == {"big": {"model": "m", "base_url": "http://x/v1", "price_in": 1, "price_out": 2,
                             "api_key_env": None}}


@pytest.mark.parametrize(("rows", "message"), [
    ([{"name": "", "tier": "x", "tasks": "Chatbot"}], "rules row 1: name is empty"),
    ([{"name": "r", "tier": "x", "complexity_min": "high"}], "rules row 1: complexity_min/max must be numbers"),
])
def test_bad_rule_rows_are_named(rows: list[dict[str, object]], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        rows_to_rules(rows)


def test_a_tier_listed_twice_is_named() -> None:
    row = {"name": "a", "model": "m", "base_url": "http://x/v1", "price_in": 0, "price_out": 0}
    with pytest.raises(PolicyError, match="tiers row 2: tier 'a' is listed twice"):
        rows_to_tiers([row, row])


def test_an_unknown_tier_in_a_rule_is_refused_with_the_field() -> None:
    rules = [*rules_to_rows(POLICY), {"name": "new", "tasks": "Chatbot", "tier": "llama-9"}]
    with pytest.raises(PolicyError) as info:
        from_tables(POLICY, rules=rules, tiers=tiers_to_rows(POLICY), default_tier=POLICY.default_tier,
                    baseline_tier=POLICY.baseline_tier, confidence_floor=POLICY.confidence_floor,
                    fallback_order=POLICY.fallback_order)
    assert "unknown tier 'llama-9'" in str(info.value)


def test_difficulty_columns_round_trip_and_bad_cells_are_named() -> None:
    rules = rows_to_rules([{"name": "hard", "tasks": "", "difficulty_min": 0.6, "difficulty_max": None,
                            "complexity_min": None, "complexity_max": None, "tier": "big"}])
    assert rules == [{"name": "hard", "tier": "big", "difficulty": {"min": 0.6, "max": 1.0}}]
    with pytest.raises(PolicyError, match="rules row 1: difficulty_min/max must be numbers"):
        rows_to_rules([{"name": "r", "tier": "x", "difficulty_max": "low"}])


def test_tolerance_rules_and_quality_classes_round_trip_through_the_tables() -> None:
    policy = SEED.policies["quality-tolerance"]
    rows = rules_to_rows(policy)
    assert rows[0]["tolerance"] == 0.05 and rows[0]["tier"] is None
    again = from_tables(policy, rules=rows, tiers=tiers_to_rows(policy), default_tier=policy.default_tier,
                        baseline_tier=policy.baseline_tier, confidence_floor=policy.confidence_floor,
                        fallback_order=policy.fallback_order)
    assert again == policy
    with pytest.raises(PolicyError, match="rules row 1: tolerance must be a number"):
        rows_to_rules([{"name": "r", "tolerance": "tight"}])
