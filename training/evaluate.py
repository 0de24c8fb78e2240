"""Classifier quality on a labeled set: accuracy, macro-F1, a per-label confusion matrix,
the Japanese prompts on their own, and tier agreement (the share of prompts whose predicted
task routes to the same tier as the true task would, under a policy).

    python -m training.evaluate --data labeled.jsonl [--backend keyword|onnx] [--model DIR]

Each JSONL line: {"prompt": "...", "task": "<one of the 11 labels>"}, optionally "context"
(earlier turns, as the engine passes them). The console's reviewed-decision export
(prompt, correct_task) is accepted too.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from router.classifier.int8_kernels import INT8_MODES
from router.classifier.prediction import TASK_LABELS, Classifier, Prediction
from router.classifier.text import join_turn_and_context
from router.policy import Policy, decide
from training.dataset import RANKED_SELECTION

JAPANESE = re.compile(r"[\u3040-\u30ff]")  # kana: Japanese, not other CJK text


@dataclass(frozen=True)
class Example:
    prompt: str
    task: str
    context: str = ""
    # Drawn for being ranked likely by an earlier model: such prompts train and are never held
    # out, so the held-out prompts stay drawn without any model's help.
    train_only: bool = False

    @property
    def japanese(self) -> bool:
        return bool(JAPANESE.search(self.prompt))


# The seed policy's own examples of what the classifier must get right: a conversation that
# asks for code, then an explanation, then a shorter version of that explanation.
SEED_CONTEXT = "user: このアルゴリズムの計算量を説明して\nassistant: 平均 O(n log n)、最悪 O(n^2) です。"
SEED_EXAMPLES = (Example("Pythonでソートアルゴリズムを実装して", "Code Generation"),
                 Example("このアルゴリズムの計算量を説明して", "Open QA"),
                 Example("もっと簡潔にまとめて", "Rewrite", context=SEED_CONTEXT))


@dataclass(frozen=True)
class SeedRouting:
    example: Example
    predicted: str
    tier: str
    expected_tier: str

    @property
    def routed_right(self) -> bool:
        return self.tier == self.expected_tier


@dataclass
class Scores:
    n: int = 0
    accuracy: float = 0.0
    macro_f1: float = 0.0
    per_label: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion: dict[str, Counter[str]] = field(default_factory=dict)  # true -> predicted -> count


@dataclass
class Report:
    overall: Scores
    japanese: Scores
    tier_agreement: float | None
    english: Scores = field(default_factory=Scores)  # every prompt without kana


ALWAYS_TRAINED_COPIES = 4


def split(examples: list[Example], held_out: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Stratified by task: every label keeps the same share in the held-out part.

    Copies of one prompt ("continue", a pasted instruction asked again) stay on one side, so
    the held-out part never scores a prompt that training has seen. A prompt asked in
    ALWAYS_TRAINED_COPIES conversations or more always trains: held out, one such group
    ("continue" comes 40-odd times) would swing the scores and leave training without it.
    Train-only examples join training unless a held-out prompt is a copy of theirs; they
    leave the split of the others as it would be without them.
    """
    rng = random.Random(seed)
    copies: dict[str, list[Example]] = {}
    for e in examples:
        if not e.train_only:
            copies.setdefault(normalized(e.prompt), []).append(e)
    by_task: dict[str, list[list[Example]]] = {}
    train: list[Example] = []
    test: list[Example] = []
    for group in copies.values():
        if len(group) >= ALWAYS_TRAINED_COPIES:
            train += group
        else:
            by_task.setdefault(group[0].task, []).append(group)
    for groups in by_task.values():
        rng.shuffle(groups)
        cut = max(1, round(len(groups) * held_out)) if len(groups) > 1 else 0
        test += [e for group in groups[:cut] for e in group]
        train += [e for group in groups[cut:] for e in group]
    held_out_prompts = {normalized(e.prompt) for e in test}
    train += [e for e in examples if e.train_only and normalized(e.prompt) not in held_out_prompts]
    return train, test


def normalized(prompt: str) -> str:
    """A prompt as copies of it compare: case and spacing aside."""
    return " ".join(prompt.split()).lower()


def jsonl_rows(path: Path) -> list[tuple[int, str]]:
    """(line number, line) for each non-blank line of a JSONL file.

    Lines end at "\n" only: prompts may hold U+2028 and other characters that str.splitlines
    treats as line ends, and JSON writers leave them unescaped.
    """
    lines = path.read_text(encoding="utf-8").split("\n")
    return [(number, line) for number, line in enumerate(lines, 1) if line.strip()]


