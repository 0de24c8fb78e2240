"""The classifier contract: labels, the Prediction type and the complexity formula.

`complexity` is NVIDIA's six-dimension explanation; `difficulty` is what routing reads: the
estimated chance that a small tier's answer falls short (a head trained on public per-prompt
outcomes where the model has one, see training/difficulty.py; otherwise the complexity score put
on the same scale by `complexity_as_difficulty`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Protocol, runtime_checkable

# NVIDIA prompt-task-and-complexity-classifier's task types, in its order.
TASK_LABELS: tuple[str, ...] = (
    "Open QA",
    "Closed QA",
    "Summarization",
    "Text Generation",
    "Code Generation",
    "Chatbot",
    "Classification",
    "Rewrite",
    "Brainstorming",
    "Extraction",
    "Other",
)

# Complexity = weighted sum of these dimensions, each in [0, 1].
COMPLEXITY_WEIGHTS: Mapping[str, float] = {
    "creativity": 0.35,
    "reasoning": 0.25,
    "constraints": 0.15,
    "domain_knowledge": 0.15,
    "contextual_knowledge": 0.05,
    "few_shot": 0.05,
}


def complexity_score(dimensions: Mapping[str, float]) -> float:
    score = sum(w * float(dimensions.get(name, 0.0)) for name, w in COMPLEXITY_WEIGHTS.items())
    return min(1.0, max(0.0, score))


# Without a learned head, complexity stands in for difficulty through this monotone map: the
# complexity levels the seed policy used to call easy (0.2) and hard (0.4) land on the difficulty
# levels it now uses (0.45 and 0.55), so a backend without the head routes as it did before.
# A convention, not a calibration: the keyword cues have no outcome data behind them.
COMPLEXITY_TO_DIFFICULTY: tuple[tuple[float, float], ...] = ((0.0, 0.2), (0.2, 0.45), (0.4, 0.55), (1.0, 0.85))


def complexity_as_difficulty(complexity: float) -> float:
    points = COMPLEXITY_TO_DIFFICULTY
    c = min(1.0, max(0.0, complexity))
    for (x0, y0), (x1, y1) in pairwise(points):
        if c <= x1:
            return y0 + (y1 - y0) * (c - x0) / (x1 - x0)
    return points[-1][1]


QUALITY_CLASSES: tuple[str, ...] = ("small", "medium", "large")


def tier_success(difficulty: float, calibration: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Each class's chance of answering well: sigmoid(intercept + slope * logit(difficulty))."""
    d = min(1 - 1e-6, max(1e-6, difficulty))
    logit = math.log(d / (1 - d))
    return {name: 1 / (1 + math.exp(-(a + b * logit))) for name, (a, b) in calibration.items()}


@dataclass(frozen=True, slots=True)
class Prediction:
    task: str
    probabilities: dict[str, float]
    complexity: float
    dimensions: dict[str, float] = field(default_factory=dict)
    backend: str = "unknown"
    difficulty: float = field(default=-1.0, kw_only=True)
    # Estimated chance each quality class of tier answers well ("small", "medium", "large"), where
    # the model carries the calibration (labels.json `tier_success`); empty otherwise.
    tier_success: dict[str, float] = field(default_factory=dict, kw_only=True)

    def __post_init__(self) -> None:
        # A backend without a difficulty head passes none: the complexity score stands in.
        value = complexity_as_difficulty(self.complexity) if self.difficulty < 0 else self.difficulty
        object.__setattr__(self, "difficulty", min(1.0, max(0.0, float(value))))

    @property
    def confidence(self) -> float:
        return self.probabilities.get(self.task, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "confidence": round(self.confidence, 6),
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "complexity": round(self.complexity, 6),
            "difficulty": round(self.difficulty, 6),
            "tier_success": {k: round(v, 6) for k, v in self.tier_success.items()},
            "dimensions": {k: round(v, 6) for k, v in self.dimensions.items()},
            "backend": self.backend,
        }


@runtime_checkable
class Classifier(Protocol):
    """Anything that labels prompts. Backends: onnx, triton, keyword."""

    name: str

    def classify(self, texts: Sequence[str]) -> list[Prediction]: ...

    def info(self) -> dict[str, Any]: ...
