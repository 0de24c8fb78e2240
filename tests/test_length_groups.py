"""Grouping a batch's prompts by length: every prompt once, never worse than one batch or one run
per prompt under the cost it minimises, and the model's answers unchanged by it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from router.classifier.length_groups import RUN_COST_TOKENS, length_groups
from router.classifier.onnx import OnnxClassifier
from router.config import DEFAULT_MODEL


def cost(lengths: list[int], groups: list[list[int]]) -> int:
    return sum(RUN_COST_TOKENS + len(g) * max(lengths[i] for i in g) for g in groups)


def test_hand_cases() -> None:
    assert length_groups([]) == []
    assert length_groups([5]) == [[0]]
    assert length_groups([20, 21, 19, 20]) == [[2, 0, 3, 1]]  # alike: one run
    # Two clusters far apart: short ones together, long ones together.
    assert length_groups([14, 120, 15, 118, 14]) == [[0, 4, 2], [3, 1]]


@given(st.lists(st.integers(min_value=1, max_value=512), max_size=40))
def test_a_partition_no_worse_than_one_batch_or_one_run_each(lengths: list[int]) -> None:
    groups = length_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert all(g for g in groups)
    if lengths:
        assert cost(lengths, groups) <= cost(lengths, [list(range(len(lengths)))])
        assert cost(lengths, groups) <= cost(lengths, [[i] for i in range(len(lengths))])


def test_grouped_runs_give_each_prompt_its_own_answer() -> None:
    model = OnnxClassifier(DEFAULT_MODEL, threads=1)
    texts = ["hi", "Write FizzBuzz in Python.", "日本の首都はどこですか？",
             "Summarize this article in three sentences:\n\nThe council voted to expand the bike lanes, citing "
             "safety data and rising ridership, and the work starts in spring.", "ok", "Design a URL shortener."]
    lengths = model.pre.encode(texts)["attention_mask"].sum(axis=1).tolist()
    assert len(length_groups(lengths)) > 1  # the batch is run in more than one group
    together = model.classify(texts)
    alone = [model.classify([t])[0] for t in texts]
    for a, b in zip(together, alone, strict=True):
        assert a.task == b.task
        assert max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities) < 1e-4
        assert abs(a.difficulty - b.difficulty) < 1e-4
