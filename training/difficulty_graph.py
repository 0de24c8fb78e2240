"""Graph surgery on a classifier's ONNX model: expose the pooled sentence embedding that the task
head reads, and attach a logistic difficulty head to it as a third output, `difficulty` (or two
heads, a general one and one for code, mixed by the task head's Code Generation probability).

The head is plain fp32 MatMul/Add/Sigmoid on the same pooled tensor, so it costs one 384-wide dot
product per prompt and needs no second encoder pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

POOLED_OUTPUT = "pooled_embedding"
DIFFICULTY_OUTPUT = "difficulty"
_HEAD_OPS = ("Gemm", "MatMul", "MatMulInteger")


def pooled_tensor(graph: onnx.GraphProto) -> str:
    """The fp32 tensor the task head multiplies: walk back from `task_probs` to the head's matrix
    product, and past the activation quantizer of an int8 model."""
    producer = {out: node for node in graph.node for out in node.output}
    name = "task_probs"
    for _ in range(12):
        node = producer.get(name)
        if node is None:
            break
        if node.op_type in _HEAD_OPS:
            source = node.input[0]
            quantizer = producer.get(source)
            if quantizer is not None and quantizer.op_type == "DynamicQuantizeLinear":
                source = quantizer.input[0]
            return source
        name = node.input[0]
    raise ValueError("no matrix product found behind task_probs: not a classifier graph this code knows")


def _value_info(name: str, width: int | str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", width])


def with_pooled_output(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` that also returns the pooled embedding (for building the head)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    source = pooled_tensor(out.graph)
    out.graph.node.append(helper.make_node("Identity", [source], [POOLED_OUTPUT], name="pooled_identity"))
    out.graph.output.append(_value_info(POOLED_OUTPUT, "hidden"))
    return out


def attach_difficulty(model: onnx.ModelProto, weight: np.ndarray, bias: float,
                      length_weight: float = 0.0, *, code: tuple[np.ndarray, float, float] | None = None,
                      code_index: int | None = None) -> onnx.ModelProto:
    """A copy of `model` with output `difficulty` [batch, 1] =
    sigmoid(pooled @ weight + length_weight * log(1 + tokens) + bias), tokens being the prompt's
    unpadded token count (the attention mask's sum, so truncation caps it at max_length).

    With `code` (a second head's weight, bias and length weight) and `code_index` (the Code
    Generation column of `task_probs`), difficulty = (1 - p) * general + p * code, p being that
    column: code prompts are judged by a head fitted on code outcomes alone."""
    if (code is None) != (code_index is None):
        raise ValueError("a code head needs its task column, and a task column its head")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    for existing in list(graph.output):
        if existing.name == DIFFICULTY_OUTPUT:
            raise ValueError("the model already has a difficulty output")
    source = pooled_tensor(graph)
    heads = [(np.asarray(weight, dtype=np.float32), bias, length_weight)] + ([code] if code is not None else [])
    w = numpy_helper.from_array(np.stack([np.asarray(h[0], dtype=np.float32) for h in heads], 1),
                                "difficulty_head.weight")
    b = numpy_helper.from_array(np.asarray([h[1] for h in heads], dtype=np.float32), "difficulty_head.bias")
    lw = numpy_helper.from_array(np.asarray([h[2] for h in heads], dtype=np.float32), "difficulty_head.length_weight")
    one = numpy_helper.from_array(np.asarray([1.0], dtype=np.float32), "difficulty_head.one")
    axis = numpy_helper.from_array(np.asarray([1], dtype=np.int64), "difficulty_head.seq_axis")
    graph.initializer.extend([w, b, lw, one, axis])
    mask = "attention_mask"
    sigmoid = DIFFICULTY_OUTPUT if code is None else "difficulty_head.each"
    graph.node.extend([
        helper.make_node("MatMul", [source, w.name], ["difficulty_head.logit_raw"], name="difficulty_head/MatMul"),
        helper.make_node("Cast", [mask], ["difficulty_head.mask"], to=TensorProto.FLOAT, name="difficulty_head/Cast"),
        helper.make_node("ReduceSum", ["difficulty_head.mask", axis.name], ["difficulty_head.tokens"], keepdims=1,
                         name="difficulty_head/ReduceSum"),
        helper.make_node("Add", ["difficulty_head.tokens", one.name], ["difficulty_head.tokens1"],
                         name="difficulty_head/AddOne"),
        helper.make_node("Log", ["difficulty_head.tokens1"], ["difficulty_head.log_tokens"],
                         name="difficulty_head/Log"),
        helper.make_node("Mul", ["difficulty_head.log_tokens", lw.name], ["difficulty_head.length_term"],
                         name="difficulty_head/MulLength"),
        helper.make_node("Add", ["difficulty_head.logit_raw", "difficulty_head.length_term"],
                         ["difficulty_head.logit_len"], name="difficulty_head/AddLength"),
        helper.make_node("Add", ["difficulty_head.logit_len", b.name], ["difficulty_head.logit"],
                         name="difficulty_head/Add"),
        helper.make_node("Sigmoid", ["difficulty_head.logit"], [sigmoid], name="difficulty_head/Sigmoid"),
    ])
    if code is not None:
        general_i = numpy_helper.from_array(np.asarray([0], dtype=np.int64), "difficulty_head.general_index")
        code_i = numpy_helper.from_array(np.asarray([1], dtype=np.int64), "difficulty_head.code_index")
        task_i = numpy_helper.from_array(np.asarray([code_index], dtype=np.int64), "difficulty_head.task_index")
        graph.initializer.extend([general_i, code_i, task_i])
        graph.node.extend([
            helper.make_node("Gather", [sigmoid, general_i.name], ["difficulty_head.general"], axis=1,
                             name="difficulty_head/GatherGeneral"),
            helper.make_node("Gather", [sigmoid, code_i.name], ["difficulty_head.code"], axis=1,
                             name="difficulty_head/GatherCode"),
            helper.make_node("Gather", ["task_probs", task_i.name], ["difficulty_head.p_code"], axis=1,
                             name="difficulty_head/GatherTask"),
            helper.make_node("Sub", ["difficulty_head.code", "difficulty_head.general"], ["difficulty_head.gap"],
                             name="difficulty_head/Sub"),
            helper.make_node("Mul", ["difficulty_head.p_code", "difficulty_head.gap"], ["difficulty_head.shift"],
                             name="difficulty_head/Mul"),
            helper.make_node("Add", ["difficulty_head.general", "difficulty_head.shift"], [DIFFICULTY_OUTPUT],
                             name="difficulty_head/Mix"),
        ])
    graph.output.append(_value_info(DIFFICULTY_OUTPUT, 1))
    onnx.checker.check_model(out)
    return out


def without_difficulty(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` with any difficulty head removed (so a rebuild replaces it)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    keep_nodes = [n for n in graph.node if not n.name.startswith("difficulty_head/")]
    keep_init = [i for i in graph.initializer if not i.name.startswith("difficulty_head.")]
    keep_out = [o for o in graph.output if o.name != DIFFICULTY_OUTPUT]
    del graph.node[:], graph.initializer[:], graph.output[:]
    graph.node.extend(keep_nodes)
    graph.initializer.extend(keep_init)
    graph.output.extend(keep_out)
    return out


def load(path: Path) -> onnx.ModelProto:
    return onnx.load(str(path))


def save(model: onnx.ModelProto, path: Path) -> None:
    onnx.save(model, str(path))
