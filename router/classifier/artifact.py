"""A classifier artifact on disk, as the ONNX and Triton backends read it:

    <dir>/model.onnx      inputs input_ids, attention_mask (int64, [batch, seq]);
                          outputs task_probs (float32, [batch, tasks]) and
                          dimensions (float32, [batch, dims], each in [0, 1]);
                          optional difficulty (float32, [batch, 1], in [0, 1]: the
                          chance a small tier falls short, training/difficulty.py)
    <dir>/tokenizer.json  a `tokenizers` tokenizer
    <dir>/labels.json     {"tasks": [...], "dimensions": [...], "max_length": N,
                           "difficulty": true when model.onnx has the difficulty output}
    <dir>/glossary-ja.tsv.gz  optional: Japanese is read through this English gloss
                          (router/classifier/glossary.py); a model trained with it has it

Both backends tokenize in the client with the same tokenizer and turn the two outputs
into Predictions the same way, so they agree on every prompt.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from router.classifier.glossary import Glossary, GlossaryError
from router.classifier.prediction import (
    COMPLEXITY_WEIGHTS,
    QUALITY_CLASSES,
    TASK_LABELS,
    Prediction,
    complexity_score,
    tier_success,
)
from router.classifier.text import model_text

GLOSSARY_FILE = "glossary-ja.tsv.gz"
INPUTS = ("input_ids", "attention_mask")
OUTPUTS = ("task_probs", "dimensions")
DIFFICULTY = "difficulty"  # optional output; without it the complexity score stands in


class ArtifactError(RuntimeError):
    """The artifact is missing, incomplete or does not match the classifier contract."""


@dataclass(frozen=True)
class Labels:
    tasks: tuple[str, ...]
    dimensions: tuple[str, ...]
    max_length: int
    difficulty: bool = False
    # Per quality class, (intercept, slope) on logit(difficulty): its chance of answering well.
    tier_success: dict[str, tuple[float, float]] = field(default_factory=dict)


def load_labels(model_dir: Path, *, allow_untrained: bool = False) -> Labels:
    path = model_dir / "labels.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("untrained") and not allow_untrained:
            raise ArtifactError(f"{model_dir} holds untrained heads (a latency-measurement build); it cannot route")
        calibration = {str(k): (float(v["intercept"]), float(v["slope"]))
                       for k, v in (raw.get("tier_success") or {}).items()}
        labels = Labels(tuple(raw["tasks"]), tuple(raw["dimensions"]), int(raw.get("max_length", 128)),
                        bool(raw.get("difficulty", False)), calibration)
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path} is not a valid labels file: {exc}") from None
    if set(labels.tasks) != set(TASK_LABELS) or len(labels.tasks) != len(TASK_LABELS):
        raise ArtifactError(f"{path}: tasks must be exactly {list(TASK_LABELS)}")
    if set(labels.dimensions) != set(COMPLEXITY_WEIGHTS):
        raise ArtifactError(f"{path}: dimensions must be exactly {list(COMPLEXITY_WEIGHTS)}")
    if not set(labels.tier_success) <= set(QUALITY_CLASSES):
        raise ArtifactError(f"{path}: tier_success classes must be among {list(QUALITY_CLASSES)}")
    if labels.tier_success and not labels.difficulty:
        raise ArtifactError(f"{path}: tier_success needs the difficulty output")
    if not 8 <= labels.max_length <= 4096:
        raise ArtifactError(f"{path}: max_length must be between 8 and 4096")
    return labels


def load_tokenizer(model_dir: Path, max_length: int) -> Tokenizer:
    path = model_dir / "tokenizer.json"
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exceptions for missing or broken files
        raise ArtifactError(f"{path} cannot be loaded: {exc}") from None
    # The latest user turn comes first in the classifier text, so truncation drops old context first.
    tokenizer.enable_truncation(max_length=max_length)
    pad_id = tokenizer.token_to_id("[PAD]")
    tokenizer.enable_padding(pad_id=pad_id if pad_id is not None else 0, pad_token="[PAD]")
    return tokenizer


def load_glossary(model_dir: Path) -> Glossary | None:
    path = model_dir / GLOSSARY_FILE
    if not path.exists():
        return None
    try:
        return Glossary.load(path)
    except GlossaryError as exc:
        raise ArtifactError(str(exc)) from None


def input_text(text: str, glossary: Glossary | None) -> str:
    """What the model reads for one classifier text (training calls this too)."""
    if not text.strip():
        return "."
    text = model_text(text)
    return glossary.gloss(text) if glossary is not None else text


def encode(tokenizer: Tokenizer, texts: Sequence[str], glossary: Glossary | None = None) -> dict[str, np.ndarray]:
    encodings = tokenizer.encode_batch([input_text(t, glossary) for t in texts])
    return {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64)}


def to_predictions(labels: Labels, task_probs: np.ndarray, dimensions: np.ndarray, backend: str,
                   difficulty: np.ndarray | None = None) -> list[Prediction]:
    if task_probs.shape[1] != len(labels.tasks) or dimensions.shape[1] != len(labels.dimensions):
        raise ArtifactError(f"model outputs have shapes {task_probs.shape} and {dimensions.shape}; labels.json "
                            f"names {len(labels.tasks)} tasks and {len(labels.dimensions)} dimensions")
    if difficulty is not None and difficulty.reshape(-1).shape[0] != task_probs.shape[0]:
        raise ArtifactError(f"the difficulty output has shape {difficulty.shape} for {task_probs.shape[0]} prompts")
    scores = [-1.0] * len(task_probs) if difficulty is None else [float(v) for v in difficulty.reshape(-1)]
    out = []
    for probs, dims, hard in zip(task_probs.astype(np.float64), dimensions.astype(np.float64), scores, strict=True):
        probs = np.clip(probs, 0.0, None)
        total = probs.sum()
        probs = probs / total if total > 0 else np.full_like(probs, 1.0 / len(probs))
        p = {label: float(v) for label, v in zip(labels.tasks, probs, strict=True)}
        d = {name: float(min(1.0, max(0.0, v))) for name, v in zip(labels.dimensions, dims, strict=True)}
        success = tier_success(hard, labels.tier_success) if labels.tier_success and hard >= 0 else {}
        out.append(Prediction(max(p, key=p.__getitem__), p, complexity_score(d), d, backend, difficulty=hard,
                              tier_success=success))
    return out


class Preprocessor:
    """An artifact's labels and tokenizer: what every backend running its model shares."""

    def __init__(self, model_dir: Path, *, allow_untrained: bool = False) -> None:
        self.labels = load_labels(model_dir, allow_untrained=allow_untrained)
        self.tokenizer = load_tokenizer(model_dir, self.labels.max_length)
        self.glossary = load_glossary(model_dir)
        self._lock = threading.Lock()  # the tokenizer's padding state is shared

    def encode(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        with self._lock:
            return encode(self.tokenizer, texts, self.glossary)

    def predictions(self, task_probs: np.ndarray, dimensions: np.ndarray, backend: str,
                    difficulty: np.ndarray | None = None) -> list[Prediction]:
        return to_predictions(self.labels, task_probs, dimensions, backend, difficulty)
