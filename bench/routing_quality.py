"""Routing quality on RouteLLM's public benchmark data (GPT-4 vs Mixtral): how much of the
strong model's advantage a router recovers for each share of calls it sends to the strong model.
Not a test; prints its figures with the command that produced them.

    python -m bench.routing_quality --data ../shared/data/routing [--sets mt-bench gsm8k mmlu routerbench]

A router here is a score per prompt: the prompts it scores highest go to the strong model.
PGR(x) = (quality at strong-call share x - weak quality) / (strong quality - weak quality);
APGR is the area under PGR over x in [0, 1] (trapezoid over every share n/N; a random router
scores 0.5); CPT(p) is the smallest strong-call share whose PGR reaches p (RouteLLM, arXiv
2406.18665, section 5). RouteLLM's own contamination lists are dropped before scoring, as they do.
These files are the test: nothing is trained or tuned on them.

On RouterBench's test files (ARC-Challenge, MBPP, WinoGrande; a 0/1 outcome and a USD cost per
prompt for 11 models) the seed policy runs with its three tiers played by three RouterBench
models (ROUTERBENCH_TIERS says which and why); quality kept is its mean score over GPT-4's, cost
saved one minus its cost over GPT-4's, beside single models, the per-prompt oracles and a
difficulty threshold between the small and the strong model swept over its range.
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
from bench.routing_curve import CURVE_FILE, Point, write, write_png
from router.classifier.prediction import Prediction
from training.evaluate import jsonl_rows
from training.outcomes import ROUTERBENCH_STRONG, ROUTERBENCH_TEST, STAND_INS, RouterBenchRow, routerbench_rows

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

# The seed tiers played by RouterBench models, by their quality class (training/outcomes.py
# STAND_INS): Llama 3 8B by Mistral-7B (the 7-8B class), Llama 3 70B by Llama-2-70B (same family
# and size, one generation older), and the reasoning tier (Nemotron Super 49B, the seed's
# strongest) by GPT-4, RouterBench's strongest.
ROUTERBENCH_TIERS = {"llama-3-8b": STAND_INS["small"], "llama-3-70b": STAND_INS["medium"],
                     "nemotron-super-49b": STAND_INS["large"]}
SWEEP = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
TOLERANCES = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)


@dataclass(frozen=True)
class Kept:
    """A router's quality and cost on RouterBench, as shares of always using GPT-4."""

    quality: float
    saved: float


def kept(rows: Sequence[RouterBenchRow], picks: Sequence[str]) -> Kept:
    score = sum(r.scores[m] for r, m in zip(rows, picks, strict=True))
    cost = sum(r.costs[m] for r, m in zip(rows, picks, strict=True))
    strong_score = sum(r.scores[ROUTERBENCH_STRONG] for r in rows)
    strong_cost = sum(r.costs[ROUTERBENCH_STRONG] for r in rows)
    return Kept(score / strong_score if strong_score else 0.0, 1 - cost / strong_cost if strong_cost else 0.0)


def oracle(row: RouterBenchRow, models: Sequence[str]) -> str:
    """The cheapest model that got it right, else the cheapest."""
    right = [m for m in models if row.scores[m] > 0]
    return min(right or models, key=lambda m: row.costs[m])


def shipped_predictions(texts: Sequence[str]) -> list[Prediction]:
    """The shipped classifier's predictions, in batches as the server's batcher would see them."""
    from router.config import Settings
    from router.runtime import make_classifier

    classifier, _ = make_classifier(Settings.from_env())
    out: list[Prediction] = []
    for start in range(0, len(texts), 64):
        out += classifier.classify(texts[start:start + 64])
    return out


