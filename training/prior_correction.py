"""Would shifting the task probabilities toward the rarer labels pay? Post-hoc prior
correction (logit adjustment), scored on validation predictions, never on the held-out prompts.

    python -m training.recipe_sweep --data labeled.jsonl --encoder DIR --glossary G \
        --recipe defaults: --folds 1 --predictions preds/
    python -m training.prior_correction preds/defaults-fold0.jsonl [more files] [--max-tau 1.5] [--step 0.1]

Every prediction's log-probabilities get -tau * log(share) added, share being each label's
share of the file's prompts (recipe_sweep's folds are stratified, so it is the fitting part's
share too), and the label with the highest sum wins: tau 0 is the model as trained, 1 divides
the label frequencies out altogether. Training already weights rare labels
(--class-weight-power 0.5), so this asks whether a further shift, applied where the
predictions are read, would buy macro-F1. The table gives macro-F1 and accuracy for each tau,
averaged over the files.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from router.classifier.prediction import TASK_LABELS
from training.evaluate import score


class PredictionsError(ValueError):
    """A predictions file that cannot be read."""


@dataclass(frozen=True)
class Said:
    task: str
    probabilities: Mapping[str, float]


@dataclass(frozen=True)
class Row:
    tau: float
    macro_f1: float
    accuracy: float


def load_predictions(path: Path) -> list[Said]:
    """The rows recipe_sweep --predictions wrote: {"task", "probabilities": {label: p}, ...}."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PredictionsError(f"{path}: {exc.strerror or exc}") from None
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            said = Said(row["task"], {label: float(row["probabilities"][label]) for label in TASK_LABELS})
        except (ValueError, KeyError, TypeError) as exc:
            raise PredictionsError(f"{path} line {number}: not a prediction row ({exc!r})") from None
        if said.task not in TASK_LABELS:
            raise PredictionsError(f"{path} line {number}: unknown task {said.task!r}")
        out.append(said)
    if not out:
        raise PredictionsError(f"{path}: no predictions")
    return out


def log_shares(rows: Sequence[Said]) -> dict[str, float]:
    """Each label's log share of the prompts; a label with none counts as half a prompt."""
    counts = Counter(r.task for r in rows)
    return {label: math.log(max(counts[label], 0.5) / len(rows)) for label in TASK_LABELS}


def corrected(probabilities: Mapping[str, float], shares: Mapping[str, float], tau: float) -> str:
    return max(TASK_LABELS, key=lambda label: math.log(max(probabilities[label], 1e-12)) - tau * shares[label])


def sweep(files: Sequence[Sequence[Said]], taus: Sequence[float]) -> list[Row]:
    shares = [log_shares(rows) for rows in files]  # the same for every tau
    out = []
    for tau in taus:
        scores = [score([r.task for r in rows], [corrected(r.probabilities, file_shares, tau) for r in rows])
                  for rows, file_shares in zip(files, shares, strict=True)]
        out.append(Row(tau, sum(s.macro_f1 for s in scores) / len(scores),
                       sum(s.accuracy for s in scores) / len(scores)))
    return out


def format_table(rows: Sequence[Row]) -> str:
    best = max(rows, key=lambda r: r.macro_f1)
    lines = [f"{'tau':>5}  {'macro-F1':>8}  {'accuracy':>8}"]
    lines += [f"{r.tau:>5.2f}  {r.macro_f1:>8.3f}  {r.accuracy:>8.3f}{'  <- best' if r is best else ''}" for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", type=Path, nargs="+", help="files written by recipe_sweep --predictions")
    parser.add_argument("--max-tau", type=float, default=1.5)
    parser.add_argument("--step", type=float, default=0.1)
    args = parser.parse_args(argv)
    if not (args.step > 0 and args.max_tau >= 0):
        print("error: --step must be above 0 and --max-tau at least 0", file=sys.stderr)
        return 2
    try:
        files = [load_predictions(p) for p in args.predictions]
    except PredictionsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    taus = [round(i * args.step, 6) for i in range(int(args.max_tau / args.step + 1e-9) + 1)]
    print(f"$ python -m training.prior_correction {' '.join(str(p) for p in args.predictions)}")
    print(f"{sum(len(f) for f in files)} validation predictions in {len(files)} file(s)")
    print(format_table(sweep(files, taus)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
