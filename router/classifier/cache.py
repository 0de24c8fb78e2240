"""A bounded cache in front of any classifier: the same text gets the same prediction
without running the model again. Long texts are keyed by a digest, so the cache's memory
stays bounded however large the prompts."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from router.classifier.prediction import Classifier, Prediction

LONGEST_KEY = 512  # characters; a longer text is keyed by its digest


def cache_key(text: str) -> str | bytes:
    if len(text) <= LONGEST_KEY:
        return text
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).digest()


class CachedClassifier:
    def __init__(self, inner: Classifier, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.inner = inner
        self.name = inner.name
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str | bytes, Prediction] = OrderedDict()
        self._lock = threading.Lock()

    def peek(self, text: str) -> Prediction | None:
        """The cached prediction, counted as a hit, or None; never runs the model (the engine
        answers hits inline, without the hop to the inference thread)."""
        with self._lock:
            hit = self._recall(cache_key(text))
            if hit is not None:
                self.hits += 1
        return hit

    def _recall(self, key: str | bytes) -> Prediction | None:
        """The entry for `key`, marked most recently used (the caller holds the lock)."""
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
        return hit

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        found: dict[int, Prediction] = {}
        keys = [cache_key(t) for t in texts]
        with self._lock:
            for i, key in enumerate(keys):
                hit = self._recall(key)
                if hit is not None:
                    found[i] = hit
        missing = [i for i in range(len(texts)) if i not in found]
        if missing:  # one batched call for everything not cached
            for i, prediction in zip(missing, self.inner.classify([texts[i] for i in missing]), strict=True):
                found[i] = prediction
            with self._lock:
                for i in missing:
                    self._entries[keys[i]] = found[i]
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        with self._lock:
            self.hits += len(texts) - len(missing)
            self.misses += len(missing)
        return [found[i] for i in range(len(texts))]

    def info(self) -> dict[str, Any]:
        return {**self.inner.info(), "cache": {"entries": len(self._entries), "max_entries": self.max_entries,
                                               "hits": self.hits, "misses": self.misses}}
