"""The ONNX Runtime backend: one session per process, CUDA tried before CPU, the
provider in use reported, batched inference, thread counts sized for small hosts.

A GPU host installs `onnxruntime-gpu` instead of `onnxruntime` (same version); the
CUDA provider is then used without any other change.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from router.classifier.artifact import DIFFICULTY, INPUTS, OUTPUTS, ArtifactError, Preprocessor
from router.classifier.int8_kernels import unsigned_weights, use_exact
from router.classifier.length_groups import length_groups
from router.classifier.prediction import Prediction
from router.classifier.text import CONTEXT_MARKER, split_turn_and_context

PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


def dynamically_quantized(path: Path) -> bool:
    """A model made by quantize_dynamic computes its int8 activation scales over the whole
    input tensor, padding included, so a prompt's probabilities would shift with the prompts
    batched beside it (measured: 11 of 286 labels flipped between batch 1 and batch 32)."""
    with path.open("rb") as f:
        return b"DynamicQuantizeLinear" in f.read()


class OnnxClassifier:
    name = "onnx"

    def __init__(self, model_dir: Path | str, *, model_file: str = "model.onnx", threads: int | None = None,
                 providers: Sequence[str] | None = None, allow_untrained: bool = False, int8: str = "auto") -> None:
        self.model_dir = Path(model_dir)
        self.model_path = self.model_dir / model_file
        if not self.model_path.is_file():
            raise ArtifactError(f"{self.model_path} is missing")
        self.pre = Preprocessor(self.model_dir, allow_untrained=allow_untrained)
        options = ort.SessionOptions()
        # Inference shares the host with the server: a couple of threads, no inter-op pool.
        options.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = ort.get_available_providers()
        wanted = [p for p in (providers or PREFERRED_PROVIDERS) if p in available] or ["CPUExecutionProvider"]
        # On a CPU whose int8 kernel saturates, the weights go in as uint8: the same numbers, computed
        # exactly (router/classifier/int8_kernels.py). A GPU runs the model as shipped.
        self.exact_int8 = "CUDAExecutionProvider" not in wanted and use_exact(int8)
        self.unsigned_weights = 0
        try:
            model: str | bytes = str(self.model_path)
            if self.exact_int8:
                model, self.unsigned_weights = unsigned_weights(self.model_path.read_bytes())
            self.session = ort.InferenceSession(model, options, providers=wanted)
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt models
            raise ArtifactError(f"{self.model_path} cannot be loaded: {exc}") from None
        names = {i.name for i in self.session.get_inputs()}, {o.name for o in self.session.get_outputs()}
        if not set(INPUTS) <= names[0] or not set(OUTPUTS) <= names[1]:
            raise ArtifactError(f"{self.model_path} must take {INPUTS} and give {OUTPUTS}; it takes "
                                f"{sorted(names[0])} and gives {sorted(names[1])}")
        if self.pre.labels.difficulty != (DIFFICULTY in names[1]):
            raise ArtifactError(f"{self.model_path}: labels.json says difficulty={self.pre.labels.difficulty} but "
                                f"the model {'has' if DIFFICULTY in names[1] else 'lacks'} a {DIFFICULTY} output")
        self.outputs = [*OUTPUTS, DIFFICULTY] if self.pre.labels.difficulty else list(OUTPUTS)
        self.provider = self.session.get_providers()[0]
        # Such a model runs one prompt per call: the same text always gets the same prediction.
        # On a 2-core CPU batching bought little anyway (batch-32 67 prompts/s vs batch-1 68).
        self.one_per_run = dynamically_quantized(self.model_path)

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        if not texts:
            return []
        # A follow-up is also read on its own, and its task is the mean of both readings: a turn
        # that says what it wants ("explain its complexity") keeps that even after a code answer,
        # and one that needs its context ("shorter, please") reads flat alone, so the context wins
        # (held-out macro-F1 0.759 against 0.742 reading only the turn with its context).
        alone = {i: split_turn_and_context(t)[0] for i, t in enumerate(texts) if CONTEXT_MARKER in t}
        inputs = [*texts, *alone.values()]
        if self.one_per_run and len(inputs) > 1:
            outputs = [self.session.run(self.outputs, self.pre.encode([t])) for t in inputs]
            task_probs, dimensions, *difficulty = (np.concatenate(parts) for parts in zip(*outputs, strict=True))
        else:
            task_probs, dimensions, *difficulty = self._run_grouped(self.pre.encode(inputs))
        n = len(texts)
        for j, i in enumerate(alone):
            task_probs[i] = (task_probs[i] + task_probs[n + j]) / 2
            if difficulty:  # the head was fitted on standalone prompts: it reads the turn itself
                difficulty[0][i] = difficulty[0][n + j]
        return self.pre.predictions(task_probs[:n], dimensions[:n], self.name,
                                    difficulty[0][:n] if difficulty else None)

    def _run_grouped(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs for every row of `feeds`, computed in groups of similar length, each cut to its
        own longest prompt (the tokenizer pads on the right)."""
        mask = feeds["attention_mask"]
        lengths = mask.sum(axis=1)
        groups = length_groups(lengths.tolist())
        if len(groups) == 1:
            return list(self.session.run(self.outputs, feeds))
        parts: list[list[np.ndarray]] = []
        for rows in groups:
            width = max(int(lengths[rows].max()), 1)
            parts.append(self.session.run(self.outputs, {name: value[rows, :width] for name, value in feeds.items()}))
        order = np.argsort(np.concatenate([np.asarray(rows) for rows in groups]), kind="stable")
        return [np.concatenate(outputs)[order] for outputs in zip(*parts, strict=True)]

    def info(self) -> dict[str, Any]:
        return {"backend": self.name, "provider": self.provider, "model": str(self.model_path),
                "japanese_glossary": self.pre.glossary is not None,
                "difficulty": "learned head" if DIFFICULTY in self.outputs else "complexity score",
                "int8_weights": (f"unsigned, exact on this CPU ({self.unsigned_weights} products)"
                                 if self.unsigned_weights else "as shipped")}
