"""List labeled prompts whose label an out-of-fold model disputes, for a person to re-read.

    python -m training.audit_labels --data labeled.jsonl --encoder DIR [--glossary G] [--top 150] > suspects.txt

The frozen encoder embeds every prompt once (mean pooling); a k-fold logistic regression on
the embeddings gives each prompt a probability for its label from a model that never saw it.
Prompts whose label gets a low probability while another label gets a high one are printed,
least likely first, with their ShareGPT id and turn so that training/labels/sharegpt.tsv can
be corrected by hand. The tool only points: nothing is relabeled without being read.
Needs the train extra (pip install -e ".[train]").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from router.classifier.artifact import input_text, load_tokenizer
from router.classifier.glossary import Glossary
from router.classifier.prediction import COMPLEXITY_WEIGHTS, TASK_LABELS
from router.classifier.text import join_turn_and_context
from training.evaluate import jsonl_rows
from training.label_turns import preview


def embed(encoder_dir: Path, texts: list[str], batch: int = 64) -> np.ndarray:
    import torch  # training dependencies; the fold fitting below runs on numpy alone

    from training.encoder import load_encoder

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
    return torch.cat(out).numpy() * 10  # unit vectors scaled so that a linear model can be confident


def fit_softmax(x: np.ndarray, y: np.ndarray, classes: int, steps: int = 300, l2: float = 1e-3,
                lr: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """An L2-regularised softmax regression, full-batch gradient descent (small data, no extra deps)."""
    w = np.zeros((x.shape[1], classes))
    b = np.zeros(classes)
    onehot = np.eye(classes)[y]
    for _ in range(steps):
        grad = softmax(x @ w + b) - onehot
        w -= lr * (x.T @ grad / len(y) + l2 * w)
        b -= lr * grad.mean(0)
    return w, b


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def out_of_fold(x: np.ndarray, y: np.ndarray, classes: int, folds: int = 5, seed: int = 7) -> np.ndarray:
    """Each row's class probabilities from a softmax regression fitted on the other folds only."""
    fold_of = np.random.default_rng(seed).permutation(len(y)) % folds
    probs = np.zeros((len(y), classes))
    for k in range(folds):
        w, b = fit_softmax(x[fold_of != k], y[fold_of != k], classes)
        probs[fold_of == k] = softmax(x[fold_of == k] @ w + b)
    return probs


def suspects(probs: np.ndarray, y: np.ndarray) -> list[int]:
    """Rows whose label another class outscores, the widest margin first."""
    own = probs[np.arange(len(y)), y]
    margin = probs.max(1) - own
    return [int(i) for i in np.argsort(-margin, kind="stable") if margin[i] > 0]


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
    y = np.array([TASK_LABELS.index(r["task"]) for r in rows])
    probs = out_of_fold(embed(args.encoder, texts), y, len(TASK_LABELS), args.folds, args.seed)
    print(f"# out-of-fold agreement with the labels: {(probs.argmax(1) == y).mean():.3f} over {len(rows)} prompts")
    for i in suspects(probs, y)[:args.top]:
        r = rows[i]
        best = TASK_LABELS[int(probs[i].argmax())]
        where = f"{r.get('id', '')} {r.get('turn', '')}".strip() or r.get("source", "")
        print(f"{where}\t{r['task']} ({probs[i, y[i]]:.2f}) -> {best} ({probs[i].max():.2f})"
              + preview(r["prompt"], r.get("context") or ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
