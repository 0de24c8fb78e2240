"""The prediction cache: same text, same prediction, one model call; bounded size."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from router.classifier import KeywordClassifier, Prediction
from router.classifier.cache import CachedClassifier


class Counting:
    name = "counting"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.inner = KeywordClassifier()

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        self.calls.append(list(texts))
        return self.inner.classify(texts)

    def info(self) -> dict:
        return {"backend": self.name}


def test_repeated_texts_hit_the_cache_and_misses_are_batched() -> None:
    inner = Counting()
    cache = CachedClassifier(inner, max_entries=3)
    first = cache.classify(["Hello!", "Write a Python function"])
    again = cache.classify(["Write a Python function", "Summarize this", "Hello!"])
    assert inner.calls == [["Hello!", "Write a Python function"], ["Summarize this"]]
    assert again[0] == first[1] and again[2] == first[0]
    assert again[1].task == "Summarization"
    assert cache.info()["cache"] == {"entries": 3, "max_entries": 3, "hits": 2, "misses": 3}


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    inner = Counting()
    cache = CachedClassifier(inner, max_entries=2)
    cache.classify(["a"])
    cache.classify(["b"])
    cache.classify(["a"])  # a is now the most recent
    cache.classify(["c"])  # evicts b
    cache.classify(["a", "b"])
    assert inner.calls[-1] == ["b"]
    with pytest.raises(ValueError, match="at least 1"):
        CachedClassifier(inner, max_entries=0)


class Broken:
    name = "onnx"

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        raise RuntimeError("model file is corrupt")

    def info(self) -> dict:
        return {"backend": "onnx", "provider": "CPUExecutionProvider"}


def test_a_failing_backend_falls_back_to_keyword_and_health_says_so(sqlite_api, caplog) -> None:
    import httpx

    sqlite_api.runtime.engine.classifier.classifier = Broken()  # the backend behind the guard
    r = httpx.post(f"{sqlite_api.base_url}/chat/completions",
                   json={"messages": [{"role": "user", "content": "Write a Python function"}]})
    assert r.status_code == 200 and r.headers["x-router-task"] == "Code Generation"
    assert sqlite_api.decisions()[0]["classifier_backend"] == "keyword (fallback)"
    assert "classifier onnx failed, using keyword fallback: model file is corrupt" in caplog.text
    health = httpx.get(f"{sqlite_api.url}/health?tiers=0")
    assert health.status_code == 503
    classifier = health.json()["classifier"]
    assert classifier["failures"] == 1 and "model file is corrupt" in classifier["last_error"]


def test_a_repeat_is_answered_inline_without_the_inference_thread() -> None:
    import asyncio
    import threading

    from router.classifier.guarded import GuardedClassifier

    class ThreadNoting(Counting):
        def __init__(self) -> None:
            super().__init__()
            self.threads: list[str] = []

        def classify(self, texts: Sequence[str]) -> list[Prediction]:
            self.threads.append(threading.current_thread().name)
            return super().classify(texts)

    inner = ThreadNoting()
    cache = CachedClassifier(inner)
    assert cache.peek("hello there") is None
    guarded = GuardedClassifier(cache)

    async def twice() -> tuple[Prediction, Prediction]:
        first, _ = await guarded.classify_one("hello there")
        again, _ = await guarded.classify_one("hello there")
        return first, again

    first, again = asyncio.run(twice())
    assert first == again and inner.threads == ["classifier_0"]  # one model call, in the worker thread
    assert cache.peek("hello there") == first and cache.info()["cache"]["hits"] == 2
