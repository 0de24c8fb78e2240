"""Micro-batching of model backends: concurrent prompts share a call, each gets its own
prediction, and a failure reaches every waiter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from router.classifier import KeywordClassifier, Prediction
from router.classifier.batcher import MicroBatcher


class Slow:
    """A backend that takes 20 ms per call, whatever the batch size, as a model roughly does."""

    name = "slow"

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[int] = []
        self.fail = fail
        self.inner = KeywordClassifier()

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        time.sleep(0.02)
        self.calls.append(len(texts))
        if self.fail:
            raise RuntimeError("inference failed")
        return self.inner.classify(texts)

    def info(self) -> dict:
        return {"backend": "slow"}


def test_concurrent_prompts_are_batched_and_answered_in_order() -> None:
    backend = Slow()
    batcher = MicroBatcher(backend, max_batch=16, max_wait_ms=5)
    texts = [f"Write a Python function number {i}" if i % 2 else f"Summarize note {i}" for i in range(40)]

    async def run() -> list[Prediction]:
        return await asyncio.gather(*(batcher.classify(t) for t in texts))

    start = time.perf_counter()
    predictions = asyncio.run(run())
    elapsed = time.perf_counter() - start
    assert [p.task for p in predictions] == [p.task for p in KeywordClassifier().classify(texts)]
    assert sum(backend.calls) == 40 and len(backend.calls) <= 5 and max(backend.calls) <= 16
    assert elapsed < 40 * 0.02 / 2  # far faster than one call per prompt
    batcher.close()


def test_a_failure_reaches_every_waiter() -> None:
    batcher = MicroBatcher(Slow(fail=True), max_wait_ms=5)

    async def run() -> list:
        return await asyncio.gather(*(batcher.classify(f"text {i}") for i in range(5)), return_exceptions=True)

    results = asyncio.run(run())
    assert all(isinstance(r, RuntimeError) and str(r) == "inference failed" for r in results)
    batcher.close()


def test_the_event_loop_keeps_running_during_inference() -> None:
    batcher = MicroBatcher(Slow(), max_wait_ms=0)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    async def run() -> None:
        task = asyncio.create_task(ticker())
        await batcher.classify("hello")
        task.cancel()

    asyncio.run(run())
    assert ticks >= 5  # the 20 ms inference ran off the loop
    batcher.close()


def test_max_batch_must_hold() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(Slow(), max_batch=0)


def test_past_the_bound_a_prompt_is_refused_at_once_not_queued() -> None:
    from router.classifier.batcher import ClassifierBusy

    backend = Slow()
    batcher = MicroBatcher(backend, max_batch=1, max_wait_ms=0, max_pending=3)

    async def main() -> list[object]:
        tasks = [asyncio.create_task(batcher.classify(f"prompt {i}")) for i in range(8)]
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    busy = [r for r in results if isinstance(r, ClassifierBusy)]
    assert len(busy) == 5 and "3 prompts waiting" in str(busy[0])
    assert all(isinstance(r, Prediction) for r in results[:3])
    assert batcher.pending == 0  # every slot given back, answered or not
    assert asyncio.run(batcher.classify("after the rush")).task  # room again
    batcher.close()
    with pytest.raises(ValueError, match="max_pending"):
        MicroBatcher(backend, max_pending=0)


class Rendezvous:
    """A backend whose calls only return once two of them are in flight together."""

    def __init__(self) -> None:
        import threading

        self.barrier = threading.Barrier(2, timeout=5)
        self.inner = KeywordClassifier()

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        self.barrier.wait()  # raises BrokenBarrierError if the other run never comes
        return self.inner.classify(texts)

    def info(self) -> dict:
        return {"backend": "rendezvous"}


def test_with_two_runs_two_batches_are_classified_at_once() -> None:
    backend = Rendezvous()
    batcher = MicroBatcher(backend, max_batch=1, max_wait_ms=0, runs=2)

    async def main() -> list[Prediction]:
        return await asyncio.gather(batcher.classify("Summarize this"), batcher.classify("Write a poem"))

    try:
        first, second = asyncio.run(main())
    finally:
        batcher.close()
    assert (first.task, second.task) == ("Summarization", "Text Generation")
    with pytest.raises(ValueError, match="runs"):
        MicroBatcher(backend, runs=0)


def test_what_queued_while_the_run_was_busy_is_the_next_batch_without_waiting() -> None:
    backend = Slow()
    batcher = MicroBatcher(backend)  # max_wait_ms 0: no batch is held open for more

    async def main() -> list[Prediction]:
        return await asyncio.gather(*(batcher.classify(f"Summarize note {i}") for i in range(40)))

    try:
        predictions = asyncio.run(main())
    finally:
        batcher.close()
    assert len(predictions) == 40 and backend.calls == [32, 8]


class Recording:
    """A fast backend that notes each batch's size."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.inner = KeywordClassifier()

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        self.calls.append(len(texts))
        return self.inner.classify(texts)

    def info(self) -> dict:
        return {"backend": "recording"}


def test_idle_runs_share_what_waits() -> None:
    backend = Recording()
    batcher = MicroBatcher(backend, runs=2)

    async def main() -> None:
        await batcher.classify("warm up: both runs are now waiting")
        backend.calls.clear()
        await asyncio.gather(*(batcher.classify(f"Summarize note {i}") for i in range(8)))

    try:
        asyncio.run(main())
    finally:
        batcher.close()
    assert backend.calls == [4, 4]  # not one batch of 8 while the other run idles
