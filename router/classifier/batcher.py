"""Async micro-batching for model backends: prompts that arrive together are classified in
one call, in a worker thread, so the event loop never waits on inference and a busy
server gets batched throughput. A batch is whatever has queued while the runs were busy, so a
lone prompt starts at once and batches grow with the load (`max_wait_ms` > 0 also holds a
batch open that long for more). With `runs` > 1, that many batches are classified at once
(a one-thread ONNX session on each core beats one batch over both cores). The number of
prompts waiting is bounded: past the bound a prompt is refused at once (ClassifierBusy)
instead of queueing without end."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from router.classifier.prediction import Classifier, Prediction

DEFAULT_MAX_PENDING = 64


class ClassifierBusy(RuntimeError):
    """The classifier already has `max_pending` prompts waiting or in flight."""

    def __init__(self, pending: int) -> None:
        super().__init__(f"the classifier has {pending} prompts waiting; retry shortly")
        self.pending = pending


class MicroBatcher:
    def __init__(self, classifier: Classifier, *, max_batch: int = 32, max_wait_ms: float = 0.0,
                 max_pending: int = DEFAULT_MAX_PENDING, runs: int = 1) -> None:
        if runs < 1:
            raise ValueError("runs must be at least 1")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.max_pending = max_pending
        self.pending = 0  # prompts queued or being classified
        self.classifier = classifier
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[Prediction]]] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._idle = 0  # workers waiting for a prompt
        # One inference thread per run in flight: the backend uses its own intra-op threads.
        self.runs = runs
        self._executor = ThreadPoolExecutor(max_workers=runs, thread_name_prefix="classifier")
        self.batches = 0
        self.items = 0

    async def classify(self, text: str) -> Prediction:
        if self.pending >= self.max_pending:
            raise ClassifierBusy(self.pending)
        loop = asyncio.get_running_loop()
        if self._queue is None or all(worker.done() for worker in self._workers):
            # The first call, or the loop the workers ran on has ended: a fresh queue on this one.
            self._queue = asyncio.Queue()
            self._idle = 0
            self._workers = [loop.create_task(self._run()) for _ in range(self.runs)]
        elif any(worker.done() for worker in self._workers):
            # One worker failed: replace it, and let the others finish the batches they hold.
            self._workers = [loop.create_task(self._run()) if worker.done() else worker for worker in self._workers]
        assert self._queue is not None
        future: asyncio.Future[Prediction] = loop.create_future()
        self.pending += 1
        try:
            await self._queue.put((text, future))
            return await future
        finally:
            self.pending -= 1

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            self._idle += 1
            try:
                batch = [await self._queue.get()]
            finally:
                self._idle -= 1
            # With other runs idle, this one takes its share of what waits and leaves them the rest.
            self._drain(batch, -(-(1 + self._queue.qsize()) // (1 + self._idle)))
            if self.max_wait_s > 0:
                deadline = loop.time() + self.max_wait_s
                while len(batch) < self.max_batch and (timeout := deadline - loop.time()) > 0:
                    try:
                        batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                    except TimeoutError:
                        break
                self._drain(batch, self.max_batch)
            live = [(t, f) for t, f in batch if not f.cancelled()]
            if not live:
                continue
            try:
                predictions = await loop.run_in_executor(self._executor, self.classifier.classify,
                                                         [t for t, _ in live])
            except Exception as exc:  # every waiter learns of the failure; the engine falls back
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.items += len(live)
            for (_, future), prediction in zip(live, predictions, strict=True):
                if not future.done():
                    future.set_result(prediction)

    def _drain(self, batch: list[tuple[str, asyncio.Future[Prediction]]], size: int) -> None:
        """Whatever else is already waiting joins the batch, up to `size` (and max_batch)."""
        assert self._queue is not None
        while len(batch) < min(size, self.max_batch) and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        self._executor.shutdown(wait=False)
