"""The keyword classifier keeps the classifier contract and routes the seed examples."""

from __future__ import annotations

import pytest

from router.chat_request import parse_chat_request
from router.classifier import COMPLEXITY_WEIGHTS, TASK_LABELS, KeywordClassifier, complexity_score
from router.classifier.text import split_turn_and_context

K = KeywordClassifier()


def test_predictions_have_the_contract_shape() -> None:
    texts = ["Summarize this article in three bullet points", "こんにちは", "", "x" * 20000]
    predictions = K.classify(texts)
    assert len(predictions) == len(texts)
    for p in predictions:
        assert set(p.probabilities) == set(TASK_LABELS)
        assert sum(p.probabilities.values()) == pytest.approx(1.0)
        assert p.task == max(p.probabilities, key=p.probabilities.get)
        assert 0 <= p.complexity <= 1 and set(p.dimensions) == set(COMPLEXITY_WEIGHTS)
        assert p.complexity == pytest.approx(complexity_score(p.dimensions))
        assert p.backend == "keyword"


def test_complexity_weights_follow_the_contract() -> None:
    assert sum(COMPLEXITY_WEIGHTS.values()) == pytest.approx(1.0)
    assert complexity_score({"creativity": 1.0}) == pytest.approx(0.35)
    assert complexity_score({name: 1.0 for name in COMPLEXITY_WEIGHTS}) == pytest.approx(1.0)


@pytest.mark.parametrize(("text", "task"), [
    ("Pythonでソートアルゴリズムを実装して", "Code Generation"),
    ("このアルゴリズムの計算量を説明して", "Open QA"),
    ("Write a haiku about autumn rain", "Text Generation"),
    ("Summarize the following meeting notes", "Summarization"),
    ("Extract all the email addresses from this text", "Extraction"),
    ("Classify the sentiment of this review: great phone", "Classification"),
    ("Give me 10 ideas for a team offsite", "Brainstorming"),
    ("Rewrite this paragraph in a more formal tone", "Rewrite"),
    ("Hello! How are you today?", "Chatbot"),
    ("Based on the passage above, who founded the company?", "Closed QA"),
    ("次の文章を要約して", "Summarization"),
])
def test_task_labels(text: str, task: str) -> None:
    assert K.classify([text])[0].task == task


def test_a_short_follow_up_after_an_answer_is_a_rewrite() -> None:
    req = parse_chat_request({"messages": [
        {"role": "user", "content": "このアルゴリズムの計算量を説明して"},
        {"role": "assistant", "content": "クイックソートの平均計算量は O(n log n) で、最悪は O(n^2) です。"},
        {"role": "user", "content": "もっと簡潔にまとめて"}]})
    text = req.classifier_text()
    turn, context = split_turn_and_context(text)
    assert turn == "もっと簡潔にまとめて" and "assistant: クイックソート" in context
    assert K.classify([text])[0].task == "Rewrite"
    # The same words with no earlier answer ask for a summary.
    assert K.classify(["もっと簡潔にまとめて"])[0].task == "Summarization"


def test_hard_prompts_score_higher_than_easy_ones() -> None:
    easy, hard = K.classify(["Hello!", "Prove step by step that the algorithm is optimal and analyze the "
                             "trade-offs of a distributed quantum approach; derive the probability bound"])
    assert hard.complexity > 0.4 > 0.1 > easy.complexity
