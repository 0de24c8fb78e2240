"""Compare training recipes without touching the held-out split.

    python -m training.recipe_sweep --data labeled.jsonl --encoder DIR [--glossary G] \
        --recipe base: --recipe long:epochs=15 --recipe b32:batch=32,lr=1.5e-4 [--folds 3] [--jobs 4] \
        [--device auto] [--deadline 600] [--out sweep.jsonl] [--predictions DIR]

Each recipe is NAME:KEY=VALUE,... over train's options (epochs, lr, batch, seed,
class_weight_power, dropout, max_length); what a recipe leaves out takes train's
default. The training part of train's split (same --held-out and --seed) is split again,
--folds times with different seeds, into a fitting part and a validation part; every recipe
is fitted on each fitting part (training seed = seed + fold, so the spread includes the
seed's) and scored on its validation part in PyTorch. The held-out prompts are never read,
so a recipe chosen here can then be built with train and scored on them once.

Runs go to --jobs worker processes (a GPU holds several at once); each result is appended to
--out as it lands, and the table at the end gives each recipe's mean and spread. With
--deadline, no run starts after that many seconds. With --predictions DIR, each run also
writes what it predicted for every validation prompt to DIR/<recipe>-fold<k>.jsonl (true task,
the 11 probabilities, complexity), so a decision rule over the probabilities can be compared
afterwards without training again (training/prior_correction.py reads them). Needs
the train extra (pip install -e ".[train]").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from router.classifier.prediction import Prediction
from training.evaluate import Example, load_examples, split
from training.recipe import DEFAULTS


class RecipeError(ValueError):
    """A --recipe that cannot be read."""


@dataclass(frozen=True)
class Recipe:
    name: str
    options: dict[str, float] = field(default_factory=dict)

    def get(self, key: str) -> float:
        return self.options.get(key, DEFAULTS[key])


def parse_recipe(text: str) -> Recipe:
    name, sep, rest = text.partition(":")
    if not sep or not name.strip():
        raise RecipeError(f"recipe {text!r}: expected NAME:KEY=VALUE,... (NAME: alone is train's defaults)")
    if not re.fullmatch(r"[\w.+-]+", name.strip()):  # it names the run's --predictions file
        raise RecipeError(f"recipe {text!r}: NAME may hold only letters, digits and . _ + -")
    options: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in DEFAULTS:
            raise RecipeError(f"recipe {name!r}: {part!r} is not KEY=VALUE with KEY one of {', '.join(DEFAULTS)}")
        try:
            number = float(value)
        except ValueError:
            raise RecipeError(f"recipe {name!r}: {key} must be a number, not {value!r}") from None
        options[key] = int(number) if isinstance(DEFAULTS[key], int) else number
    return Recipe(name.strip(), options)


def folds(train: list[Example], count: int, share: float, seed: int) -> list[tuple[list[Example], list[Example]]]:
    """`count` fitting/validation splits of the training part, each stratified like the held-out one."""
    return [split(train, share, seed + 1000 + i) for i in range(count)]


def prediction_rows(examples: Sequence[Example], predictions: Sequence[Prediction]) -> list[dict]:  # type: ignore[type-arg]
    """One JSON-ready row per validation prompt: its true task and what the model said of it."""
    return [{"task": e.task, "predicted": p.task, "probabilities": p.probabilities, "complexity": p.complexity}
            for e, p in zip(examples, predictions, strict=True)]


def run_one(recipe: Recipe, fold: int, fit: list[Example], validation: list[Example], encoder: str,
            glossary_path: str | None, device: str, threads: int,
            predictions_path: str | None = None) -> dict:  # type: ignore[type-arg]
    """Fine-tune one recipe on one fitting part and score it on the validation part (in a worker)."""
    import torch

    torch.set_num_threads(threads)
    from router.classifier.artifact import Labels, encode, load_tokenizer, to_predictions
    from router.classifier.glossary import Glossary
    from router.classifier.prediction import COMPLEXITY_WEIGHTS, TASK_LABELS
    from router.config import DEFAULT_CONFIG, load_seed
    from training.evaluate import evaluate
    from training.train import fine_tuned

    started = time.monotonic()
    glossary = Glossary.load(Path(glossary_path)) if glossary_path else None
    max_length = int(recipe.get("max_length"))
    model = fine_tuned(Path(encoder), fit, glossary, max_length=max_length, dropout=recipe.get("dropout"),
                       epochs=int(recipe.get("epochs")), lr=recipe.get("lr"), batch=int(recipe.get("batch")),
                       seed=int(recipe.get("seed")) + fold, class_weight_power=recipe.get("class_weight_power"),
                       device=device)
    model.to(device)
    tokenizer = load_tokenizer(Path(encoder), max_length)
    labels = Labels(TASK_LABELS, tuple(COMPLEXITY_WEIGHTS), max_length)

    said: list[Prediction] = []

    class Scorer:  # the fine-tuned model behind the classifier contract, for evaluate()
        def classify(self, batch: list[str]):  # type: ignore[no-untyped-def]
            inputs = encode(tokenizer, batch, glossary)
            with torch.no_grad():
                probs, dimensions = model(torch.from_numpy(inputs["input_ids"]).to(device),
                                          torch.from_numpy(inputs["attention_mask"]).to(device))
            out = to_predictions(labels, probs.cpu().numpy(), dimensions.cpu().numpy(), "torch")
            said.extend(out)
            return out

    seed = load_seed(DEFAULT_CONFIG)
    report = evaluate(Scorer(), validation, seed.policies[seed.default_policy])
    if predictions_path:
        with open(predictions_path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in prediction_rows(validation, said))
    return {"recipe": recipe.name, "options": recipe.options, "fold": fold, "fit": len(fit),
            "validation": len(validation), "accuracy": report.overall.accuracy,
            "macro_f1": report.overall.macro_f1, "tier_agreement": report.tier_agreement,
            "f1": {label: v["f1"] for label, v in report.overall.per_label.items()},
            "seconds": round(time.monotonic() - started, 1)}


def summarize(results: list[dict]) -> str:  # type: ignore[type-arg]
    by_recipe: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for r in results:
        by_recipe.setdefault(r["recipe"], []).append(r)

    def spread(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {sd:.3f}"

    rows = sorted(by_recipe.items(), key=lambda kv: -statistics.mean(r["macro_f1"] for r in kv[1]))
    lines = [f"{'recipe':<18} {'runs':>4}  {'macro-F1':>13}  {'accuracy':>13}  {'tier agreement':>14}  options"]
    for name, runs in rows:
        lines.append(f"{name:<18} {len(runs):>4}  {spread([r['macro_f1'] for r in runs]):>13}  "
                     f"{spread([r['accuracy'] for r in runs]):>13}  {spread([r['tier_agreement'] for r in runs]):>14}"
                     f"  {runs[0]['options'] or 'defaults'}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--encoder", type=Path, required=True)
    parser.add_argument("--glossary", type=Path)
    parser.add_argument("--recipe", action="append", required=True, help="NAME:KEY=VALUE,... (repeatable)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--validation", type=float, default=0.2, help="share of the training part each fold scores")
    parser.add_argument("--held-out", type=float, default=0.2, help="train's --held-out: these prompts are left out")
    parser.add_argument("--split-seed", type=int, default=int(DEFAULTS["seed"]),
                        help="train's --seed, which draws the held-out split")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--deadline", type=float, help="start no run after this many seconds")
    parser.add_argument("--out", type=Path, default=Path("sweep.jsonl"))
    parser.add_argument("--predictions", type=Path, help="folder for each run's validation predictions")
    args = parser.parse_args()
    try:
        recipes = [parse_recipe(r) for r in args.recipe]
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len({r.name for r in recipes}) != len(recipes):
        print("error: two recipes share a name", file=sys.stderr)
        return 2
    if args.predictions:
        try:
            args.predictions.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"error: --predictions {args.predictions}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    from training.train import resolve_device  # torch: only once the arguments are known good

    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    train, _ = split(load_examples(args.data), args.held_out, args.split_seed)
    parts = folds(train, args.folds, args.validation, args.split_seed)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    queue = [(recipe, i) for i in range(args.folds) for recipe in recipes]  # fold-major: a cut-off run still compares
    print(f"{len(train)} training prompts (held-out part left out); {len(queue)} runs on {device}, "
          f"{args.jobs} at a time", flush=True)
    started = time.monotonic()
    results: list[dict] = []  # type: ignore[type-arg]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool, args.out.open("a") as out:
        running: set[Future] = set()  # type: ignore[type-arg]
        while queue or running:
            while queue and len(running) < args.jobs and not (
                    args.deadline and time.monotonic() - started > args.deadline):
                recipe, i = queue.pop(0)
                fit, validation = parts[i]
                written = str(args.predictions / f"{recipe.name}-fold{i}.jsonl") if args.predictions else None
                running.add(pool.submit(run_one, recipe, i, fit, validation, str(args.encoder),
                                        str(args.glossary) if args.glossary else None, device, threads, written))
            if not running:
                print(f"deadline: {len(queue)} runs not started", flush=True)
                break
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    result = future.result()
                except Exception as exc:  # one failed run is reported; the others go on
                    print(f"run failed: {exc!r}", flush=True)
                    continue
                results.append(result)
                out.write(json.dumps(result) + "\n")
                out.flush()
                print(f"[{time.monotonic() - started:6.0f}s] {result['recipe']} fold {result['fold']}: "
                      f"macro-F1 {result['macro_f1']:.3f} accuracy {result['accuracy']:.3f} "
                      f"tier {result['tier_agreement']:.3f} ({result['seconds']}s)", flush=True)
    print(summarize(results))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
