"""A MiniLM/BERT encoder in plain PyTorch, loaded from a safetensors file, with the
classifier's two heads. Used only to build the ONNX artifact (the train extra, pip install -e ".[train]");
the router itself runs the exported ONNX file and never imports torch."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn


class Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout  # active in training only; the exported (eval) graph has none
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.inter = nn.Linear(hidden, intermediate)
        self.out = nn.Linear(intermediate, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        d = h // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, s, self.heads, d).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + mask_bias
        drop = nn.functional.dropout
        context = (drop(scores.softmax(-1), self.dropout, self.training) @ v).transpose(1, 2).reshape(b, s, h)
        x = self.attn_norm(x + drop(self.attn_out(context), self.dropout, self.training))
        return self.out_norm(x + drop(self.out(nn.functional.gelu(self.inter(x))), self.dropout, self.training))


class PromptClassifier(nn.Module):
    """Encoder, masked mean pooling, a task head (softmax) and a dimensions head (sigmoid)."""

    def __init__(self, config: dict, tasks: int, dimensions: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = dropout
        h, eps = config["hidden_size"], config["layer_norm_eps"]
        self.word = nn.Embedding(config["vocab_size"], h)
        self.position = nn.Embedding(config["max_position_embeddings"], h)
        self.token_type = nn.Embedding(config["type_vocab_size"], h)
        self.emb_norm = nn.LayerNorm(h, eps=eps)
        self.layers = nn.ModuleList(Layer(h, config["num_attention_heads"], config["intermediate_size"], eps, dropout)
                                    for _ in range(config["num_hidden_layers"]))
        self.task_head = nn.Linear(h, tasks)
        self.dims_head = nn.Linear(h, dimensions)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        types = self.token_type(torch.zeros_like(input_ids))
        x = nn.functional.dropout(self.emb_norm(self.word(input_ids) + self.position(positions) + types),
                                  self.dropout, self.training)
        mask = attention_mask.to(x.dtype)
        bias = (1.0 - mask)[:, None, None, :] * -1e4
        for layer in self.layers:
            x = layer(x, bias)
        summed = (x * mask.unsqueeze(-1)).sum(1)
        return summed / mask.sum(1, keepdim=True).clamp(min=1.0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.embed(input_ids, attention_mask)
        return self.task_head(pooled).softmax(-1), torch.sigmoid(self.dims_head(pooled))


def load_encoder(model_dir: Path, tasks: int, dimensions: int, dropout: float = 0.0) -> PromptClassifier:
    """MiniLM weights from a sentence-transformers folder (config.json + model.safetensors)."""
    config = json.loads((model_dir / "config.json").read_text())
    model = PromptClassifier(config, tasks, dimensions, dropout)
    weights = load_file(str(model_dir / "model.safetensors"))
    prefix = "bert." if any(k.startswith("bert.") for k in weights) else ""

    def w(name: str) -> torch.Tensor:
        return weights[prefix + name]

    state = {"word.weight": w("embeddings.word_embeddings.weight"),
             "position.weight": w("embeddings.position_embeddings.weight"),
             "token_type.weight": w("embeddings.token_type_embeddings.weight"),
             "emb_norm.weight": w("embeddings.LayerNorm.weight"), "emb_norm.bias": w("embeddings.LayerNorm.bias")}
    names = {"query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
             "attn_out": "attention.output.dense", "attn_norm": "attention.output.LayerNorm",
             "inter": "intermediate.dense", "out": "output.dense", "out_norm": "output.LayerNorm"}
    for i in range(config["num_hidden_layers"]):
        for ours, theirs in names.items():
            for part in ("weight", "bias"):
                state[f"layers.{i}.{ours}.{part}"] = w(f"encoder.layer.{i}.{theirs}.{part}")
    missing = model.load_state_dict(state, strict=False)
    unexpected_heads = {k for k in missing.missing_keys if not k.startswith(("task_head", "dims_head"))}
    if unexpected_heads:
        raise RuntimeError(f"encoder weights missing for {sorted(unexpected_heads)}")
    return model.eval()
