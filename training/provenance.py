"""Which training split an artifact was built from, so held-out scores stay honest.

Adding or correcting a label reshuffles the stratified split: a model trained before the
change has seen some of the prompts the new split holds out. Training records fingerprints
of its training and held-out parts in the artifact's labels.json ("trained_on", "held_out");
rescoring the artifact (train --card-only, bench/classifier_quality.py) recomputes the split
and refuses to score when both differ.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from training.evaluate import Example

KEY = "trained_on"
HELD_OUT_KEY = "held_out"


def fingerprint(train: Sequence[Example]) -> str:
    """SHA-256 over the training examples, order-free (the split's order is not part of it)."""
    lines = sorted(f"{e.task}\t{e.prompt}\t{e.context}" for e in train)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8") + b"\0")
    return digest.hexdigest()


def record(model_dir: Path, train: Sequence[Example], test: Sequence[Example]) -> None:
    path = model_dir / "labels.json"
    labels = json.loads(path.read_text(encoding="utf-8"))
    labels[KEY] = {"examples": len(train), "sha256": fingerprint(train)}
    labels[HELD_OUT_KEY] = {"examples": len(test), "sha256": fingerprint(test)}
    path.write_text(json.dumps(labels, indent=2) + "\n", encoding="utf-8")


def mismatch(model_dir: Path, train: Sequence[Example], test: Sequence[Example]) -> str | None:
    """Why the artifact cannot be scored on the split of `train` and `test`, or None when it can
    (or when the artifact predates the record and cannot tell).

    Either record suffices: the same training part, or the same held-out part (prompts added
    to training only, such as the train-only ones, leave the held-out part as it was, and the
    artifact never saw it)."""
    try:
        labels = json.loads((model_dir / "labels.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # loading the artifact reports a missing or broken labels.json itself
    recorded, held_out = labels.get(KEY), labels.get(HELD_OUT_KEY)
    if not isinstance(recorded, dict) or recorded.get("sha256") == fingerprint(train):
        return None
    if isinstance(held_out, dict) and held_out.get("sha256") == fingerprint(test):
        return None
    return (f"{model_dir} was trained on a different training split ({recorded.get('examples')} examples) "
            f"than this labeled set and split give ({len(train)} examples): the labels, the held-out share or "
            "the split seed changed since, so some held-out prompts may have been trained on. Retrain it on "
            "this labeled set, or score it with the labels and split it was built from.")
