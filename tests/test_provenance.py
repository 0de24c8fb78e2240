"""An artifact records the training split it was built from; rescoring it on a split that
moved (labels added or changed since) is refused instead of reporting contaminated figures."""

from __future__ import annotations

import json
from pathlib import Path

from training.evaluate import Example, split
from training.provenance import HELD_OUT_KEY, KEY, fingerprint, mismatch, record

EXAMPLES = [Example(f"prompt {i}", task, "") for i, task in
            enumerate(["Open QA", "Rewrite", "Code Generation", "Chatbot"] * 10)]


def artifact(tmp_path: Path) -> Path:
    (tmp_path / "labels.json").write_text(json.dumps({"tasks": [], "dimensions": [], "max_length": 128}))
    return tmp_path


def test_the_fingerprint_ignores_order_and_sees_a_changed_label() -> None:
    assert fingerprint(EXAMPLES) == fingerprint(list(reversed(EXAMPLES)))
    relabeled = [Example(EXAMPLES[0].prompt, "Other", ""), *EXAMPLES[1:]]
    assert fingerprint(relabeled) != fingerprint(EXAMPLES)
    with_context = [Example(EXAMPLES[0].prompt, EXAMPLES[0].task, "user: hi"), *EXAMPLES[1:]]
    assert fingerprint(with_context) != fingerprint(EXAMPLES)


def test_the_same_split_passes_and_a_reshuffled_one_is_named(tmp_path: Path) -> None:
    model_dir = artifact(tmp_path)
    train, test = split(EXAMPLES, 0.2, 13)
    record(model_dir, train, test)
    labels = json.loads((model_dir / "labels.json").read_text())
    assert labels[KEY]["examples"] == len(train) and labels["max_length"] == 128  # the rest is kept
    assert labels[HELD_OUT_KEY]["examples"] == len(test)
    assert mismatch(model_dir, *split(EXAMPLES, 0.2, 13)) is None
    # one more labeled prompt: the seeded split moves, and so does the training part
    grown = [*EXAMPLES, Example("prompt new", "Open QA", "")]
    moved, moved_test = split(grown, 0.2, 13)
    reason = mismatch(model_dir, moved, moved_test)
    assert reason is not None and f"({len(train)} examples)" in reason and f"({len(moved)} examples)" in reason
    assert mismatch(model_dir, *split(EXAMPLES, 0.2, 14)) is not None  # another split seed


def test_prompts_added_to_training_only_leave_the_held_out_part_and_the_artifact_scorable(tmp_path: Path) -> None:
    model_dir = artifact(tmp_path)
    record(model_dir, *split(EXAMPLES, 0.2, 13))
    grown = [*EXAMPLES, Example("prompt ranked", "Extraction", "", train_only=True)]
    train, test = split(grown, 0.2, 13)
    assert fingerprint(train) != fingerprint(split(EXAMPLES, 0.2, 13)[0])
    assert mismatch(model_dir, train, test) is None
    # an artifact that recorded only its training part cannot tell, and refuses
    labels = json.loads((model_dir / "labels.json").read_text())
    del labels[HELD_OUT_KEY]
    (model_dir / "labels.json").write_text(json.dumps(labels))
    assert mismatch(model_dir, train, test) is not None


def test_an_artifact_without_a_record_cannot_tell_and_is_let_through(tmp_path: Path) -> None:
    assert mismatch(artifact(tmp_path), EXAMPLES, []) is None
    assert mismatch(tmp_path / "missing", EXAMPLES, []) is None  # loading it reports that itself
