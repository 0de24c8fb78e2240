"""Static quantization: the encoder's products get fixed int8 scales from calibration prompts,
the heads stay fp32, and a prompt's prediction no longer depends on the prompts batched with it,
so the ONNX backend batches such a model."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
from onnxruntime.quantization import QuantType, quantize_dynamic

from router.classifier.onnx import OnnxClassifier
from tests.tiny_artifact import build
from training.quantize import encoder_matmuls, quantize

TEXTS = ["write a python function please", "hello", "summarize the list", "rewrite me a poem",
         "what", "extract the list the list the list the list", "classify", "ideas ideas", ""]


@pytest.fixture()
def artifact(tmp_path: Path) -> Path:
    folder = build(tmp_path / "prompt-classifier", mixer=True)
    shutil.copyfile(folder / "model.onnx", folder / "model-fp32.onnx")
    return folder


def test_only_the_encoder_products_are_chosen(artifact: Path) -> None:
    assert encoder_matmuls(onnx.load(str(artifact / "model-fp32.onnx"))) == ["mixer"]


def test_a_statically_quantized_model_batches_and_keeps_its_labels(artifact: Path) -> None:
    fp32 = [p.task for p in OnnxClassifier(artifact, model_file="model-fp32.onnx").classify(TEXTS)]
    quantize(artifact, TEXTS * 3)
    ops = {node.op_type for node in onnx.load(str(artifact / "model.onnx")).graph.node}
    assert "QuantizeLinear" in ops and "DynamicQuantizeLinear" not in ops
    model = OnnxClassifier(artifact)
    assert not model.one_per_run  # batches
    batched = model.classify(TEXTS)
    alone = [model.classify([t])[0] for t in TEXTS]
    for b, a in zip(batched, alone, strict=True):
        assert b.probabilities == pytest.approx(a.probabilities, abs=1e-6)  # independent of the batch
    assert [p.task for p in batched] == fp32


def test_a_dynamic_model_would_have_depended_on_the_batch(artifact: Path) -> None:
    # The reason for static scales: the same graph quantized dynamically shifts with its batch.
    quantize_dynamic(str(artifact / "model-fp32.onnx"), str(artifact / "dyn.onnx"), weight_type=QuantType.QInt8,
                     nodes_to_quantize=["mixer"])
    model = OnnxClassifier(artifact, model_file="dyn.onnx")
    assert model.one_per_run
    model.one_per_run = False  # force a real batch to show the drift the backend avoids
    batched = model.classify(TEXTS)
    alone = [model.classify([t])[0] for t in TEXTS]
    drift = max(abs(b.probabilities[k] - a.probabilities[k]) for b, a in zip(batched, alone, strict=True)
                for k in a.probabilities)
    assert drift > 1e-4


def test_a_missing_fp32_export_is_named(tmp_path: Path) -> None:
    folder = build(tmp_path / "c", mixer=True)
    with pytest.raises(FileNotFoundError, match=r"model-fp32\.onnx"):
        quantize(folder, TEXTS)
