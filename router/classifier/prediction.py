"""The classifier contract: labels, the Prediction type and the complexity formula."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
class Prediction:
    task: str
    probabilities: dict[str, float]
    complexity: float
    dimensions: dict[str, float] = field(default_factory=dict)
    backend: str = "unknown"

    @property
    def confidence(self) -> float:
        return self.probabilities.get(self.task, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "confidence": round(self.confidence, 6),
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "complexity": round(self.complexity, 6),
            "dimensions": {k: round(v, 6) for k, v in self.dimensions.items()},
            "backend": self.backend,
        }


@runtime_checkable
class Classifier(Protocol):
    """Anything that labels prompts. Backends: onnx, triton, keyword."""

    name: str

    def classify(self, texts: Sequence[str]) -> list[Prediction]: ...

    def info(self) -> dict[str, Any]: ...
