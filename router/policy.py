"""Routing policies: schema, validation and rule evaluation.

A policy is data. `decide` is a pure function of a prediction, a policy and the
previous turn's tier; everything else (storage, activation) lives elsewhere.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from router.classifier.prediction import TASK_LABELS, Prediction


class PolicyError(ValueError):
    """A policy document that cannot be used; the message names the bad field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_Strict):
    model: str = Field(min_length=1, description="Model id sent to the endpoint.")
    base_url: str = Field(min_length=1, description="OpenAI-compatible base URL, ending in /v1.")
    api_key_env: str | None = Field(
        default=None, description="Environment variable holding the API key; none for open endpoints."
    )
    price_in: float = Field(ge=0, description="USD per 1M input tokens.")
    price_out: float = Field(ge=0, description="USD per 1M output tokens.")
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    max_retries: int = Field(default=1, ge=0, le=5)
    quality_class: Literal["small", "medium", "large"] | None = Field(
        default=None, description="Whose estimated success stands for this tier's in tolerance rules.")

    @model_validator(mode="after")
    def _url_scheme(self) -> Tier:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return self

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_in + completion_tokens * self.price_out) / 1_000_000


class ScoreRange(_Strict):
    """An inclusive range of a score in [0, 1] (complexity or difficulty)."""

    min: float = Field(default=0.0, ge=0, le=1)
    max: float = Field(default=1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> ScoreRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self

    def contains(self, value: float) -> bool:
        return self.min <= value <= self.max


class Rule(_Strict):
    name: str = Field(min_length=1)
    tier: str | None = Field(default=None, min_length=1, description="Where a match goes (or use tolerance).")
    tolerance: float | None = Field(
        default=None, ge=0, le=1, description="Instead of a tier: the cheapest tier whose estimated success is "
        "within this much of the best tier's.")
    tasks: tuple[str, ...] = ()
    complexity: ScoreRange | None = None
    difficulty: ScoreRange | None = Field(
        default=None, description="Range of the estimated chance that a small tier's answer falls short.")

    @model_validator(mode="after")
    def _matches_something(self) -> Rule:
        unknown = [t for t in self.tasks if t not in TASK_LABELS]
        if unknown:
            raise ValueError(f"unknown task label(s) {unknown}; expected one of {list(TASK_LABELS)}")
        if not self.tasks and self.complexity is None and self.difficulty is None and self.tolerance is None:
            raise ValueError("a rule needs tasks, a difficulty or complexity range, or a combination")
        if (self.tier is None) == (self.tolerance is None):
            raise ValueError("a rule needs either a tier or a tolerance (not both)")
        return self

    def matches(self, prediction: Prediction) -> bool:
        task_ok = not self.tasks or prediction.task in self.tasks
        if self.tolerance is not None and not prediction.tier_success:
            return False  # nothing to compare tiers by (a classifier without the calibration)
        return (task_ok and (self.complexity is None or self.complexity.contains(prediction.complexity))
                and (self.difficulty is None or self.difficulty.contains(prediction.difficulty)))

    def why(self, prediction: Prediction) -> str:
        """What matched, in words: the decision line's explanation."""
        parts = [f"task {prediction.task}"] if self.tasks else []
        for name, span in (("difficulty", self.difficulty), ("complexity", self.complexity)):
            if span is not None:
                value = getattr(prediction, name)
                bound = (f"≥ {span.min:.2f}" if span.max >= 1 else f"≤ {span.max:.2f}" if span.min <= 0
                         else f"in [{span.min:.2f}, {span.max:.2f}]")
                parts.append(f"{name} {value:.2f} {bound}")
        return ", ".join(parts)


class Policy(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    tiers: dict[str, Tier]
    rules: tuple[Rule, ...] = ()
    default_tier: str
    baseline_tier: str | None = Field(
        default=None, description="Tier every request would go to without routing; default: the priciest."
    )
    confidence_floor: float = Field(default=0.0, ge=0, le=1)
    fallback_order: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> Policy:
        if not self.tiers:
            raise ValueError("tiers: at least one tier is required")
        known = set(self.tiers)

        def check(where: str, name: str) -> None:
            if name not in known:
                raise ValueError(f"{where}: unknown tier {name!r}; tiers are {sorted(known)}")

        check("default_tier", self.default_tier)
        if self.baseline_tier is not None:
            check("baseline_tier", self.baseline_tier)
        for i, rule in enumerate(self.rules):
            if rule.tier is not None:
                check(f"rules.{i}.tier", rule.tier)
            elif len(self.classed_tiers) < 2:
                raise ValueError(f"rules.{i}.tolerance: needs at least two tiers with a quality_class")
        for i, name in enumerate(self.fallback_order):
            check(f"fallback_order.{i}", name)
        if len(set(self.fallback_order)) != len(self.fallback_order):
            raise ValueError("fallback_order: a tier is listed twice")
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rules: duplicate rule name(s) {dupes}")
        return self

    @property
    def classed_tiers(self) -> dict[str, str]:
        """Tier name -> quality class, for the tiers that declare one."""
        return {name: t.quality_class for name, t in self.tiers.items() if t.quality_class is not None}

    def within_tolerance(self, prediction: Prediction, tolerance: float) -> tuple[str, str]:
        """The cheapest classed tier whose estimated success is within `tolerance` of the best one's,
        and why. Cost compares price_in + price_out (per 1M tokens)."""
        estimates = {name: prediction.tier_success[cls] for name, cls in self.classed_tiers.items()
                     if cls in prediction.tier_success}
        best = max(estimates.values())
        fits = [name for name, p in estimates.items() if p >= best - tolerance - 1e-12]
        tier = min(fits, key=lambda n: (self.tiers[n].price_in + self.tiers[n].price_out, n))
        shown = ", ".join(f"{name} {p:.2f}" for name, p in sorted(estimates.items(), key=lambda kv: kv[1]))
        return tier, f"estimated success {shown}; cheapest within {tolerance:.2f} of the best"

    @property
    def baseline(self) -> str:
        if self.baseline_tier:
            return self.baseline_tier
        return max(self.tiers, key=lambda n: (self.tiers[n].price_in + self.tiers[n].price_out, n))

    def tier_chain(self, first: str) -> list[str]:
        """The tier to try first, then the fallback order without it."""
        return [first] + [t for t in self.fallback_order if t != first]

    def find_tier(self, name_or_model: str) -> str | None:
        """A tier name given its name or its model id."""
        if name_or_model in self.tiers:
            return name_or_model
        for name, tier in self.tiers.items():
            if tier.model == name_or_model:
                return name
        return None

    def to_document(self) -> dict[str, Any]:
        """Plain data, without empty optional fields (what is stored and shown as YAML)."""
        document = self.model_dump(mode="json", exclude_none=True)
        for rule in document["rules"]:
            if not rule["tasks"]:
                del rule["tasks"]
        return document

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_document(), sort_keys=False, allow_unicode=True)


_NAMED_FIELD = re.compile(r"^([A-Za-z_][\w.\-]*): ")


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(document)"


def parse_policy(document: Any) -> Policy:
    """Validate a policy document, raising PolicyError that names the first bad field."""
    if not isinstance(document, dict):
        raise PolicyError("a policy must be a mapping of fields", field=None)
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = _field_path(first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        # Cross-field checks run on the whole document and put the field in the message.
        named = _NAMED_FIELD.match(msg)
        if named:
            path = f"{path}.{named[1]}" if first["loc"] else named[1]
            msg = msg[named.end():]
        if first["type"] == "extra_forbidden":
            msg = "unknown field"
        elif first["type"] == "missing":
            msg = "field required"
        raise PolicyError(f"{path}: {msg}", field=path) from None


def parse_policy_yaml(text: str) -> Policy:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PolicyError(f"invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_policy(document)


@dataclass(frozen=True, slots=True)
class RouteChoice:
    """Where a turn goes and why."""

    tier: str
    rule: str  # a rule name, or one of the reasons below
    reason: str


# Reasons that are not rule names.
DEFAULT = "default"
CONFIDENCE_FLOOR = "confidence_floor"
PINNED = "pinned"


def decide(prediction: Prediction, policy: Policy, previous_tier: str | None = None) -> RouteChoice:
    """Pick a tier for one turn: low confidence keeps the conversation where it was (unless the
    two likeliest tasks lead to the same tier and together reach the floor), otherwise the first
    matching rule wins, otherwise the default tier."""
    if prediction.confidence < policy.confidence_floor:
        unsure = f"{prediction.task} at {prediction.confidence:.2f}, below the floor {policy.confidence_floor:.2f}"
        agreed = _agreeing_runner_up(prediction, policy)
        if agreed is not None:
            choice, words = agreed
            return RouteChoice(choice.tier, choice.rule, f"{choice.reason} ({unsure}, but {words})")
        if previous_tier is not None and previous_tier in policy.tiers:
            return RouteChoice(previous_tier, CONFIDENCE_FLOOR, f"{unsure}; previous turn's tier")
        return RouteChoice(policy.default_tier, CONFIDENCE_FLOOR, f"{unsure}; default tier")
    return _by_rules(prediction, policy)


def _agreeing_runner_up(prediction: Prediction, policy: Policy) -> tuple[RouteChoice, str] | None:
    """When the second likeliest task routes to the same tier as the first and the two together
    reach the confidence floor, the tier is not in doubt though the task is ("shorter, please"
    read as Summarization 0.34 and Rewrite 0.29): the first task's choice and the words for it,
    else None. A flat distribution never qualifies: its two likeliest tasks sum to far below any
    useful floor."""
    ranked = sorted(prediction.probabilities.items(), key=lambda kv: -kv[1])
    if len(ranked) < 2 or ranked[0][0] != prediction.task:
        return None
    second, p_second = ranked[1]
    if prediction.confidence + p_second < policy.confidence_floor:
        return None
    choice = _by_rules(prediction, policy)
    if choice.tier != _by_rules(replace(prediction, task=second), policy).tier:
        return None
    return choice, f"{second} at {p_second:.2f} goes to the same tier"


def _by_rules(prediction: Prediction, policy: Policy) -> RouteChoice:
    for rule in policy.rules:
        if rule.matches(prediction):
            if rule.tolerance is not None:
                tier, why = policy.within_tolerance(prediction, rule.tolerance)
                return RouteChoice(tier, rule.name, ", ".join(filter(None, (rule.why(prediction), why))))
            assert rule.tier is not None  # the schema requires one of the two
            return RouteChoice(rule.tier, rule.name, rule.why(prediction))
    return RouteChoice(policy.default_tier, DEFAULT, f"no rule matched (task {prediction.task}, difficulty "
                       f"{prediction.difficulty:.2f})")


def diff_policies(old: Policy | dict[str, Any], new: Policy | dict[str, Any], *, old_label: str = "old",
                  new_label: str = "new") -> str:
    """A unified YAML diff of two policy documents; empty when they are equal."""
    def as_yaml(p: Policy | dict[str, Any]) -> list[str]:
        doc = p.to_document() if isinstance(p, Policy) else p
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).splitlines(keepends=True)

    return "".join(difflib.unified_diff(as_yaml(old), as_yaml(new), old_label, new_label))
