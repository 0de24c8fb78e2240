"""training/prior_correction.py: the shift toward rare labels moves decisions the right way,
bad prediction files are named errors, and recipe_sweep writes the rows it reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from router.classifier.prediction import TASK_LABELS, Prediction
from training import prior_correction as prior
from training import recipe_sweep
from training.evaluate import Example

SCRIPT = [sys.executable, "-m", "training.prior_correction"]


def probabilities(**given: float) -> dict[str, float]:
    rest = (1.0 - sum(given.values())) / (len(TASK_LABELS) - len(given))
    named = {label.replace(" ", "_"): label for label in TASK_LABELS}
    return {label: rest for label in TASK_LABELS} | {named[k]: v for k, v in given.items()}


def underconfident_rare_label() -> list:
    """95 Open QA prompts the model gets right, 5 Extraction prompts it leans away from."""
    rows = [prior.Said("Open QA", probabilities(Open_QA=0.9, Extraction=0.05)) for _ in range(95)]
    rows += [prior.Said("Extraction", probabilities(Open_QA=0.55, Extraction=0.4)) for _ in range(5)]
    return rows


def test_a_shift_toward_the_rare_label_recovers_it() -> None:
    rows = underconfident_rare_label()
    table = {round(r.tau, 2): r for r in prior.sweep([rows], [0.0, 0.3, 3.0])}
    assert table[0.0].accuracy == pytest.approx(0.95)  # as trained: every Extraction prompt is missed
    assert table[0.3].accuracy == 1.0  # log(0.95/0.05) * 0.3 outweighs log(0.55/0.4), not log(0.9/0.05)
    assert table[0.3].macro_f1 > table[0.0].macro_f1
    assert table[3.0].accuracy < table[0.3].accuracy  # too far: Open QA prompts turn into Extraction


def test_labels_with_no_prompts_get_a_finite_share() -> None:
    shares = prior.log_shares(underconfident_rare_label())
    assert shares["Open QA"] > shares["Extraction"] > shares["Chatbot"] > float("-inf")


def test_recipe_sweep_writes_rows_that_prior_correction_reads(tmp_path: Path) -> None:
    examples = [Example("what is dns", "Open QA"), Example("pull the dates out", "Extraction")]
    said = [Prediction("Open QA", probabilities(Open_QA=0.8), 0.2, {}, "torch"),
            Prediction("Open QA", probabilities(Open_QA=0.6, Extraction=0.3), 0.1, {}, "torch")]
    path = tmp_path / "defaults-fold0.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recipe_sweep.prediction_rows(examples, said)))
    rows = prior.load_predictions(path)
    assert [r.task for r in rows] == ["Open QA", "Extraction"]
    assert rows[1].probabilities["Extraction"] == pytest.approx(0.3)
    result = subprocess.run([*SCRIPT, str(path), "--max-tau", "0.5"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "2 validation predictions in 1 file(s)" in result.stdout
    assert " 0.50 " in result.stdout and " 0.60 " not in result.stdout


@pytest.mark.parametrize(("content", "named"), [
    (None, "No such file"),
    ("", "no predictions"),
    ('{"task": "Open QA"}\n', "line 1: not a prediction row"),
    (json.dumps({"task": "Jokes", "probabilities": probabilities()}) + "\n", "line 1: unknown task 'Jokes'"),
])
def test_bad_prediction_files_are_named(tmp_path: Path, content: str | None, named: str) -> None:
    path = tmp_path / "preds.jsonl"
    if content is not None:
        path.write_text(content)
    result = subprocess.run([*SCRIPT, str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert named in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.stderr


def test_recipe_names_must_make_file_names() -> None:
    with pytest.raises(recipe_sweep.RecipeError, match="NAME may hold only"):
        recipe_sweep.parse_recipe("../up:epochs=3")
    assert recipe_sweep.parse_recipe("b32+lr.5:batch=32").name == "b32+lr.5"
