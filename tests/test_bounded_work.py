"""Classification work is bounded whatever the input: the inputs that made the keyword
classifier's patterns backtrack (seconds to minutes at 100k characters) take milliseconds,
and a 1 MB prompt goes through the request path in well under a second."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.keyword_worst_case import inputs
from router.chat_request import parse_chat_request
from router.classifier import KeywordClassifier
from router.classifier.keyword import FollowedBy
from router.tokens import estimate_tokens
from tests.conftest import Api

MB = 1_000_000


@pytest.mark.parametrize("name", list(inputs(10)))
def test_a_1mb_worst_case_is_classified_in_well_under_a_second(name: str) -> None:
    text = inputs(MB)[name]
    keyword = KeywordClassifier()
    start = time.perf_counter()
    prediction = keyword.classify([parse_chat_request({"messages": [{"role": "user", "content": text}]})
                                   .classifier_text()])[0]
    took = time.perf_counter() - start
    assert took < 0.3, f"{name}: {took:.3f} s"
    assert prediction.task and 0 <= prediction.complexity <= 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["write", "Write", "story", "stories", " ", "\n", "a", "x", "writes"]), max_size=12))
def test_followed_by_means_what_the_backtracking_pattern_meant(words: list[str]) -> None:
    first, then = r"\b(write|compose)\b", r"\b(story|poem)\b"
    text = "".join(words)
    assert FollowedBy(first, then).search(text) == bool(re.search(f"{first}.*{then}", text, re.IGNORECASE))


def test_token_estimates_of_huge_texts_are_sampled_but_close() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 25_000
    exact = round(len(text.split()) * 1.3 + text.count("."))
    start = time.perf_counter()
    estimate = estimate_tokens(text)
    assert time.perf_counter() - start < 0.1
    assert abs(estimate - exact) / exact < 0.02


def test_a_1mb_prompt_is_routed_quickly_through_the_api(sqlite_api: Api) -> None:
    text = inputs(MB)["'write a ' on one line"]
    start = time.perf_counter()
    r = httpx.post(f"{sqlite_api.base_url}/route", json={"messages": [{"role": "user", "content": text}]},
                   timeout=30)
    assert r.status_code == 200, r.text
    assert time.perf_counter() - start < 1.0
    assert r.json()["classify_ms"] < 300
