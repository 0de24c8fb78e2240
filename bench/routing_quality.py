"""Routing quality on RouteLLM's public benchmark data (GPT-4 vs Mixtral): how much of the
strong model's advantage a router recovers for each share of calls it sends to the strong model.
Not a test; prints its figures with the command that produced them.

    python -m bench.routing_quality --data ../shared/data/routing [--sets mt-bench gsm8k mmlu]

A router here is a score per prompt: the prompts it scores highest go to the strong model.
PGR(x) = (quality at strong-call share x - weak quality) / (strong quality - weak quality);
APGR is the area under PGR over x in [0, 1] (trapezoid over every share n/N; a random router
scores 0.5); CPT(p) is the smallest strong-call share whose PGR reaches p (RouteLLM, arXiv
2406.18665, section 5). RouteLLM's own contamination lists are dropped before scoring, as they do.
These files are the test: nothing is trained or tuned on them.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import command_line
from training.evaluate import jsonl_rows

STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
# RouteLLM's best published APGR on MT-Bench (arXiv 2406.18665, as cited in the routing-quality
# issue); the paper's MMLU and GSM8K figures are not restated here.
PUBLISHED_BEST = {"mt-bench": ("RouteLLM best (published)", 0.802)}
RANDOM_DRAWS = 200


@dataclass(frozen=True)
class Item:
    """One prompt with the strong and the weak model's quality on it (0/1, or a judge score)."""

    prompt: str
    strong: float
    weak: float
    context: str = ""


def quality_curve(items: Sequence[Item], scores: Sequence[float]) -> list[float]:
    """Mean quality when the k highest-scored prompts go to the strong model, for k = 0..N."""
    n = len(items)
    order = sorted(range(n), key=lambda i: -scores[i])
    total = sum(it.weak for it in items)
    curve = [total / n]
    for i in order:
        total += items[i].strong - items[i].weak
        curve.append(total / n)
    return curve


def pgr(curve: Sequence[float]) -> list[float]:
    weak, strong = curve[0], curve[-1]
    gap = strong - weak
    return [(q - weak) / gap if gap else 0.0 for q in curve]


def apgr(curve: Sequence[float]) -> float:
    """Area under PGR against the strong-call share (trapezoid over the N + 1 points)."""
    values = pgr(curve)
    n = len(values) - 1
    return sum((values[k] + values[k + 1]) / 2 for k in range(n)) / n


def cpt(curve: Sequence[float], target: float) -> float:
    """The smallest share of strong calls at which PGR reaches `target` (0.5 for CPT(50%))."""
    values = pgr(curve)
    n = len(values) - 1
    return next(k / n for k, v in enumerate(values) if v >= target - 1e-12)


def _contaminated(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {json.loads(line)["eval_prompt"] for _, line in jsonl_rows(path)}


def _bool(text: str) -> float:
    return 1.0 if text.strip().lower() in ("true", "1", "1.0") else 0.0


def load_mmlu(root: Path) -> list[Item]:
    folder = root / "routellm" / "routellm" / "evals" / "mmlu"
    drop = _contaminated(folder / "contaminated_prompts.jsonl")
    items = []
    for path in sorted((folder / "responses").glob("mmlu_*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            items += [Item(row["prompt"], _bool(row[STRONG]), _bool(row[WEAK])) for row in csv.DictReader(f)
                      if row["prompt"] not in drop]
    return items


def load_gsm8k(root: Path) -> list[Item]:
    folder = root / "routellm" / "routellm" / "evals" / "gsm8k"
    drop = _contaminated(folder / "contaminated_prompts.jsonl")
    with (folder / "gsm8k_responses.csv").open(encoding="utf-8", newline="") as f:
        return [Item(row["prompt"], _bool(row[STRONG]), _bool(row[WEAK])) for row in csv.DictReader(f)
                if row["prompt"] not in drop]


def load_mt_bench(root: Path) -> list[Item]:
    """Both turns of each question, judged 1-10; a second turn carries its first as context."""
    folder = root / "routellm" / "routellm" / "evals" / "mt_bench"
    drop = _contaminated(folder / "contaminated_prompts.jsonl")
    questions = {}
    for _, line in jsonl_rows(folder / "question.jsonl"):
        q = json.loads(line)
        questions[q["question_id"]] = q["turns"]
    scores: dict[tuple[int, int, str], float] = {}
    for _, line in jsonl_rows(folder / "judgements.jsonl"):
        j = json.loads(line)
        scores[(j["question_id"], j["turn"], j["model"])] = float(j["score"])
    items = []
    for qid, turns in sorted(questions.items()):
        for turn, text in enumerate(turns, 1):
            if text in drop or (qid, turn, STRONG) not in scores or (qid, turn, WEAK) not in scores:
                continue
            context = f"user: {turns[0]}" if turn == 2 else ""
            items.append(Item(text, scores[(qid, turn, STRONG)], scores[(qid, turn, WEAK)], context))
    return items


LOADERS: dict[str, Callable[[Path], list[Item]]] = {"mt-bench": load_mt_bench, "gsm8k": load_gsm8k,
                                                   "mmlu": load_mmlu}


def complexity_scores(items: Sequence[Item]) -> list[float]:
    """The shipped classifier's complexity (what the seed policy's complexity rule reads)."""
    from router.classifier.text import join_turn_and_context
    from router.config import Settings
    from router.runtime import make_classifier

    classifier, _ = make_classifier(Settings.from_env())
    texts = [join_turn_and_context(it.prompt, it.context) for it in items]
    out: list[float] = []
    for start in range(0, len(texts), 64):
        out += [p.complexity for p in classifier.classify(texts[start:start + 64])]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the routing data folder (../shared/data/routing)")
    parser.add_argument("--sets", nargs="+", choices=list(LOADERS), default=list(LOADERS))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"$ {command_line()}")
    print(f"{'set':<9} {'n':>6} {'router':<34} {'APGR':>6} {'CPT50':>6} {'CPT80':>6}")
    for name in args.sets:
        try:
            items = LOADERS[name](args.data)
        except (OSError, KeyError, ValueError) as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            return 2
        curve = quality_curve(items, complexity_scores(items))
        print(f"{name:<9} {len(items):>6} {'complexity (shipped classifier)':<34} {apgr(curve):>6.3f} "
              f"{cpt(curve, 0.5):>6.1%} {cpt(curve, 0.8):>6.1%}")
        rng = random.Random(args.seed)
        draws = [quality_curve(items, [rng.random() for _ in items]) for _ in range(RANDOM_DRAWS)]
        mean = [sum(c[k] for c in draws) / RANDOM_DRAWS for k in range(len(items) + 1)]
        print(f"{name:<9} {len(items):>6} {f'random (mean of {RANDOM_DRAWS})':<34} "
              f"{sum(apgr(c) for c in draws) / RANDOM_DRAWS:>6.3f} {cpt(mean, 0.5):>6.1%} {cpt(mean, 0.8):>6.1%}")
        if name in PUBLISHED_BEST:
            label, figure = PUBLISHED_BEST[name]
            print(f"{name:<9} {'':>6} {label:<34} {figure:>6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
