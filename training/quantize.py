"""Static int8 quantization of a classifier's fp32 export, so that predictions do not depend
on the batch and the ONNX backend can batch.

`quantize_dynamic` (export.py) computes activation scales at run time over the whole input
tensor, padding and neighbouring prompts included, so that model runs one prompt per call.
Here the scales are fixed once from calibration prompts drawn from the training split (never
the held-out one): QDQ format, int8 weights per output channel, uint8 activations, and only the
encoder's weight matrix products quantized (the heads and the attention's own products stay
fp32). A product's output stays float (no second rounding before the bias and the residual).
Each feed-forward block's down-projection reads a GELU output with one outlier channel: that
channel goes through a float product of its own, the rest through the int8 one.

    python -m training.quantize --model models/prompt-classifier --data ml.jsonl [--calibration 300]

It writes model.onnx (the dynamic one is kept as model-dynamic.onnx, not committed); run
training.difficulty afterwards, since the difficulty head reads this model's embedding.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from router.classifier.artifact import Preprocessor
from router.classifier.onnx import dynamically_quantized
from router.classifier.text import join_turn_and_context
from training.evaluate import Example, load_examples, split


class Prompts(CalibrationDataReader):
    """One prompt per feed, as serving sees them (tokenized with the artifact's own tokenizer)."""

    def __init__(self, feeds: Iterable[dict[str, np.ndarray]]) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def encoder_matmuls(model: onnx.ModelProto) -> list[str]:
    """The encoder's weight products: MatMul nodes with a constant right-hand side that come
    before the pooled embedding. The heads after it stay fp32, as do the attention's own
    products (both sides computed)."""
    from training.difficulty_graph import pooled_tensor

    constants = {init.name for init in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    nodes = list(model.graph.node)
    consumers: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(index)
    after_pooling: set[int] = set()
    todo = [pooled_tensor(model.graph)]
    while todo:
        for index in consumers.get(todo.pop(), []):
            if index not in after_pooling:
                after_pooling.add(index)
                todo += list(nodes[index].output)
    names = [node.name for index, node in enumerate(nodes)
             if node.op_type == "MatMul" and len(node.input) == 2 and node.input[1] in constants
             and index not in after_pooling and node.name]
    if not names:
        raise ValueError("no encoder matrix product with constant weights found: nothing to quantize")
    return names


# Channels of a down-projection's input that get a float product of their own. Over this build's
# calibration prompts one channel per layer reached 12-69 where the rest stayed under 7; a
# per-tensor uint8 scale set by it flattened the others (held-out macro-F1 0.668 with the
# products quantized whole, 0.735 with them left float, 0.738 with that channel apart).
OUTLIER_CHANNELS = 1


def down_projections(model: onnx.ModelProto, among: Collection[str] | None = None) -> list[onnx.NodeProto]:
    """Each feed-forward block's second product (e.g. 1536 -> 384): a MatMul whose constant
    weight has more rows than columns (named: quantize_static picks nodes by name), of the
    products named in `among` where given (the encoder's: the heads stay as they are)."""
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    return [node for node in model.graph.node if node.op_type == "MatMul" and node.name and len(node.input) == 2
            and (among is None or node.name in among)
            and len(shapes.get(node.input[1], ())) == 2 and shapes[node.input[1]][0] > shapes[node.input[1]][1]]


def outlier_channels(model: onnx.ModelProto, feeds: Iterable[dict[str, np.ndarray]],
                     count: int = OUTLIER_CHANNELS, among: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """For each down-projection (by node name; of `among` where given), the `count` input
    channels with the largest absolute value over the calibration feeds."""
    import onnxruntime as ort

    downs = down_projections(model, among)
    if not downs:
        return {}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for node in downs:
        probe.graph.output.append(helper.make_tensor_value_info(node.input[0], onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [node.input[0] for node in downs]
    peaks: list[np.ndarray | None] = [None] * len(downs)
    for feed in feeds:
        for i, value in enumerate(session.run(names, feed)):
            peak = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            current = peaks[i]
            peaks[i] = peak if current is None else np.maximum(current, peak)
    return {node.name: np.sort(np.argsort(-peak)[:count]).astype(np.int64)
            for node, peak in zip(downs, peaks, strict=True) if peak is not None}


def split_outliers(model: onnx.ModelProto, channels: dict[str, np.ndarray]) -> None:
    """Rewrite each named product y = x W as (x * mask) W + x[..., idx] W[idx]: the masked part is
    what quantize_static quantizes (under the node's own name), the outlier part stays float."""
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    for node in [n for n in graph.node if n.name in channels]:
        idx = channels[node.name]
        x, weight, y = node.input[0], node.input[1], node.output[0]
        w = numpy_helper.to_array(inits[weight])
        mask = np.ones(w.shape[0], dtype=w.dtype)
        mask[idx] = 0
        base = node.name.strip("/").replace("/", "_")
        graph.initializer.extend([numpy_helper.from_array(mask, base + "_inlier_mask"),
                                  numpy_helper.from_array(idx, base + "_outlier_index"),
                                  numpy_helper.from_array(np.ascontiguousarray(w[idx]), base + "_outlier_weight")])
        at = list(graph.node).index(node)
        before = [helper.make_node("Mul", [x, base + "_inlier_mask"], [base + "_inliers"], name=base + "_inlier"),
                  helper.make_node("Gather", [x, base + "_outlier_index"], [base + "_outliers"], axis=-1,
                                   name=base + "_outlier_gather"),
                  helper.make_node("MatMul", [base + "_outliers", base + "_outlier_weight"], [base + "_outlier_y"],
                                   name=base + "_outlier_product")]
        node.input[0], node.output[0] = base + "_inliers", base + "_inlier_y"
        for offset, new in enumerate(before):
            graph.node.insert(at + offset, new)
        graph.node.insert(at + len(before) + 1,
                          helper.make_node("Add", [base + "_inlier_y", base + "_outlier_y"], [y], name=base + "_sum"))


def weights_only(path: Path) -> None:
    """int8 storage for the token embedding table, which stays fp32 in the arithmetic (per tensor,
    dequantized after the lookup, as quantize_dynamic stores it): the file stays small."""
    model = onnx.load(str(path))
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    added: list[onnx.TensorProto] = []

    def stored_int8(base: str, values: np.ndarray, scale: np.floating, source: str, target: str) -> onnx.NodeProto:
        """Replace initializer `base` by int8 `values` with `scale`; the node that dequantizes `source`."""
        q = np.clip(np.round(values / scale), -127, 127).astype(np.int8)
        added.extend([numpy_helper.from_array(q, base + "_int8"),
                      numpy_helper.from_array(np.asarray(scale, dtype=np.float32), base + "_int8_scale"),
                      numpy_helper.from_array(np.zeros(np.shape(scale), dtype=np.int8), base + "_int8_zero")])
        graph.initializer.remove(inits.pop(base))
        return helper.make_node("DequantizeLinear", [source, base + "_int8_scale", base + "_int8_zero"], [target],
                                name=base + "_dequantize")

    ordered: list[onnx.NodeProto] = []  # each DequantizeLinear just after its lookup
    for node in graph.node:
        base = node.input[0] if node.op_type == "Gather" else ""
        if base in inits and np.prod(inits[base].dims) > 1_000_000:
            table = numpy_helper.to_array(inits[base]).astype(np.float32)
            out = node.output[0]
            node.input[0], node.output[0] = base + "_int8", out + "_int8"
            ordered += [node, stored_int8(base, table, np.float32(max(float(np.abs(table).max()), 1e-12) / 127.0),
                                          out + "_int8", out)]
        else:
            ordered.append(node)
    graph.initializer.extend(added)
    del graph.node[:]
    graph.node.extend(ordered)
    onnx.save(model, str(path))


def calibration_texts(examples: list[Example], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    chosen = rng.sample(examples, min(n, len(examples)))
    return [join_turn_and_context(e.prompt, e.context) for e in chosen]


def quantize(model_dir: Path, texts: list[str]) -> Path:
    fp32 = model_dir / "model-fp32.onnx"
    if not fp32.is_file():
        raise FileNotFoundError(f"{fp32} is missing: training.train writes the fp32 export beside model.onnx")
    model = onnx.load(str(fp32))
    nodes = encoder_matmuls(model)
    target = model_dir / "model.onnx"
    if target.is_file() and dynamically_quantized(target):
        shutil.copyfile(target, model_dir / "model-dynamic.onnx")
    pre = Preprocessor(model_dir)
    feeds = [pre.encode([t]) for t in texts]  # the outlier search and the calibration read the same prompts
    split_outliers(model, outlier_channels(model, feeds, among=set(nodes)))
    split = model_dir / "model-split.onnx"
    onnx.save(model, str(split))
    staged = model_dir / "model-static.onnx"
    try:
        quantize_static(str(split), str(staged), Prompts(feeds), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        nodes_to_quantize=nodes, calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False,
                                       "OpTypesToExcludeOutputQuantization": ["MatMul"]})
    finally:
        split.unlink(missing_ok=True)
    weights_only(staged)
    staged.replace(target)
    print(f"quantized {len(nodes)} encoder products with scales from {len(texts)} training prompts: {target}")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="artifact folder holding model-fp32.onnx")
    parser.add_argument("--data", type=Path, required=True, help="the labeled JSONL the model was trained on")
    parser.add_argument("--held-out", type=float, default=0.2, help="as in its training: these prompts never calibrate")
    parser.add_argument("--calibration", type=int, default=300, help="training prompts that set the scales")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    try:
        train, _ = split(load_examples(args.data), args.held_out, args.seed)
        quantize(args.model, calibration_texts(train, args.calibration, args.seed))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
