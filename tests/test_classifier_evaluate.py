"""Classifier evaluation: metrics computed right, Japanese split out, tier agreement, and
the command's handling of bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from router.classifier import KeywordClassifier
from router.classifier.prediction import COMPLEXITY_WEIGHTS, TASK_LABELS, Prediction
from router.config import DEFAULT_CONFIG, load_seed
from training.evaluate import (
    SEED_EXAMPLES,
    Example,
    evaluate,
    format_seed_routing,
    format_targets,
    load_examples,
    normalized,
    score,
    seed_routing,
    split,
    target_checks,
    tier_agreement,
)

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_seed(DEFAULT_CONFIG).policies["task-complexity"]


class ConstantClassifier:
    """Calls every text the same task, sure of it, with no complexity."""

    def __init__(self, task: str) -> None:
        self.task = task

    def classify(self, texts: list[str]) -> list[Prediction]:
        probabilities = {label: float(label == self.task) for label in TASK_LABELS}
        return [Prediction(self.task, probabilities, 0.0, dict.fromkeys(COMPLEXITY_WEIGHTS, 0.0), "constant")
                for _ in texts]


def test_scores_by_hand() -> None:
    s = score(["A", "A", "B", "B"], ["A", "B", "B", "B"])
    assert s.accuracy == 0.75
    assert s.per_label["A"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert s.per_label["B"]["precision"] == pytest.approx(2 / 3) and s.per_label["B"]["recall"] == 1.0
    assert s.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)
    assert s.confusion["A"] == {"A": 1, "B": 1}
    assert score([], []).n == 0


def test_keyword_classifier_on_the_seed_examples() -> None:
    examples = [*SEED_EXAMPLES, Example("Write a haiku about autumn rain", "Text Generation")]
    report = evaluate(KeywordClassifier(), examples, POLICY)
    assert report.overall.accuracy == 1.0 and report.overall.macro_f1 == 1.0
    assert report.japanese.n == 3 and report.japanese.accuracy == 1.0
    assert report.tier_agreement == 1.0


def test_seed_routing_names_each_examples_label_and_tier() -> None:
    rows = seed_routing(KeywordClassifier(), POLICY)
    assert [r.predicted for r in rows] == [e.task for e in SEED_EXAMPLES]
    assert all(r.routed_right for r in rows)
    text = format_seed_routing(rows)
    assert text.startswith("seed examples: 3/3 routed right, 3/3 labeled right")
    # A classifier that calls everything Other is caught: the Rewrite example loses its small tier.
    wrong = seed_routing(ConstantClassifier("Other"), POLICY)
    assert not wrong[2].routed_right and "MISROUTED" in format_seed_routing(wrong)


def test_targets_are_met_only_when_every_figure_reaches_its_bar() -> None:
    examples = [*SEED_EXAMPLES, Example("Write a haiku about autumn rain", "Text Generation")]
    good = target_checks(evaluate(KeywordClassifier(), examples, POLICY), seed_routing(KeywordClassifier(), POLICY))
    assert [ok for _, ok in good] == [True, True, True]
    constant = ConstantClassifier("Other")
    bad = target_checks(evaluate(constant, examples, POLICY), seed_routing(constant, POLICY))
    assert [ok for _, ok in bad] == [False, False, False]
    text = format_targets(bad)
    assert text.splitlines()[0].startswith("MISSED: held-out macro-F1 0.000 >= 0.85")
    assert "MISSED: seed examples routed right 1/3" in text  # Other goes to the default 70B tier


def test_tier_agreement_counts_label_errors_that_change_the_tier() -> None:
    k = KeywordClassifier()
    examples = [Example("Summarize the following meeting notes", "Rewrite"),  # both go to 8B
                Example("Summarize the following meeting notes", "Open QA")]  # 8B vs 70B
    predictions = k.classify([e.prompt for e in examples])
    assert tier_agreement(examples, predictions, POLICY) == 0.5


def test_load_examples_names_bad_lines(tmp_path: Path) -> None:
    good = tmp_path / "set.jsonl"
    good.write_text(json.dumps({"prompt": "hi", "task": "Chatbot"}) + "\n\n" +
                    json.dumps({"prompt": "make it shorter", "correct_task": "Rewrite", "context": "x"}) + "\n")
    assert [e.task for e in load_examples(good)] == ["Chatbot", "Rewrite"]
    # Unicode line and paragraph separators inside a prompt, written unescaped as the dataset
    # builder writes them, stay inside their record
    odd = tmp_path / "odd.jsonl"
    odd.write_text(json.dumps({"prompt": "Course 1\u2028Concepts\u2029\x85end", "task": "Text Generation"},
                              ensure_ascii=False) + "\n", encoding="utf-8")
    assert [e.prompt for e in load_examples(odd)] == ["Course 1\u2028Concepts\u2029\x85end"]
    bad = tmp_path / "bad.jsonl"
    rows = [{"prompt": "hi", "task": "Chatbot"}, {"prompt": "x", "task": "Poetry"}]
    bad.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(ValueError, match=r"bad.jsonl:2: unknown task 'Poetry'"):
        load_examples(bad)
    bad.write_text("not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: expected a JSON object"):
        load_examples(bad)


def test_the_command(tmp_path: Path) -> None:
    data = tmp_path / "set.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": "Write a Python function that reverses a list", "task": "Code Generation"},
        {"prompt": "What is the capital of France?", "task": "Open QA"}]))
    out = subprocess.run([sys.executable, "-m", "training.evaluate", "--data", str(data), "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["all"]["n"] == 2 and report["all"]["accuracy"] == 1.0 and report["tier_agreement"] == 1.0
    missing = subprocess.run([sys.executable, "-m", "training.evaluate", "--data", str(tmp_path / "no")],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "error:" in missing.stderr


def test_split_is_stratified_and_keeps_copies_of_a_prompt_on_one_side() -> None:
    examples = [Example(f"write function {i}", "Code Generation") for i in range(40)]
    examples += [Example(f"what is {i}?", "Open QA") for i in range(20)]
    # "continue" asked in five conversations, and a prompt repeated with other spacing and case
    examples += [Example("continue", "Other", context=f"turn {i}") for i in range(5)]
    examples += [Example(f"go on {i}", "Other") for i in range(4)]
    examples += [Example("Now extract the  nouns", "Extraction"), Example("now extract the nouns", "Extraction"),
                 Example("extract the dates", "Extraction")]
    for seed in range(20):
        train, test = split(examples, 0.2, seed)
        assert sorted(map(id, train + test)) == sorted(map(id, examples))
        seen = {normalized(e.prompt) for e in train}
        assert not [e for e in test if normalized(e.prompt) in seen]
        assert sum(e.task == "Code Generation" for e in test) == 8
        assert sum(e.task == "Open QA" for e in test) == 4
        # a prompt asked in five conversations always trains; the Other singles are split as usual
        assert not [e for e in test if e.prompt == "continue"]
        assert sum(e.task == "Other" for e in test) == 1


def test_train_only_examples_train_and_leave_the_split_of_the_others_as_it_was() -> None:
    examples = [Example(f"write function {i}", "Code Generation") for i in range(40)]
    examples += [Example(f"extract the names {i}", "Extraction") for i in range(10)]
    ranked = [Example(f"extract the dates {i}", "Extraction", train_only=True) for i in range(30)]
    for seed in range(10):
        train, test = split(examples, 0.2, seed)
        train_with, test_with = split(examples + ranked, 0.2, seed)
        assert test_with == test
        assert train_with == train + ranked
    # a train-only copy of a held-out prompt is left out: training must not see a held-out prompt
    _, test = split(examples, 0.2, 0)
    copy = Example(test[0].prompt.upper(), test[0].task, train_only=True)
    train_with, test_with = split([*examples, copy], 0.2, 0)
    assert test_with == test and copy not in train_with


def test_rows_drawn_by_a_models_ranking_are_train_only(tmp_path: Path) -> None:
    data = tmp_path / "set.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": "extract the dates", "task": "Extraction", "selection": "model"},
        {"prompt": "extract the names", "task": "Extraction", "selection": "keyword"},
        {"prompt": "hi", "task": "Chatbot"}]))
    assert [e.train_only for e in load_examples(data)] == [True, False, False]
