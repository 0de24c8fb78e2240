"""How the classifier reads follow-up turns: training/labels/followups_dev.tsv (written by the
maintainers, never trained on), each turn classified with its earlier turns as context, the way
the API builds it, and alone; accuracy per language and every miss.

    python -m bench.followups [--artifact models/prompt-classifier] [--file training/labels/followups_dev.tsv]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from bench.common import command_line
from router.classifier.onnx import OnnxClassifier
from router.classifier.text import join_turn_and_context
from training.dataset import read_label_rows

DEV_FILE = Path(__file__).resolve().parent.parent / "training" / "labels" / "followups_dev.tsv"


def language(text: str) -> str:
    return "ja" if any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in text) else "en"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, default=Path("models/prompt-classifier"))
    parser.add_argument("--file", type=Path, default=DEV_FILE)
    args = parser.parse_args()
    rows = read_label_rows(args.file)
    classifier = OnnxClassifier(args.artifact)
    right: Counter[str] = Counter()
    alone_right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    print(f"$ {command_line()}")
    for row in rows:
        context = row["context"].replace("\\n", "\n")
        # One prompt per call: the same text always gets the same prediction.
        with_context = classifier.classify([join_turn_and_context(row["prompt"], context)])[0]
        alone = classifier.classify([row["prompt"]])[0]
        lang = language(row["prompt"])
        total[lang] += 1
        right[lang] += with_context.task == row["task"]
        alone_right[lang] += alone.task == row["task"]
        if with_context.task != row["task"]:
            print(f"miss  {row['task']:15} read {with_context.task:15} {with_context.confidence:.2f}  "
                  f"(alone: {alone.task})  {row['prompt'][:60]}")
    print(f"{'language':8} {'turns':>5} {'with context':>12} {'alone':>6}")
    for lang in sorted(total):
        print(f"{lang:8} {total[lang]:5} {right[lang] / total[lang]:12.3f} {alone_right[lang] / total[lang]:6.3f}")
    n = sum(total.values())
    print(f"{'all':8} {n:5} {sum(right.values()) / n:12.3f} {sum(alone_right.values()) / n:6.3f}")


if __name__ == "__main__":
    main()
