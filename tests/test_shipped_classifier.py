"""The opt-in classifier artifact that ships in models/prompt-classifier-preview: it loads on
CPU, keeps the contract, stays small and documented, reads English prompts and the seed
policy's Japanese examples (through its glossary), gives a prompt the same prediction alone or
batched, and `auto` does not pick it (it has not met every target; see its model card)."""

from __future__ import annotations

import json

import pytest

from router.classifier import COMPLEXITY_WEIGHTS, TASK_LABELS
from router.classifier.artifact import GLOSSARY_FILE
from router.classifier.onnx import OnnxClassifier
from router.config import DEFAULT_CONFIG, DEFAULT_MODEL, Settings, load_seed
from router.runtime import make_classifier
from training.evaluate import format_seed_routing, seed_routing

SHIPPED = DEFAULT_MODEL.parent / "prompt-classifier-preview"


@pytest.fixture(scope="module")
def model() -> OnnxClassifier:
    return OnnxClassifier(SHIPPED)


def test_the_artifact_is_trained_small_and_documented() -> None:
    labels = json.loads((SHIPPED / "labels.json").read_text())
    assert not labels.get("untrained") and labels["tasks"] == list(TASK_LABELS)
    committed = ("model.onnx", "tokenizer.json", "labels.json", GLOSSARY_FILE)
    assert sum((SHIPPED / name).stat().st_size for name in committed) < 30e6
    card = (SHIPPED / "MODEL_CARD.md").read_text()
    assert "macro-F1" in card and "sharegpt" in card and "jp-prompt" in card and "JMdict" in card


def test_it_loads_on_cpu_and_keeps_the_contract(model: OnnxClassifier) -> None:
    assert model.provider == "CPUExecutionProvider"
    texts = ["Write a Python function that merges two sorted lists", "Summarize this email: hi all, the launch "
             "moved to May.", "hello!", "", "x" * 100_000]
    predictions = model.classify(texts)
    assert len(predictions) == len(texts)
    for p in predictions:
        assert set(p.probabilities) == set(TASK_LABELS) and sum(p.probabilities.values()) == pytest.approx(1.0)
        assert p.task == max(p.probabilities, key=p.probabilities.__getitem__)
        assert set(p.dimensions) == set(COMPLEXITY_WEIGHTS) and 0.0 <= p.complexity <= 1.0
    assert predictions[0].task == "Code Generation"
    assert predictions[1].task == "Summarization"


def test_auto_keeps_the_keyword_classifier_and_onnx_takes_the_shipped_model() -> None:
    classifier, error = make_classifier(Settings.from_env({}))
    assert error is None and classifier.info()["backend"] == "keyword"
    classifier, error = make_classifier(Settings.from_env({"ROUTER_CLASSIFIER": "onnx",
                                                           "ROUTER_CLASSIFIER_MODEL": str(SHIPPED)}))
    assert error is None and classifier.info()["backend"] == "onnx"


def test_the_seed_policys_examples_route_right(model: OnnxClassifier) -> None:
    assert model.pre.glossary is not None
    seed = load_seed(DEFAULT_CONFIG)
    rows = seed_routing(model, seed.policies[seed.default_policy])
    assert all(r.routed_right for r in rows), format_seed_routing(rows)
    # The code and the explanation requests must be read as such; the follow-up routes right
    # through a neighbouring label of the same tier (Summarization for Rewrite: see the model card).
    assert [r.predicted for r in rows[:2]] == ["Code Generation", "Open QA"], format_seed_routing(rows)


def test_a_prompt_gets_the_same_prediction_alone_or_batched(model: OnnxClassifier) -> None:
    texts = ["Pythonでソートアルゴリズムを実装して", "Summarize this email: the launch moved to May.",
             "x " * 400, "hello!"]
    assert model.one_per_run
    assert model.classify(texts) == [model.classify([t])[0] for t in texts]