def load_rows(path: Path) -> list[tuple[dict[str, Any], Example]]:
    """Each line of a labeled JSONL file (jsonl_rows) as its JSON row (source, license, ids)
    and as an Example, read once; errors name the line."""
    rows = []
    for number, line in jsonl_rows(path):
        try:
            row = json.loads(line)
            prompt = row["prompt"]
            task = row.get("task") or row["correct_task"]
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise ValueError(f"{path}:{number}: expected a JSON object with prompt and task") from None
        if task not in TASK_LABELS:
            raise ValueError(f"{path}:{number}: unknown task {task!r}; expected one of {list(TASK_LABELS)}")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{path}:{number}: prompt must be a non-empty string")
        rows.append((row, example(row)))
    if not rows:
        raise ValueError(f"{path}: no examples")
    return rows


def example(row: Mapping[str, Any]) -> Example:
    """A labeled row ({"prompt", "task" or "correct_task", "context", "selection"}) as an Example;
    rows drawn by a model's ranking are train-only."""
    return Example(row["prompt"], row.get("task") or row["correct_task"], row.get("context") or "",
                   train_only=row.get("selection") == RANKED_SELECTION or row.get("train_only") is True)


def load_examples(path: Path) -> list[Example]:
    """The Examples of a labeled JSONL file (load_rows)."""
    return [e for _, e in load_rows(path)]


def score(truth: Sequence[str], predicted: Sequence[str]) -> Scores:
    if not truth:
        return Scores()
    confusion: dict[str, Counter[str]] = {}
    for t, p in zip(truth, predicted, strict=True):
        confusion.setdefault(t, Counter())[p] += 1
    per_label = {}
    for label in sorted(set(truth)):  # macro-F1 over the labels the set contains
        tp = confusion.get(label, Counter())[label]
        fp = sum(c[label] for t, c in confusion.items() if t != label)
        fn = sum(confusion.get(label, Counter()).values()) - tp
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    accuracy = sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)
    macro = sum(v["f1"] for v in per_label.values()) / len(per_label)
    return Scores(len(truth), accuracy, macro, per_label, confusion)


def as_truth(prediction: Prediction, task: str) -> Prediction:
    """The prediction with the true task, certain of it; complexity stays as predicted."""
    return replace(prediction, task=task, probabilities={label: float(label == task) for label in TASK_LABELS})


def tier_agreement(examples: Sequence[Example], predictions: Sequence[Prediction], policy: Policy) -> float:
    """Same complexity, true task vs predicted task: do both route to the same tier?"""
    same = 0
    for example, prediction in zip(examples, predictions, strict=True):
        same += decide(prediction, policy).tier == decide(as_truth(prediction, example.task), policy).tier
    return same / len(examples)


def seed_routing(classifier: Classifier, policy: Policy,
                 examples: Sequence[Example] = SEED_EXAMPLES) -> list[SeedRouting]:
    """Each example's predicted task and tier against the tier its true task routes to."""
    predictions = classifier.classify([join_turn_and_context(e.prompt, e.context) for e in examples])
    out = []
    for example, prediction in zip(examples, predictions, strict=True):
        out.append(SeedRouting(example, prediction.task, decide(prediction, policy).tier,
                               decide(as_truth(prediction, example.task), policy).tier))
    return out


def format_seed_routing(rows: Sequence[SeedRouting]) -> str:
    lines = [f"seed examples: {sum(r.routed_right for r in rows)}/{len(rows)} routed right, "
             f"{sum(r.predicted == r.example.task for r in rows)}/{len(rows)} labeled right"]
    for r in rows:
        mark = "ok" if r.routed_right else "MISROUTED"
        after = " (after an answer)" if r.example.context else ""
        lines.append(f"  {r.example.prompt}{after}: {r.predicted} -> {r.tier} "
                     f"(expected {r.example.task} -> {r.expected_tier}) {mark}")
    return "\n".join(lines)


def evaluate(classifier: Classifier, examples: Sequence[Example], policy: Policy | None = None,
             batch: int = 32) -> Report:
    texts = [join_turn_and_context(e.prompt, e.context) for e in examples]
    predictions: list[Prediction] = []
    for start in range(0, len(texts), batch):
        predictions += classifier.classify(texts[start:start + batch])
    truth = [e.task for e in examples]
    predicted = [p.task for p in predictions]
    ja = [i for i, e in enumerate(examples) if e.japanese]
    en = [i for i, e in enumerate(examples) if not e.japanese]
    return Report(score(truth, predicted), score([truth[i] for i in ja], [predicted[i] for i in ja]),
                  tier_agreement(examples, predictions, policy) if policy else None,
                  score([truth[i] for i in en], [predicted[i] for i in en]))


