"""Classifier latency on an NVIDIA GPU through PyTorch CUDA, measured the way
bench/classifier_latency.py measures the ONNX artifact: a ~100-token prompt end to end
(tokenize and gloss on the CPU, run the network, read back predictions), batch-1 p50/p99
and batch-32 throughput.

    python -m bench.classifier_latency_cuda --encoder <minilm folder> [--artifact DIR] [--n 300]

For hosts where onnxruntime-gpu cannot be installed: the router's own GPU path is ONNX
Runtime's CUDA provider (`bench/classifier_latency.py --providers CUDAExecutionProvider`).
This times the same network (MiniLM-L6 and the two heads, fp32 and fp16) eagerly and as a
captured CUDA graph (batch-1 inputs padded to the artifact's max_length, so one graph
replays for every prompt). Latency does not depend on the weights' values, so the packaged
MiniLM encoder with untrained heads stands in for the fine-tuned network. Needs a CUDA
build of torch (the train extra (pip install -e ".[train]") on a GPU host).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from bench.classifier_latency import PROMPT, PROMPT_JA, measure, print_table
from bench.common import command_line
from router.classifier.artifact import Preprocessor
from router.classifier.prediction import COMPLEXITY_WEIGHTS, TASK_LABELS, Prediction
from training.encoder import PromptClassifier, load_encoder


class TorchCuda:
    """The network on the GPU behind the classifier contract."""

    def __init__(self, model: PromptClassifier, pre: Preprocessor, dtype: torch.dtype, graph: bool) -> None:
        self.model, self.pre = model.to(dtype), pre
        self.graph: torch.cuda.CUDAGraph | None = None
        if graph:
            width = pre.labels.max_length
            self.ids = torch.zeros((1, width), dtype=torch.int64, device="cuda")
            self.mask = torch.zeros((1, width), dtype=torch.int64, device="cuda")
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), torch.no_grad():  # warm-up before capture, as CUDA graphs require
                for _ in range(3):
                    self.model(self.ids, self.mask)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph), torch.no_grad():
                self.out = self.model(self.ids, self.mask)

    def classify(self, texts: list[str]) -> list[Prediction]:
        inputs = self.pre.encode(texts)
        if self.graph is not None and len(texts) == 1:
            n = inputs["input_ids"].shape[1]
            self.ids.zero_()
            self.mask.zero_()
            self.ids[:, :n].copy_(torch.from_numpy(inputs["input_ids"]))
            self.mask[:, :n].copy_(torch.from_numpy(inputs["attention_mask"]))
            self.graph.replay()
            probs, dims = self.out
        else:
            with torch.no_grad():
                probs, dims = self.model(torch.from_numpy(inputs["input_ids"]).cuda(),
                                         torch.from_numpy(inputs["attention_mask"]).cuda())
        return self.pre.predictions(probs.float().cpu().numpy().astype(np.float32),
                                    dims.float().cpu().numpy().astype(np.float32), "torch-cuda")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", type=Path, required=True, help="MiniLM folder (config.json, model.safetensors)")
    parser.add_argument("--artifact", type=Path, default=Path("models/prompt-classifier-preview"),
                        help="artifact whose tokenizer, glossary and max_length are used")
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("error: this torch build sees no CUDA device; on a CPU host use bench/classifier_latency.py",
              file=sys.stderr)
        return 2
    pre = Preprocessor(args.artifact)
    model = load_encoder(args.encoder, len(TASK_LABELS), len(COMPLEXITY_WEIGHTS)).cuda().eval()
    rows = []
    for label, dtype, graph in (("fp32 eager", torch.float32, False), ("fp16 eager", torch.float16, False),
                                ("fp32 CUDA graph", torch.float32, True), ("fp16 CUDA graph", torch.float16, True)):
        classifier = TorchCuda(model, pre, dtype, graph)
        rows.append((label, *measure(classifier, args.n)))
        if pre.glossary is not None:
            rows.append((f"{label}, Japanese prompt (glossed)", *measure(classifier, args.n, PROMPT_JA)))
    print(f"$ {command_line()}")
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    print_table("network on the GPU (PyTorch CUDA)", len(pre.tokenizer.encode(PROMPT).ids), args.n, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
