"""Task and complexity classifiers behind one protocol (see prediction.py)."""

from router.classifier.keyword import KeywordClassifier
from router.classifier.prediction import (
    COMPLEXITY_WEIGHTS,
    TASK_LABELS,
    Classifier,
    Prediction,
    complexity_score,
)

__all__ = [
    "COMPLEXITY_WEIGHTS",
    "TASK_LABELS",
    "Classifier",
    "KeywordClassifier",
    "Prediction",
    "complexity_score",
]
