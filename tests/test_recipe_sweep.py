"""training/recipe_sweep.py: recipes are read strictly, the folds it fits and scores on never
hold a held-out prompt, and the summary ranks recipes by their mean validation macro-F1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from router.classifier.prediction import TASK_LABELS
from training import recipe_sweep as sweep
from training.evaluate import Example, split

SCRIPT = [sys.executable, "-m", "training.recipe_sweep"]


def test_recipe_options_take_trains_types_and_defaults() -> None:
    recipe = sweep.parse_recipe("b32:batch=32,lr=1.5e-4, class-weight-power=0.25")
    assert recipe.name == "b32"
    assert recipe.options == {"batch": 32, "lr": 1.5e-4, "class_weight_power": 0.25}
    assert isinstance(recipe.get("batch"), int)
    assert recipe.get("epochs") == 10  # left out: train's default
    assert sweep.parse_recipe("base:").options == {}


@pytest.mark.parametrize(("text", "named"), [
    ("epochs=15", "NAME:KEY=VALUE"),
    (":epochs=15", "NAME:KEY=VALUE"),
    ("long:epochs", "'epochs'"),
    ("long:warmup=0.2", "'warmup=0.2'"),
    ("long:lr=fast", "lr must be a number"),
])
def test_bad_recipes_are_named(text: str, named: str) -> None:
    with pytest.raises(sweep.RecipeError, match=named):
        sweep.parse_recipe(text)


def test_a_bad_recipe_stops_the_sweep_before_any_training(tmp_path: Path) -> None:
    data = tmp_path / "labeled.jsonl"
    data.write_text(json.dumps({"prompt": "hi", "task": "Chatbot"}) + "\n")
    result = subprocess.run([*SCRIPT, "--data", str(data), "--encoder", str(tmp_path),
                             "--recipe", "base:", "--recipe", "odd:epochs=ten"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "error: recipe 'odd': epochs must be a number, not 'ten'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "sweep.jsonl").exists()


def test_a_predictions_folder_that_cannot_be_made_is_named_before_any_training(tmp_path: Path) -> None:
    data = tmp_path / "labeled.jsonl"
    data.write_text(json.dumps({"prompt": "hi", "task": "Chatbot"}) + "\n")
    result = subprocess.run([*SCRIPT, "--data", str(data), "--encoder", str(tmp_path),
                             "--recipe", "base:", "--predictions", str(data / "preds")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert f"error: --predictions {data / 'preds'}: Not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def examples() -> list[Example]:
    return [Example(f"{task} prompt number {i}", task) for task in TASK_LABELS for i in range(20)]


def test_folds_never_hold_a_held_out_prompt() -> None:
    data = examples()
    train, held_out = split(data, 0.2, 13)
    folds = sweep.folds(train, 3, 0.2, 13)
    assert len(folds) == 3
    held = {e.prompt for e in held_out}
    validations = []
    for fit, validation in folds:
        assert not held & {e.prompt for e in fit + validation}
        assert not {e.prompt for e in fit} & {e.prompt for e in validation}
        assert sorted(e.prompt for e in fit + validation) == sorted(e.prompt for e in train)
        assert {e.task for e in validation} == set(TASK_LABELS)  # stratified: every label is scored
        validations.append(frozenset(e.prompt for e in validation))
    assert len(set(validations)) == 3  # each fold draws its own validation part


def test_summary_ranks_recipes_by_mean_macro_f1() -> None:
    def result(recipe: str, f1: float) -> dict:  # type: ignore[type-arg]
        return {"recipe": recipe, "options": {}, "macro_f1": f1, "accuracy": 0.8, "tier_agreement": 0.9}

    table = sweep.summarize([result("base", 0.74), result("long", 0.70), result("base", 0.76),
                             result("long", 0.72), result("b32", 0.75)])
    names = [line.split()[0] for line in table.splitlines()[1:]]
    assert names == ["base", "b32", "long"]
    assert "0.750 ± 0.014" in table.splitlines()[1]
