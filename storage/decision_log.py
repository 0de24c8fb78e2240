"""The decision log: one writer thread that commits decisions in groups.

Callers get a Future that resolves once their row is committed, so a response can
be held back until its decision is durable, while many requests share one commit.
If the database is unreachable, rows wait in a bounded buffer and are written when
it returns; only a full buffer refuses a row, and says so.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from storage.models import Decision

log = logging.getLogger(__name__)

DECISIONS = Decision.__table__  # type: ignore[attr-defined]
DECISION_COLUMNS = frozenset(c.name for c in DECISIONS.columns)


class LogBufferFull(RuntimeError):
    pass


@dataclass
class LogStats:
    queued: int  # waiting in the buffer or being written
    written: int
    batches: int
    failures: int
    healthy: bool
    last_error: str | None
    last_batch_ms: float
    max_batch_ms: float


class DecisionLog:
    def __init__(self, engine: Engine, *, max_batch: int = 512, max_buffer: int = 50_000,
                 retry_s: float = 0.5, on_batch: Callable[[float], None] | None = None) -> None:
        self.engine = engine
        self.on_batch = on_batch  # called with each successful group commit's duration in seconds
        self.max_batch = max_batch
        self.max_buffer = max_buffer
        self.retry_s = retry_s
        self._queue: queue.Queue[tuple[dict[str, Any], Future[None]] | None] = queue.Queue(maxsize=max_buffer)
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._closing = threading.Event()
        self._written = 0
        self._in_flight = 0  # rows taken off the queue and not yet committed
        self._batches = 0
        self._failures = 0
        self._healthy = True
        self._last_error: str | None = None
        self._last_batch_ms = 0.0
        self._max_batch_ms = 0.0
        self._thread.start()

    def submit(self, record: Mapping[str, Any]) -> Future[None]:
        """Queue one decision row; the Future resolves when it is committed."""
        unknown = set(record) - DECISION_COLUMNS
        if unknown:
            raise ValueError(f"unknown decision field(s): {sorted(unknown)}")
        future: Future[None] = Future()
        try:
            self._queue.put_nowait((dict(record), future))
        except queue.Full:
            future.set_exception(LogBufferFull(f"decision log buffer is full ({self._queue.maxsize} rows)"))
        return future

    def stats(self) -> LogStats:
        return LogStats(self._queue.qsize() + self._in_flight, self._written, self._batches, self._failures,
                        self._healthy, self._last_error, self._last_batch_ms, self._max_batch_ms)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (waiting up to `timeout`), then stop the thread."""
        self._closing.set()
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            batch: list[tuple[dict[str, Any], Future[None]]] = []
            if item is None:
                stop = True
            else:
                batch.append(item)
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            if batch:
                self._write_until_done(batch)

    def _write_until_done(self, batch: list[tuple[dict[str, Any], Future[None]]]) -> None:
        rows = [row for row, _ in batch]
        self._in_flight = len(rows)
        while True:
            try:
                start = time.perf_counter()
                self._write(rows)
                elapsed = (time.perf_counter() - start) * 1000
                self._last_batch_ms = elapsed
                self._max_batch_ms = max(self._max_batch_ms, elapsed)
                if self.on_batch is not None:
                    self.on_batch(elapsed / 1000)
                break
            except Exception as exc:  # the database is down or refusing: keep the rows and retry
                self._failures += 1
                self._healthy = False
                self._last_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                log.warning("decision log write failed (%d rows kept, retrying): %s", len(rows), self._last_error)
                if self._closing.is_set() and self._queue.qsize() == 0 and self._failures > 20:
                    for _, future in batch:
                        future.set_exception(RuntimeError(f"decision not written: {self._last_error}"))
                    self._in_flight = 0
                    return
                time.sleep(self.retry_s)
        self._healthy = True
        self._written += len(rows)
        self._in_flight = 0
        self._batches += 1
        for _, future in batch:
            future.set_result(None)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(DECISIONS), rows)
        except IntegrityError:
            # A retried batch may have been committed before the connection broke: write what is missing.
            ids = [r["id"] for r in rows]
            with self.engine.begin() as conn:
                present = set(conn.execute(select(DECISIONS.c.id).where(DECISIONS.c.id.in_(ids))).scalars())
                missing = [r for r in rows if r["id"] not in present]
                if missing:
                    conn.execute(insert(DECISIONS), missing)
