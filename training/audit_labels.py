"""List labeled prompts whose label an out-of-fold model disputes, for a person to re-read.

    python training/audit_labels.py --data labeled.jsonl --encoder DIR [--glossary G] [--top 150] > suspects.txt

The frozen encoder embeds every prompt once (mean pooling); a k-fold logistic regression on
the embeddings gives each prompt a probability for its label from a model that never saw it.
Prompts whose label gets a low probability while another label gets a high one are printed,
least likely first, with their ShareGPT id and turn so that training/labels/sharegpt.tsv can
be corrected by hand. The tool only points: nothing is relabeled without being read.
Needs requirements-train.txt.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router.classifier.artifact import input_text, load_tokenizer
from router.classifier.encoder import load_encoder
from router.classifier.evaluate import jsonl_rows
from router.classifier.glossary import Glossary
from router.classifier.prediction import COMPLEXITY_WEIGHTS, TASK_LABELS
from router.classifier.text import join_turn_and_context


def embed(encoder_dir: Path, texts: list[str], batch: int = 64) -> torch.Tensor:
    model = load_encoder(encoder_dir, len(TASK_LABELS), len(COMPLEXITY_WEIGHTS))
    tokenizer = load_tokenizer(encoder_dir, 128)
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            enc = tokenizer.encode_batch(texts[start:start + batch])
            ids = torch.tensor([e.ids for e in enc])
            mask = torch.tensor([e.attention_mask for e in enc])
            out.append(torch.nn.functional.normalize(model.embed(ids, mask), dim=-1))
            print(f"embedded {min(start + batch, len(texts))}/{len(texts)}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    return torch.cat(out)


def fit_softmax(x: torch.Tensor, y: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An L2-regularised softmax regression on unit-length embeddings (scaled by 10)."""
    w = torch.zeros(x.shape[1], len(TASK_LABELS), requires_grad=True)
    b = torch.zeros(len(TASK_LABELS), requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(x @ w * 10 + b, y) + 1e-3 * (w ** 2).sum()
        value.backward()
        return value

    optimizer.step(loss)
    return w.detach(), b.detach()


def out_of_fold(x: torch.Tensor, y: torch.Tensor, folds: int, seed: int, steps: int = 300) -> torch.Tensor:
    """Each row's class probabilities from a softmax regression trained on the other folds."""
    generator = torch.Generator().manual_seed(seed)
    fold_of = torch.randperm(len(y), generator=generator) % folds
    probs = torch.zeros(len(y), len(TASK_LABELS))
    for k in range(folds):
        w, b = fit_softmax(x[fold_of != k], y[fold_of != k], steps)
        probs[fold_of == k] = (x[fold_of == k] @ w * 10 + b).softmax(-1)
    return probs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--encoder", type=Path, required=True)
    parser.add_argument("--glossary", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--top", type=int, default=150)
    args = parser.parse_args()
    rows = [json.loads(line) for _, line in jsonl_rows(args.data)]
    glossary = Glossary.load(args.glossary) if args.glossary else None
    texts = [input_text(join_turn_and_context(r["prompt"], r.get("context") or ""), glossary) for r in rows]
    y = torch.tensor([TASK_LABELS.index(r["task"]) for r in rows])
    probs = out_of_fold(embed(args.encoder, texts), y, args.folds, args.seed)
    agree = (probs.argmax(-1) == y).float().mean().item()
    print(f"# out-of-fold agreement with the labels: {agree:.3f} over {len(rows)} prompts")
    own = probs[torch.arange(len(y)), y]
    order = sorted(range(len(rows)), key=lambda i: (own[i] - probs[i].max()).item())
    for i in order[:args.top]:
        r = rows[i]
        best = TASK_LABELS[int(probs[i].argmax())]
        if best == r["task"]:
            break
        where = f"{r.get('id', '')} {r.get('turn', '')}".strip() or r.get("source", "")
        snippet = r["prompt"] if len(r["prompt"]) <= 300 else r["prompt"][:200] + " … " + r["prompt"][-100:]
        context = (r.get("context") or "")[-100:]
        print(f"{where}\t{r['task']} ({own[i]:.2f}) -> {best} ({probs[i].max():.2f})"
              + (f"\n    [previous: …{context}]".replace("\n", " ") if context else "")
              + "\n    " + snippet.replace("\n", " ⏎ "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
