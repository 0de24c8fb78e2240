"""The classifier as the engine uses it: model backends behind a micro-batcher (inference
off the event loop), the keyword classifier inline, and the keyword classifier as the
fallback whenever a model backend fails, counted so /health can say so."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from router.classifier.batcher import DEFAULT_MAX_PENDING, ClassifierBusy, MicroBatcher
from router.classifier.keyword import KeywordClassifier
from router.classifier.prediction import Classifier, Prediction

log = logging.getLogger(__name__)

INLINE_CHARS = 2000  # longer prompts are classified off the event loop


class GuardedClassifier:
    def __init__(self, classifier: Classifier, *, max_pending: int = DEFAULT_MAX_PENDING, runs: int = 1) -> None:
        self.max_pending = max_pending
        self.runs = runs
        self.keyword = KeywordClassifier()
        self.failures = 0
        self.last_error: str | None = None
        self.classifier = classifier

    @property
    def classifier(self) -> Classifier:
        return self._classifier

    @classifier.setter
    def classifier(self, value: Classifier) -> None:
        # The keyword classifier takes microseconds and runs inline.
        self._classifier = value
        self._batcher = (None if value.info().get("backend") == "keyword"
                         else MicroBatcher(value, max_pending=self.max_pending, runs=self.runs))

    def info(self) -> dict[str, Any]:
        return {**self.classifier.info(), "failures": self.failures, "last_error": self.last_error}

    def record_failure(self, message: str) -> None:
        self.failures += 1
        self.last_error = message

    def classify(self, texts: Sequence[str]) -> tuple[list[Prediction], bool]:
        """Predictions, and whether the keyword fallback produced them."""
        try:
            return self.classifier.classify(texts), False
        except Exception as exc:  # a model backend failing must not fail the request
            return self._fall_back(texts, exc), True

    async def classify_one(self, text: str) -> tuple[Prediction, bool]:
        peek = getattr(self._classifier, "peek", None)
        if self._batcher is not None and peek is not None:
            hit = peek(text)  # a repeat costs a dictionary lookup, not a thread hop
            if hit is not None:
                return hit, False
        if self._batcher is None:
            # Short prompts take microseconds inline; a long one (bounded, but milliseconds) goes to a
            # worker thread so it never holds up the event loop.
            if len(text) <= INLINE_CHARS:
                predictions, fell_back = self.classify([text])
            else:
                predictions, fell_back = await asyncio.to_thread(self.classify, [text])
            return predictions[0], fell_back
        try:
            return await self._batcher.classify(text), False
        except ClassifierBusy:
            raise  # overload is the caller's to refuse (503), not a backend failure to hide
        except Exception as exc:
            return self._fall_back([text], exc)[0], True

    def _fall_back(self, texts: Sequence[str], exc: Exception) -> list[Prediction]:
        self.record_failure(f"{type(exc).__name__}: {exc}")
        log.error("classifier %s failed, using keyword fallback: %s", self.classifier.name, exc)
        return self.keyword.classify(texts)