def routerbench_report(root: Path) -> list[Point]:
    from router.config import DEFAULT_CONFIG, load_seed
    from router.policy import decide, parse_policy

    rows = routerbench_rows(root, ROUTERBENCH_TEST)
    seed = load_seed(DEFAULT_CONFIG)
    policy = seed.policies[seed.default_policy]
    predictions = shipped_predictions([r.text for r in rows])
    models = sorted(rows[0].scores)
    tiers = list(ROUTERBENCH_TIERS.values())
    small, strong = ROUTERBENCH_TIERS["llama-3-8b"], ROUTERBENCH_STRONG
    def point(label: str, group: str, picks: Sequence[str]) -> Point:
        value = kept(rows, picks)
        return Point(label, group, value.quality, value.saved)

    out = [point(f"seed policy {policy.name} (tiers as mapped)", "seed policy",
                 [ROUTERBENCH_TIERS[decide(p, policy).tier] for p in predictions])]
    tolerant = seed.policies["quality-tolerance"].to_document()
    for t in TOLERANCES:
        tolerant["rules"] = [{"name": "within", "tolerance": t}]
        policy_t = parse_policy(tolerant)
        out.append(point(f"tolerance rule, tolerance {t:.2f}", "tolerance rule",
                         [ROUTERBENCH_TIERS[decide(p, policy_t).tier] for p in predictions]))
    for t in SWEEP:
        out.append(point(f"difficulty >= {t:.2f} to GPT-4, else Mistral-7B", "difficulty threshold",
                         [strong if p.difficulty >= t else small for p in predictions]))
    best = max(models, key=lambda m: sum(r.scores[m] for r in rows))
    for name, model in (("always GPT-4 (strong)", strong), ("always Llama-2-70B (70B tier)", tiers[1]),
                        ("always Mistral-7B (small)", small), (f"best single model: {best}", best)):
        out.append(point(name, "reference", [model] * len(rows)))
    out.append(point("oracle over the three tier models", "reference", [oracle(r, tiers) for r in rows]))
    out.append(point("oracle over all 11 models", "reference", [oracle(r, models) for r in rows]))
    return out


def classifier_scores(items: Sequence[Item]) -> dict[str, list[float]]:
    """The shipped classifier's difficulty (what the seed policy's rules read) and its complexity
    (what they read before), from one pass over the prompts as the server classifies them."""
    from router.classifier.text import join_turn_and_context

    predictions = shipped_predictions([join_turn_and_context(it.prompt, it.context) for it in items])
    return {"difficulty (shipped classifier)": [p.difficulty for p in predictions],
            "complexity (shipped classifier)": [p.complexity for p in predictions]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the routing data folder (../shared/data/routing)")
    parser.add_argument("--sets", nargs="+", choices=[*LOADERS, "routerbench"], default=[*LOADERS, "routerbench"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--curve", type=Path, default=CURVE_FILE, help="where the RouterBench cost-quality points "
                        "go (JSON; a PNG of the figure beside it); the console's Costs page shows them")
    args = parser.parse_args(argv)
    print(f"$ {command_line()}")
    print(f"{'set':<9} {'n':>6} {'router':<34} {'APGR':>6} {'CPT50':>6} {'CPT80':>6}")
    for name in args.sets:
        if name == "routerbench":
            continue
        try:
            items = LOADERS[name](args.data)
        except (OSError, KeyError, ValueError) as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            return 2
        for router, scores in classifier_scores(items).items():
            curve = quality_curve(items, scores)
            print(f"{name:<9} {len(items):>6} {router:<34} {apgr(curve):>6.3f} "
                  f"{cpt(curve, 0.5):>6.1%} {cpt(curve, 0.8):>6.1%}")
        rng = random.Random(args.seed)
        draws = [quality_curve(items, [rng.random() for _ in items]) for _ in range(RANDOM_DRAWS)]
        mean = [sum(c[k] for c in draws) / RANDOM_DRAWS for k in range(len(items) + 1)]
        print(f"{name:<9} {len(items):>6} {f'random (mean of {RANDOM_DRAWS})':<34} "
              f"{sum(apgr(c) for c in draws) / RANDOM_DRAWS:>6.3f} {cpt(mean, 0.5):>6.1%} {cpt(mean, 0.8):>6.1%}")
        if name in PUBLISHED_BEST:
            label, figure = PUBLISHED_BEST[name]
            print(f"{name:<9} {'':>6} {label:<34} {figure:>6.3f}")
    if "routerbench" in args.sets:
        try:
            report = routerbench_report(args.data)
        except (OSError, KeyError, ValueError) as exc:
            print(f"error: routerbench: {exc}", file=sys.stderr)
            return 2
        print("\nRouterBench test files (ARC-Challenge, MBPP, WinoGrande), shares of always-GPT-4; tiers: "
              + ", ".join(f"{tier} = {model}" for tier, model in ROUTERBENCH_TIERS.items()))
        print(f"{'router':<52} {'quality kept':>12} {'cost saved':>10}")
        for p in report:
            print(f"{p.label:<52} {p.quality:>12.3f} {p.saved:>10.1%}")
        write(report, command_line(), args.curve)
        print(f"wrote {args.curve}; " + write_png(report, args.curve.with_suffix(".png")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
