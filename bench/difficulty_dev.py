"""The seed policy on prompts that need a strong model and on everyday ones
(training/labels/difficulty_dev.tsv, never trained on): each prompt's task, difficulty and tier, and
how many of each kind reach the reasoning tier and the small one.

    python -m bench.difficulty_dev [--artifact models/prompt-classifier]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.common import command_line
from router.classifier.onnx import OnnxClassifier
from router.config import DEFAULT_CONFIG, load_seed
from router.policy import decide
from training.dataset import LABELS_DIR

DEV_FILE = LABELS_DIR / "difficulty_dev.tsv"


def read_dev(path: Path = DEV_FILE) -> list[tuple[str, str]]:
    """(kind, prompt) rows; kind is 'hard' or 'everyday'."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#") or line.startswith("kind\t"):
            continue
        kind, _, prompt = line.partition("\t")
        if kind not in ("hard", "everyday") or not prompt:
            raise ValueError(f"{path.name}: expected 'hard' or 'everyday', a tab and a prompt: {line[:60]!r}")
        rows.append((kind, prompt))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, default=Path("models/prompt-classifier"))
    args = parser.parse_args()
    seed = load_seed(DEFAULT_CONFIG)
    policy = seed.policies[seed.default_policy]
    rows = read_dev()
    predictions = OnnxClassifier(args.artifact).classify([prompt for _, prompt in rows])
    print(f"$ {command_line()}")
    counts: dict[str, list[str]] = {}
    for (kind, prompt), p in zip(rows, predictions, strict=True):
        tier = decide(p, policy, None).tier
        counts.setdefault(kind, []).append(tier)
        print(f"{kind:9} {tier:19} {p.task:16} {p.difficulty:.2f}  {prompt[:60]}")
    for kind, tiers in counts.items():
        print(f"{kind}: {tiers.count('nemotron-super-49b')}/{len(tiers)} to nemotron-super-49b, "
              f"{tiers.count('llama-3-8b')}/{len(tiers)} to llama-3-8b")


if __name__ == "__main__":
    main()