def format_report(report: Report) -> str:
    lines = []
    for name, s in (("all", report.overall), ("japanese", report.japanese), ("english", report.english)):
        if s.n or name == "all":
            lines.append(f"{name}: n={s.n} accuracy={s.accuracy:.3f} macro-F1={s.macro_f1:.3f}")
    if report.tier_agreement is not None:
        lines.append(f"tier agreement: {report.tier_agreement:.3f}")
    lines.append(f"{'label':<16} {'prec':>6} {'recall':>6} {'f1':>6} {'n':>5}")
    for label, v in report.overall.per_label.items():
        lines.append(f"{label:<16} {v['precision']:>6.3f} {v['recall']:>6.3f} {v['f1']:>6.3f} {v['support']:>5}")
    lines.append("confusion (true -> predicted: count)")
    for true, row in report.overall.confusion.items():
        lines.append(f"  {true}: " + ", ".join(f"{p} {n}" for p, n in row.most_common()))
    return "\n".join(lines)


# The quality targets every build is checked against; its card marks each met or MISSED.
TARGET_MACRO_F1 = 0.85
TARGET_TIER_AGREEMENT = 0.93


def target_checks(report: Report, seeds: Sequence[SeedRouting]) -> list[tuple[str, bool]]:
    """Each quality target with whether this report meets it."""
    tier = report.tier_agreement or 0.0
    routed = sum(r.routed_right for r in seeds)
    return [(f"held-out macro-F1 {report.overall.macro_f1:.3f} >= {TARGET_MACRO_F1}",
             report.overall.macro_f1 >= TARGET_MACRO_F1),
            (f"tier agreement {tier:.3f} >= {TARGET_TIER_AGREEMENT}", tier >= TARGET_TIER_AGREEMENT),
            (f"seed examples routed right {routed}/{len(seeds)}", routed == len(seeds))]


def format_targets(checks: Sequence[tuple[str, bool]]) -> str:
    return "\n".join(f"{'met' if ok else 'MISSED'}: {text}" for text, ok in checks)


def as_json(report: Report) -> dict[str, Any]:
    def plain(s: Scores) -> Mapping[str, Any]:
        return {"n": s.n, "accuracy": s.accuracy, "macro_f1": s.macro_f1, "per_label": s.per_label,
                "confusion": {k: dict(v) for k, v in s.confusion.items()}}

    return {"all": plain(report.overall), "japanese": plain(report.japanese), "english": plain(report.english),
            "tier_agreement": report.tier_agreement}


def main(argv: Iterable[str] | None = None) -> int:
    from router.classifier import KeywordClassifier
    from router.config import DEFAULT_CONFIG, DEFAULT_MODEL, load_seed

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="a labeled JSONL file")
    source.add_argument("--suite", type=Path, metavar="DATA_DIR",
                        help="score every public set of training/benchmarks.py found under DATA_DIR "
                             "(../shared/data): the dolly-15k-ja test split, MT-Bench and Vicuna in English and "
                             "Japanese, MBPP")
    parser.add_argument("--backend", choices=["keyword", "onnx"], default="keyword")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--int8", choices=INT8_MODES, default="auto",
                        help="int8 products: exact (unsigned weights), native (as shipped) or auto (exact where "
                             "this CPU's signed kernel saturates; router/classifier/int8_kernels.py)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--held-out", type=float, help="score only the held-out part of the data, split as "
                        "training.train splits it (e.g. 0.2)")
    parser.add_argument("--split-seed", type=int, default=13)
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        if args.suite:
            from training.benchmarks import suite

            sets = suite(args.suite)
        else:
            examples = load_examples(args.data)
            if args.held_out:
                examples = split(examples, args.held_out, args.split_seed)[1]
            sets = {str(args.data): examples}
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.backend == "onnx":
        from router.classifier.onnx import OnnxClassifier

        classifier: Classifier = OnnxClassifier(args.model, int8=args.int8)
    else:
        classifier = KeywordClassifier()
    seed = load_seed(DEFAULT_CONFIG)
    reports = {name: evaluate(classifier, examples, seed.policies[seed.default_policy])
               for name, examples in sets.items()}
    if args.json:
        print(json.dumps({name: as_json(r) for name, r in reports.items()} if args.suite
                         else as_json(next(iter(reports.values()))), indent=2))
    elif args.suite:
        print(f"{'set':<20} {'n':>5} {'accuracy':>9} {'macro-F1':>9} {'tier agr.':>9}")
        for name, r in reports.items():
            print(f"{name:<20} {r.overall.n:>5} {r.overall.accuracy:>9.3f} {r.overall.macro_f1:>9.3f} "
                  f"{r.tier_agreement or 0:>9.3f}")
    else:
        print(format_report(next(iter(reports.values()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
