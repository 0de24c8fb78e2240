"""Static int8 quantization of a classifier's fp32 export, so that predictions do not depend
on the batch and the ONNX backend can batch.

`quantize_dynamic` (export.py) computes activation scales at run time over the whole input
tensor, padding and neighbouring prompts included, so that model runs one prompt per call.
Here the scales are fixed once from calibration prompts drawn from the training split (never
the held-out one): QDQ format, int8 weights per output channel, uint8 activations, and only the
encoder's weight matrix products quantized, less each feed-forward block's down-projection (the
heads, the attention's own products and those stay fp32).

    python -m training.quantize --model models/prompt-classifier --data ml.jsonl [--calibration 300]

It writes model.onnx (the dynamic one is kept as model-dynamic.onnx, not committed); run
training.difficulty afterwards, since the difficulty head reads this model's embedding.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from collections.abc import Iterator
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

    def __init__(self, pre: Preprocessor, texts: list[str]) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = (pre.encode([t]) for t in texts)

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
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    names = [node.name for index, node in enumerate(nodes)
             if node.op_type == "MatMul" and len(node.input) == 2 and node.input[1] in constants
             and index not in after_pooling and node.name and not _down_projection(shapes.get(node.input[1]))]
    if not names:
        raise ValueError("no encoder matrix product with constant weights found: nothing to quantize")
    return names


def _down_projection(shape: tuple[int, ...] | None) -> bool:
    """A feed-forward block's second product (e.g. 1536 -> 384) reads the GELU's output, whose
    few large values a per-tensor uint8 scale flattens: left fp32, held-out accuracy stayed
    0.796 against 0.722 with it quantized (the dynamic model: 0.768)."""
    return shape is not None and len(shape) == 2 and shape[0] > shape[1]


def weights_only(path: Path) -> None:
    """int8 storage for what stays fp32 in the arithmetic: the down-projections' weights (per
    output column, dequantized before the product) and the token embedding table (per tensor,
    dequantized after the lookup, as quantize_dynamic stores it). The file stays small; the
    activations these read keep their float precision."""
    model = onnx.load(str(path))
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    added: list[onnx.TensorProto] = []

    def stored_int8(base: str, values: np.ndarray, scale: np.ndarray, source: str, target: str,
                    **axis: int) -> onnx.NodeProto:
        """Replace initializer `base` by int8 `values` with `scale`; the node that dequantizes `source`."""
        q = np.clip(np.round(values / scale), -127, 127).astype(np.int8)
        added.extend([numpy_helper.from_array(q, base + "_int8"),
                      numpy_helper.from_array(np.asarray(scale, dtype=np.float32), base + "_int8_scale"),
                      numpy_helper.from_array(np.zeros(np.shape(scale), dtype=np.int8), base + "_int8_zero")])
        graph.initializer.remove(inits.pop(base))
        return helper.make_node("DequantizeLinear", [source, base + "_int8_scale", base + "_int8_zero"], [target],
                                name=base + "_dequantize", **axis)

    ordered: list[onnx.NodeProto] = []  # each DequantizeLinear just before its product, or after its lookup
    for node in graph.node:
        base = node.input[1] if node.op_type == "MatMul" else node.input[0] if node.op_type == "Gather" else ""
        if node.op_type == "MatMul" and base in inits and _down_projection(tuple(inits[base].dims)):
            w = numpy_helper.to_array(inits[base]).astype(np.float32)
            ordered.append(stored_int8(base, w, np.maximum(np.abs(w).max(axis=0), 1e-12) / 127.0, base + "_int8",
                                       base + "_dq", axis=1))
            node.input[1] = base + "_dq"
            ordered.append(node)
        elif node.op_type == "Gather" and base in inits and np.prod(inits[base].dims) > 1_000_000:
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
    staged = model_dir / "model-static.onnx"
    quantize_static(str(fp32), str(staged), Prompts(Preprocessor(model_dir), texts), quant_format=QuantFormat.QDQ,
                    per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    nodes_to_quantize=nodes, calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
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
