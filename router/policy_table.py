"""Policies as editable tables (rules and tiers) and back. The console's form editor
uses these; errors name the row and column."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from router.policy import Policy, PolicyError, parse_policy

RULE_COLUMNS = ("name", "tasks", "difficulty_min", "difficulty_max", "complexity_min", "complexity_max", "tier",
                "tolerance")
SCORES = ("difficulty", "complexity")
TIER_COLUMNS = ("name", "model", "base_url", "api_key_env", "price_in", "price_out", "timeout_s", "max_retries",
                "quality_class")


def rules_to_rows(policy: Policy) -> list[dict[str, Any]]:
    rows = []
    for r in policy.rules:
        row: dict[str, Any] = {"name": r.name, "tasks": ", ".join(r.tasks)}
        for score in SCORES:
            span = getattr(r, score)
            row[f"{score}_min"], row[f"{score}_max"] = (span.min, span.max) if span else (None, None)
        rows.append(row | {"tier": r.tier, "tolerance": r.tolerance})
    return rows


def tiers_to_rows(policy: Policy) -> list[dict[str, Any]]:
    return [{"name": name, **t.model_dump(include=set(TIER_COLUMNS))} for name, t in policy.tiers.items()]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or (isinstance(value, str)
                                                                              and not value.strip())


def rows_to_rules(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rules = []
    for i, row in enumerate(rows):
        if all(_blank(row.get(c)) for c in RULE_COLUMNS):
            continue  # an empty row the editor added
        rule: dict[str, Any] = {"name": str(row.get("name") or "").strip()}
        if not rule["name"]:
            raise PolicyError(f"rules row {i + 1}: name is empty", field=f"rules.{i}.name")
        tolerance = row.get("tolerance")
        if tolerance is None or _blank(tolerance):
            rule["tier"] = str(row.get("tier") or "").strip()
        else:
            try:
                rule["tolerance"] = float(tolerance)
            except (TypeError, ValueError):
                raise PolicyError(f"rules row {i + 1}: tolerance must be a number",
                                  field=f"rules.{i}.tolerance") from None
            if not _blank(row.get("tier")):
                rule["tier"] = str(row.get("tier")).strip()
        tasks = row.get("tasks")
        if not _blank(tasks):
            rule["tasks"] = [t.strip() for t in str(tasks).split(",") if t.strip()]
        for score in SCORES:
            lo, hi = row.get(f"{score}_min"), row.get(f"{score}_max")
            if _blank(lo) and _blank(hi):
                continue
            try:
                rule[score] = {"min": 0.0 if lo is None or _blank(lo) else float(lo),
                               "max": 1.0 if hi is None or _blank(hi) else float(hi)}
            except (TypeError, ValueError):
                raise PolicyError(f"rules row {i + 1}: {score}_min/max must be numbers",
                                  field=f"rules.{i}.{score}") from None
        rules.append(rule)
    return rules


def rows_to_tiers(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    tiers: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        if all(_blank(row.get(c)) for c in TIER_COLUMNS):
            continue
        name = str(row.get("name") or "").strip()
        if not name:
            raise PolicyError(f"tiers row {i + 1}: name is empty", field=f"tiers.{i}.name")
        if name in tiers:
            raise PolicyError(f"tiers row {i + 1}: tier {name!r} is listed twice", field=f"tiers.{name}")
        tiers[name] = {c: row[c] for c in TIER_COLUMNS[1:] if c in row and not _blank(row[c])}
        if "api_key_env" not in tiers[name]:
            tiers[name]["api_key_env"] = None
    return tiers


def from_tables(base: Policy, *, rules: Iterable[Mapping[str, Any]], tiers: Iterable[Mapping[str, Any]],
                default_tier: str, baseline_tier: str | None, confidence_floor: float,
                fallback_order: list[str], description: str | None = None) -> Policy:
    """A new policy document from the form's fields, validated."""
    document = base.to_document()
    document.update(rules=rows_to_rules(rules), tiers=rows_to_tiers(tiers), default_tier=default_tier,
                    baseline_tier=baseline_tier or None, confidence_floor=confidence_floor,
                    fallback_order=list(fallback_order))
    if description is not None:
        document["description"] = description
    return parse_policy(document)
