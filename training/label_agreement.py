"""How far a second, blind reading of labeled prompts agrees with the first: the ceiling that
the labels put on any classifier's held-out scores.

    python -m training.label_agreement sample --data labeled.jsonl --n 150 > blind.txt
    # read blind.txt without the labels; write one line per prompt: "<number> <code>"
    python -m training.label_agreement apply codes.txt      # -> training/labels/reread.tsv
    python -m training.label_agreement score --data labeled.jsonl

`sample` draws ShareGPT prompts from the held-out part of the split that training uses
(the prompts the model is scored on) and prints them as label_turns.py does, with no label;
it keeps the draw in training/.reread.json. `apply` writes the second reading to
training/labels/reread.tsv, pinned by id, turn and SHA-1 like sharegpt.tsv. `score` treats
the first reading as the truth and reports the second as if it were a classifier: accuracy,
macro-F1, Cohen's kappa, the confusion and tier agreement under the seed policy (each
prompt's complexity from the keyword classifier, the same on both sides).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from router.classifier.keyword import KeywordClassifier
from router.classifier.text import join_turn_and_context
from router.policy import Policy
from training.dataset import LABELS_DIR, DatasetError, read_label_rows, text_sha
from training.evaluate import (
    Example,
    Report,
    as_truth,
    format_report,
    load_rows,
    score,
    split,
    tier_agreement,
)
from training.label_turns import CODES, preview, read_codes

DRAW = Path(__file__).resolve().parent / ".reread.json"
REREAD = LABELS_DIR / "reread.tsv"
HEADER = "# blind second reading of held-out prompts: id, turn, sha1 of the turn text, task\nid\tturn\tsha1\ttask\n"


def held_out_sharegpt(data: Path, held_out: float, seed: int) -> list[dict]:  # type: ignore[type-arg]
    """The held-out split's ShareGPT rows, in file order."""
    rows = load_rows(data)
    test = set(map(id, split([e for _, e in rows], held_out, seed)[1]))
    return [r for r, e in rows if id(e) in test and r.get("source") == "sharegpt"]


def sample(data: Path, n: int, seed: int, held_out: float, split_seed: int) -> int:
    try:
        done = {(r["id"], r["turn"]) for r in read_reread()}
        held = held_out_sharegpt(data, held_out, split_seed)
    except (OSError, ValueError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pool = [r for r in held if (r["id"], str(r["turn"])) not in done]
    picked = random.Random(seed).sample(pool, min(n, len(pool)))
    DRAW.write_text(json.dumps([{"id": r["id"], "turn": r["turn"], "sha1": text_sha(r["prompt"])} for r in picked]))
    print(f"# {len(pool)} held-out ShareGPT prompts not yet re-read; {len(picked)} drawn", file=sys.stderr)
    for number, r in enumerate(picked):
        print(f"{number} turn {r['turn']}" + preview(r["prompt"], r.get("context") or ""))
    return 0


def apply(codes_file: Path, draw: Path = DRAW, reread: Path = REREAD) -> int:
    if not draw.is_file():
        print(f"error: {draw.name} is missing: run `sample` first", file=sys.stderr)
        return 2
    drawn = json.loads(draw.read_text())
    try:
        codes = read_codes(codes_file, skip=False)  # a second reading labels every prompt
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    missing = [str(i) for i in range(len(drawn)) if str(i) not in codes]
    if missing:
        print(f"error: no code for prompts {', '.join(missing[:10])}", file=sys.stderr)
        return 2
    if not reread.is_file():
        reread.write_text(HEADER, encoding="utf-8")
    with reread.open("a", encoding="utf-8") as f:
        f.writelines(f"{d['id']}\t{d['turn']}\t{d['sha1']}\t{CODES[codes[str(i)]]}\n" for i, d in enumerate(drawn))
    draw.unlink()
    print(f"appended {len(drawn)} second readings to {reread.name}")
    return 0


def read_reread(path: Path = REREAD) -> list[dict[str, str]]:
    return read_label_rows(path) if path.is_file() else []


def kappa(first: Sequence[str], second: Sequence[str]) -> float:
    """Cohen's kappa: agreement beyond what two readers with these label frequencies reach by chance."""
    n = len(first)
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    a, b = Counter(first), Counter(second)
    chance = sum(a[label] * b[label] for label in a) / (n * n)
    return (observed - chance) / (1 - chance) if chance < 1 else 1.0


def agreement(pairs: Sequence[tuple[Example, str]], policy: Policy) -> tuple[Report, float]:
    """The second reading scored against the first as a classifier's predictions would be."""
    examples = [e for e, _ in pairs]
    first = [e.task for e in examples]
    second = [task for _, task in pairs]
    complexity = KeywordClassifier().classify([join_turn_and_context(e.prompt, e.context) for e in examples])
    readings = [as_truth(p, task) for p, task in zip(complexity, second, strict=True)]
    return (Report(score(first, second), score([], []), tier_agreement(examples, readings, policy)),
            kappa(first, second))


def score_command(data: Path, reread_path: Path = REREAD) -> int:
    from router.config import DEFAULT_CONFIG, load_seed

    try:
        rows = {(r.get("id"), str(r.get("turn"))): e for r, e in load_rows(data)}
        rereads = read_reread(reread_path)
    except (OSError, ValueError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pairs = []
    for reread in rereads:
        example = rows.get((reread["id"], reread["turn"]))
        if example is None or text_sha(example.prompt) != reread["sha1"]:
            print(f"error: {reread['id']} turn {reread['turn']} is not in {data} as it was re-read "
                  "(rebuild the labeled set with training.dataset)", file=sys.stderr)
            return 2
        pairs.append((example, reread["task"]))
    if not pairs:
        print(f"error: {reread_path} holds no second readings: run `sample` and `apply` first", file=sys.stderr)
        return 2
    seed = load_seed(DEFAULT_CONFIG)
    report, k = agreement(pairs, seed.policies[seed.default_policy])
    print(f"second reading vs first: n={len(pairs)} kappa={k:.3f}")
    print("\n".join(line for line in format_report(report).splitlines() if not line.startswith("japanese")))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser("sample")
    s.add_argument("--data", type=Path, required=True)
    s.add_argument("--n", type=int, default=50)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--held-out", type=float, default=0.2)
    s.add_argument("--split-seed", type=int, default=13)
    a = commands.add_parser("apply")
    a.add_argument("codes", type=Path)
    c = commands.add_parser("score")
    c.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "sample":
        return sample(args.data, args.n, args.seed, args.held_out, args.split_seed)
    return apply(args.codes) if args.command == "apply" else score_command(args.data)


if __name__ == "__main__":
    sys.exit(main())
