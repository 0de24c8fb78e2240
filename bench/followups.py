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
from router.classifier.int8_kernels import INT8_MODES
from router.classifier.onnx import OnnxClassifier
from router.classifier.text import join_turn_and_context
from training.dataset import LABELS_DIR, read_written_rows
from training.evaluate import Example


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, default=Path("models/prompt-classifier"))
    parser.add_argument("--file", type=Path, default=LABELS_DIR / "followups_dev.tsv")
    parser.add_argument("--int8", choices=INT8_MODES, default="auto",
                        help="int8 products (router/classifier/int8_kernels.py); auto: exact where this CPU needs it")
    args = parser.parse_args()
    examples = [Example(row["prompt"], row["task"], row["context"]) for row in read_written_rows(args.file)]
    classifier = OnnxClassifier(args.artifact, int8=args.int8)
    with_context = classifier.classify([join_turn_and_context(e.prompt, e.context) for e in examples])
    alone = classifier.classify([e.prompt for e in examples])
    right: Counter[str] = Counter()
    alone_right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    print(f"$ {command_line()}")
    for e, read, read_alone in zip(examples, with_context, alone, strict=True):
        lang = "ja" if e.japanese else "en"
        total[lang] += 1
        right[lang] += read.task == e.task
        alone_right[lang] += read_alone.task == e.task
        if read.task != e.task:
            print(f"miss  {e.task:15} read {read.task:15} {read.confidence:.2f}  "
                  f"(alone: {read_alone.task})  {e.prompt[:60]}")
    print(f"{'language':8} {'turns':>5} {'with context':>12} {'alone':>6}")
    for lang in sorted(total):
        print(f"{lang:8} {total[lang]:5} {right[lang] / total[lang]:12.3f} {alone_right[lang] / total[lang]:6.3f}")
    n = sum(total.values())
    print(f"{'all':8} {n:5} {sum(right.values()) / n:12.3f} {sum(alone_right.values()) / n:6.3f}")


if __name__ == "__main__":
    main()
