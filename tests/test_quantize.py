"""Static quantization: the encoder's products get fixed int8 scales from calibration prompts
(a down-projection's outlier channel apart), the heads stay fp32, and a prompt's prediction no
longer depends on the prompts batched with it, so the ONNX backend batches such a model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

from router.classifier.onnx import OnnxClassifier
from tests.tiny_artifact import build
from training.quantize import down_projections, encoder_matmuls, outlier_channels, quantize, split_outliers

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


def _down_projection_model(rows: int = 8, cols: int = 4) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(rows, cols)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="/layers.0/out/MatMul")], "down",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, None, rows])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, None, cols])], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _feeds(n: int = 20, massive: float = 60.0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    feeds = []
    for _ in range(n):
        x = np.abs(rng.normal(size=(1, 6, 8))).astype(np.float32)
        x[0, 0, 3] = massive  # one channel of one token, as a GELU output's outlier
        feeds.append({"x": x})
    return feeds


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["y"], feed)[0])


def test_the_outlier_channel_is_found_and_split_off_without_changing_the_product() -> None:
    model = _down_projection_model()
    assert [node.name for node in down_projections(model)] == ["/layers.0/out/MatMul"]
    channels = outlier_channels(model, _feeds())
    assert channels["/layers.0/out/MatMul"].tolist() == [3]
    before = _run(model, _feeds()[0])
    split_outliers(model, channels)
    onnx.checker.check_model(model)
    assert _run(model, _feeds()[0]) == pytest.approx(before, rel=1e-5, abs=1e-5)


def test_splitting_the_outlier_off_keeps_the_int8_product_close(tmp_path: Path) -> None:
    # The reason for the split: a per-tensor uint8 scale set by one massive value flattens the rest.
    class Feeds(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = iter(_feeds())

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    errors = {}
    probe = _feeds(5, massive=0.0)  # everyday prompts: no outlier in them
    for split in (False, True):
        model = _down_projection_model()
        exact = [_run(model, feed) for feed in probe]
        if split:
            split_outliers(model, outlier_channels(model, _feeds()))
        onnx.save(model, str(tmp_path / "f.onnx"))
        quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), Feeds(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_quantize=["/layers.0/out/MatMul"])
        quantized = onnx.load(str(tmp_path / "q.onnx"))
        errors[split] = max(float(np.abs(_run(quantized, feed) - e).max())
                            for feed, e in zip(probe, exact, strict=True))
    assert errors[True] < errors[False] / 5
