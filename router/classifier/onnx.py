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

import onnxruntime as ort

from router.classifier.artifact import DIFFICULTY, INPUTS, OUTPUTS, ArtifactError, Preprocessor
from router.classifier.prediction import Prediction

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
                 providers: Sequence[str] | None = None, allow_untrained: bool = False) -> None:
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
        try:
            self.session = ort.InferenceSession(str(self.model_path), options, providers=wanted)
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
        if self.one_per_run and len(texts) > 1:
            return [p for text in texts for p in self.classify([text])]
        task_probs, dimensions, *difficulty = self.session.run(self.outputs, self.pre.encode(texts))
        return self.pre.predictions(task_probs, dimensions, self.name, difficulty[0] if difficulty else None)

    def info(self) -> dict[str, Any]:
        return {"backend": self.name, "provider": self.provider, "model": str(self.model_path),
                "japanese_glossary": self.pre.glossary is not None,
                "difficulty": "learned head" if DIFFICULTY in self.outputs else "complexity score"}
