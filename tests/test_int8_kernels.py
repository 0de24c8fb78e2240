"""Exact int8 products whatever the CPU: where ONNX Runtime's signed-weight kernel would saturate
(x86 without VNNI) the shipped model's weights go in as uint8, the same numbers, and the model then
computes what it computes with no integer kernel at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from router.classifier.int8_kernels import cpu_flags, signed_int8_saturates, unsigned_weights, use_exact
from router.classifier.onnx import OnnxClassifier
from router.config import DEFAULT_MODEL, Settings
from router.runtime import make_classifier

PROMPTS = ["Design a URL shortener like bit.ly that scales to billions of links.", "Write FizzBuzz in Python.",
           "ゲーデルの不完全性定理を証明の概略とともに説明してください。", "要点だけ箇条書きで",
           "Summarize this article in three sentences:\n\nThe council voted to expand the bike lanes."]


def test_which_cpus_get_the_exact_path(tmp_path: Path) -> None:
    assert signed_int8_saturates("x86_64", frozenset({"sse4_2", "avx2", "fma"}))
    assert signed_int8_saturates("x86_64", frozenset({"avx2", "avx512f", "avx512bw"}))  # AVX-512 without VNNI
    for exact in ("avx512_vnni", "avx_vnni", "amx_int8"):
        assert not signed_int8_saturates("x86_64", frozenset({"avx2", exact}))
    assert not signed_int8_saturates("aarch64", frozenset())
    assert signed_int8_saturates("AMD64", None, read_flags=False)  # flags unknown: the path that is never wrong
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512_vnni\n\nprocessor\t: 1\nflags\t: fpu\n")
    assert cpu_flags(cpuinfo) == frozenset({"fpu", "sse2", "avx2", "avx512_vnni"})
    assert cpu_flags(tmp_path / "absent") is None
    assert use_exact("exact") and not use_exact("native")
    with pytest.raises(ValueError, match="ROUTER_CLASSIFIER_INT8 must be one of auto, exact, native, got 'fast'"):
        use_exact("fast")


def test_unsigned_weights_are_the_same_numbers() -> None:
    shipped = onnx.load(str(DEFAULT_MODEL / "model.onnx"))
    converted_bytes, changed = unsigned_weights(shipped.SerializeToString())
    converted = onnx.load_from_string(converted_bytes)
    assert changed == 72  # the encoder's weight products: 12 layers x (q, k, v, out, up, down)
    before = {i.name: onnx.numpy_helper.to_array(i) for i in shipped.graph.initializer}
    after = {i.name: onnx.numpy_helper.to_array(i) for i in converted.graph.initializer}
    for node in converted.graph.node:
        if node.op_type == "DequantizeLinear" and after.get(node.input[0], np.empty(0)).dtype == np.uint8:
            weight, zero = node.input[0], node.input[2]
            assert before[weight].dtype == np.int8 and np.all(after[zero] == 128)
            assert np.array_equal(after[weight].astype(np.int16) - 128, before[weight])
    # Each weight and its zero point changed; the token embedding table (looked up, then dequantized
    # to float: no integer product) and its zero point are left as they are.
    still_int8 = {n for n in after if after[n].dtype == np.int8}
    assert len(still_int8) == sum(before[n].dtype == np.int8 for n in before) - 2 * changed == 2
    assert all(np.array_equal(after[n], before[n]) for n in still_int8)


def test_the_exact_path_computes_the_model_without_integer_kernels() -> None:
    """The reference runs every DequantizeLinear and float product as written (no optimizer, so no
    integer kernel); the exact path must agree with it closely on every prompt, on any CPU."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    reference = ort.InferenceSession(str(DEFAULT_MODEL / "model.onnx"), options, providers=["CPUExecutionProvider"])
    exact = OnnxClassifier(DEFAULT_MODEL, int8="exact")
    assert exact.unsigned_weights == 72 and exact.info()["int8_weights"].startswith("unsigned, exact")
    task_gaps, difficulty_gaps = [], []
    for text in PROMPTS:
        feeds = exact.pre.encode([text])
        want_probs, want_difficulty = reference.run(["task_probs", "difficulty"], feeds)
        got_probs, got_difficulty = exact.session.run(["task_probs", "difficulty"], feeds)
        assert got_probs.argmax() == want_probs.argmax(), text
        task_gaps.append(float(np.abs(got_probs - want_probs).max()))
        difficulty_gaps.append(float(np.abs(got_difficulty - want_difficulty).max()))
    # Fused float steps (layer norm, GELU) round differently from the reference's, and now and then a
    # uint8 activation lands one step over: most prompts agree exactly, a sensitive one by a few
    # hundredths. The saturating kernel on an AVX2 CPU: a median gap of 0.09 and 0.04, up to 0.34.
    assert np.median(task_gaps) < 0.01 and max(task_gaps) < 0.12, task_gaps
    assert np.median(difficulty_gaps) < 0.01 and max(difficulty_gaps) < 0.06, difficulty_gaps


def test_the_server_setting_reaches_the_backend() -> None:
    classifier, error = make_classifier(Settings.from_env({"ROUTER_CLASSIFIER_INT8": "exact"}))
    assert error is None and classifier.info()["int8_weights"].startswith("unsigned, exact")
    classifier, error = make_classifier(Settings.from_env({"ROUTER_CLASSIFIER_INT8": "native"}))
    assert error is None and classifier.info()["int8_weights"] == "as shipped"
    with pytest.raises(ValueError, match="ROUTER_CLASSIFIER_INT8 must be auto, exact or native, got 'yes'"):
        Settings.from_env({"ROUTER_CLASSIFIER_INT8": "yes"})
