"""A tiny classifier artifact made for tests: a word-level tokenizer and an ONNX graph
(embedding, masked mean, two linear heads) whose weights map a few cue words to task
labels and dimensions. It exercises the real loading, tokenizing, batching and serving
code; it is not a trained model and is never shipped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from router.classifier.prediction import COMPLEXITY_WEIGHTS, TASK_LABELS

CUES = {"python": "Code Generation", "function": "Code Generation", "summarize": "Summarization",
        "rewrite": "Rewrite", "poem": "Text Generation", "hello": "Chatbot", "what": "Open QA",
        "extract": "Extraction", "classify": "Classification", "ideas": "Brainstorming", "実装": "Code Generation"}
HARD = {"prove": "reasoning", "story": "creativity"}


# The tiny difficulty head reads the pooled "reasoning" slot: prompts with "prove" come out hard.
DIFFICULTY_BIAS = -2.0
DIFFICULTY_LENGTH_WEIGHT = 0.25


def difficulty_weight() -> np.ndarray:
    dims = list(COMPLEXITY_WEIGHTS)
    weight = np.zeros(len(TASK_LABELS) + len(dims), dtype=np.float32)
    weight[len(TASK_LABELS) + dims.index("reasoning")] = 1.0
    return weight


def build(folder: Path, max_length: int = 32, *, difficulty: bool = False, mixer: bool = False) -> Path:
    """With `mixer`, the token vectors go through one constant matrix product before pooling,
    as a real encoder's layers do (what static quantization quantizes)."""
    folder.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", *CUES, *HARD, "the", "a", "list", "me", "write", "please"]
    vocab = {w: i for i, w in enumerate(words)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))

    dims = list(COMPLEXITY_WEIGHTS)
    hidden = len(TASK_LABELS) + len(dims)
    emb = np.zeros((len(words), hidden), dtype=np.float32)
    emb[vocab["[UNK]"], TASK_LABELS.index("Other")] = 0.5
    for word, task in CUES.items():
        emb[vocab[word], TASK_LABELS.index(task)] = 4.0
    for word, dim in HARD.items():
        emb[vocab[word], len(TASK_LABELS) + dims.index(dim)] = 8.0
    w_task = np.zeros((hidden, len(TASK_LABELS)), dtype=np.float32)
    w_task[: len(TASK_LABELS)] = np.eye(len(TASK_LABELS)) * 3
    w_dims = np.zeros((hidden, len(dims)), dtype=np.float32)
    w_dims[len(TASK_LABELS):] = np.eye(len(dims))
    b_dims = np.full(len(dims), -2.0, dtype=np.float32)

    inits = [numpy_helper.from_array(a, n) for a, n in (
        (emb, "emb"), (w_task, "w_task"), (np.zeros(len(TASK_LABELS), np.float32), "b_task"),
        (w_dims, "w_dims"), (b_dims, "b_dims"), (np.array([1], np.int64), "seq_axis"),
        (np.array([2], np.int64), "last_axis"), (np.array(1.0, np.float32), "one"))]
    if mixer:  # near the identity, so the cue words keep their labels
        rng = np.random.default_rng(0)
        mix = (np.eye(hidden) + rng.normal(0, 0.05, (hidden, hidden))).astype(np.float32)
        inits.append(numpy_helper.from_array(mix, "w_mix"))
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["tok_raw" if mixer else "tok"], name="embed"),
        *([helper.make_node("MatMul", ["tok_raw", "w_mix"], ["tok"], name="mixer")] if mixer else []),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "last_axis"], ["mask3"]),
        helper.make_node("Mul", ["tok", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "seq_axis"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "seq_axis"], ["count"], keepdims=0),
        helper.make_node("Max", ["count", "one"], ["count1"]),
        helper.make_node("Div", ["summed", "count1"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "w_task"], ["task_mm"]),
        helper.make_node("Add", ["task_mm", "b_task"], ["task_logits"]),
        helper.make_node("Softmax", ["task_logits"], ["task_probs"], axis=-1),
        helper.make_node("MatMul", ["pooled", "w_dims"], ["dims_mm"]),
        helper.make_node("Add", ["dims_mm", "b_dims"], ["dims_logits"]),
        helper.make_node("Sigmoid", ["dims_logits"], ["dimensions"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_prompt_classifier",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("task_probs", TensorProto.FLOAT, ["batch", len(TASK_LABELS)]),
         helper.make_tensor_value_info("dimensions", TensorProto.FLOAT, ["batch", len(dims)])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    if difficulty:
        from training.difficulty_graph import attach_difficulty

        model = attach_difficulty(model, difficulty_weight(), DIFFICULTY_BIAS, DIFFICULTY_LENGTH_WEIGHT)
    onnx.save(model, str(folder / "model.onnx"))
    labels = {"tasks": list(TASK_LABELS), "dimensions": dims, "max_length": max_length}
    (folder / "labels.json").write_text(json.dumps(labels | ({"difficulty": True} if difficulty else {})))
    return folder
