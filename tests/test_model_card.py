"""The model card: training rewrites the generated part and keeps what was written by hand
below the marker line (latency tables, build history), so a retrain loses no notes."""

from __future__ import annotations

from pathlib import Path

from training.evaluate import Example
from training.model_card import HAND_WRITTEN, model_card

ROWS = [{"prompt": "sort a list in Python", "task": "Code Generation", "source": "human-eval", "license": "MIT"},
        {"prompt": "what is DNS?", "task": "Open QA", "source": "sharegpt", "license": "Apache-2.0",
         "selection": "random"}]
TRAIN = [Example("sort a list in Python", "Code Generation")]
TEST = [Example("what is DNS?", "Open QA")]


def write(out: Path, report: str) -> str:
    model_card(out, ROWS, TRAIN, TEST, report, "keyword report", "seed report", "targets", "    python -m ...")
    return (out / "MODEL_CARD.md").read_text()


def test_a_new_card_ends_with_the_marker(tmp_path: Path) -> None:
    card = write(tmp_path, "all: accuracy=0.5")
    assert "all: accuracy=0.5" in card
    assert "| human-eval | 1 | MIT |" in card
    assert card.rstrip().endswith(HAND_WRITTEN)


def test_a_retrain_keeps_the_hand_written_part_and_replaces_the_rest(tmp_path: Path) -> None:
    notes = HAND_WRITTEN + "\n\n## Build history\n\n| build | macro-F1 |\n| --- | --- |\n| first | 0.5 |\n"
    first = write(tmp_path, "all: accuracy=0.5")
    (tmp_path / "MODEL_CARD.md").write_text(first.replace(HAND_WRITTEN + "\n", notes))
    second = write(tmp_path, "all: accuracy=0.7")
    assert "accuracy=0.5" not in second.split(HAND_WRITTEN)[0]
    assert "all: accuracy=0.7" in second
    assert second.endswith(notes)
    assert second.count(HAND_WRITTEN) == 1
    assert write(tmp_path, "all: accuracy=0.7") == second  # rewriting again changes nothing


def test_a_card_without_the_marker_gets_one(tmp_path: Path) -> None:
    (tmp_path / "MODEL_CARD.md").write_text("# an old card\n\nnotes with no marker\n")
    card = write(tmp_path, "all: accuracy=0.6")
    assert "notes with no marker" not in card  # nothing marked as hand-written: the card is generated afresh
    assert card.rstrip().endswith(HAND_WRITTEN)
