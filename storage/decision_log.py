"""The decision log: one writer thread that commits decisions in groups.

Callers get a Future that resolves once their row is committed, so a response can
be held back until its decision is durable, while many requests share one commit.

- Text a database cannot hold is made storable on the way in (storage/storable.py).
- If the database is unreachable, rows wait in a bounded buffer and are written when it
  returns; only a full buffer refuses a row, and says so.
- A row the database refuses (a data error, not an outage) is isolated: the rest of its
  group is written, the refused row goes to the `dead_letters` table with its error (or,
  if even that fails, to a JSON-lines file beside the spill file), and the log moves on.
- At shutdown the buffer is drained for at most `drain_timeout_s`; rows the database has
  not taken by then are spilled to a local JSON-lines file, which the next start replays.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy import exc as sa_exc

from storage import rollups
from storage.decision_insert import DecisionInserter
from storage.models import DEAD_LETTERS, DECISIONS, utcnow
from storage.record import DecisionRecord
from storage.storable import storable, storable_text

log = logging.getLogger(__name__)

DEFAULT_SPILL_FILE = Path("decision-log-spill.jsonl")
# Errors that say the database is unreachable or busy, not that a row is bad: keep the rows and retry.
OUTAGE_ERRORS = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError,
                 ConnectionError)

Row = dict[str, Any]
Item = tuple[Row, Future[None]]


class LogBufferFull(RuntimeError):
    pass


class RowSpilled(RuntimeError):
    """The row was not written before shutdown; it is in the spill file for the next start."""


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
    dead_letters: int = 0  # rows the database refused, kept aside
    replayed: int = 0  # rows written from the last shutdown's spill file
    spilled: int = 0  # rows spilled at this shutdown
    sealed_until: datetime | None = None  # the hourly sums' watermark, as this log's last seal left it


class DecisionLog:
    def __init__(self, db: Engine, *, max_batch: int = 512, max_buffer: int = 50_000,
                 retry_s: float = 0.5, on_batch: Callable[[float], None] | None = None,
                 spill_path: Path | None = None, drain_timeout_s: float = 3.0, seal_every_s: float = 60.0) -> None:
        self.db = db
        self.on_batch = on_batch  # called with each successful group commit's duration in seconds
        self.max_batch = max_batch
        self.max_buffer = max_buffer
        self.retry_s = retry_s
        self.spill_path = spill_path or default_spill_path(db)
        self.drain_timeout_s = drain_timeout_s
        self._queue: queue.Queue[Item | None] = queue.Queue(maxsize=max_buffer)
        self._inserter = DecisionInserter(db)  # the writer thread's own connection
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._closing = threading.Event()
        self._deadline = float("inf")
        self._current: list[Item] = []  # the group being written
        self._written = 0
        self._batches = 0
        self._failures = 0
        self._dead_letters = 0
        self._replayed = 0
        self._spilled = 0
        self._healthy = True
        self._last_error: str | None = None
        self._last_batch_ms = 0.0
        self._max_batch_ms = 0.0
        self._thread.start()
        # Sums the hours that have ended for the console (storage/rollups.py), off the writer thread.
        self.seal_every_s = seal_every_s
        self._sealed_until: datetime | None = None
        self._sealer = threading.Thread(target=self._seal_loop, name="decision-rollups", daemon=True)
        if seal_every_s > 0:
            self._sealer.start()

    @property
    def dead_letter_file(self) -> Path:
        return self.spill_path.with_name(self.spill_path.stem + "-dead-letters.jsonl")

    @property
    def _replay_path(self) -> Path:
        return self.spill_path.with_name(self.spill_path.name + ".replaying")

    def submit(self, record: DecisionRecord) -> Future[None]:
        """Queue one decision; the Future resolves when it is committed (or set aside as a dead letter)."""
        future: Future[None] = Future()
        try:
            self._queue.put_nowait((storable(record.to_row()), future))
        except queue.Full:
            future.set_exception(LogBufferFull(f"decision log buffer is full ({self._queue.maxsize} rows)"))
        return future

    @property
    def queued(self) -> int:
        """Rows waiting in the buffer or being written."""
        return self._queue.qsize() + len(self._current)

    def stats(self) -> LogStats:
        return LogStats(self.queued, self._written, self._batches, self._failures,
                        self._healthy, self._last_error, self._last_batch_ms, self._max_batch_ms,
                        self._dead_letters, self._replayed, self._spilled, self._sealed_until)

    def close(self, timeout: float | None = None) -> int:
        """Write what is queued, for at most `timeout` seconds (drain_timeout_s by default), then stop.
        Rows not written by then are spilled to spill_path for the next start; returns how many."""
        timeout = self.drain_timeout_s if timeout is None else timeout
        self._deadline = time.monotonic() + timeout
        self._closing.set()
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=max(timeout, 0.01))
        self._thread.join(timeout + 1.0)
        if not self._thread.is_alive():
            self._inserter.close()
        left = [item for item in self._current if not item[1].done()]
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and not item[1].done():
                left.append(item)
        if left:
            self._spill(left)
        return len(left)

    # -- the writer thread ----------------------------------------------------------------

    def _seal_loop(self) -> None:
        while not self._closing.wait(self.seal_every_s):
            try:
                rollups.seal_due(self.db, stop=self._closing.is_set)
                with self.db.connect() as conn:
                    self._sealed_until = rollups.sealed_until(conn)
            except Exception as exc:  # an outage or a busy database: the next round catches up
                log.warning("hourly sums not sealed this round: %s", exc)

    def _run(self) -> None:
        self._replay()
        stop = False
        while not stop:
            item = self._queue.get()
            batch: list[Item] = []
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
            if batch and not self._write_group(batch):
                return  # out of time at shutdown: close() spills this group and the rest

    def _write_group(self, batch: list[Item]) -> bool:
        try:
            return self._write_until_done(batch)
        except Exception:  # a fault of ours must not stop the log: keep the unwritten rows for the next start
            log.exception("decision log: a group of %d rows failed unexpectedly", len(batch))
            self._current = []
            self._note_failure(RuntimeError("unexpected failure writing a group (see the log)"))
            self._spill([item for item in batch if not item[1].done()], "writing them failed unexpectedly")
            return True

    def _past_deadline(self) -> bool:
        return self._closing.is_set() and time.monotonic() >= self._deadline

    def _write_until_done(self, batch: list[Item]) -> bool:
        """Write the group, retrying through outages; False if shutdown's deadline came first."""
        self._current = batch
        while True:
            pending = [item for item in batch if not item[1].done()]
            if not pending:
                break
            if self._past_deadline():
                return False
            try:
                start = time.perf_counter()
                self._write_isolating(pending)
                elapsed = (time.perf_counter() - start) * 1000
                self._last_batch_ms = elapsed
                self._max_batch_ms = max(self._max_batch_ms, elapsed)
                if self.on_batch is not None:
                    self.on_batch(elapsed / 1000)
                break
            except OUTAGE_ERRORS as exc:  # the database is down or busy: keep the rows and retry
                self._note_failure(exc)
                log.warning("decision log write failed (%d rows kept, retrying): %s", len(pending), self._last_error)
                time.sleep(max(0.0, min(self.retry_s, self._deadline - time.monotonic())))
        self._healthy = True
        self._batches += 1
        self._current = []
        return True

    def _note_failure(self, exc: BaseException) -> None:
        self._failures += 1
        self._healthy = False
        self._last_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]

    def _write_isolating(self, items: list[Item]) -> None:
        """Write the group; if the database refuses it for its data, write row by row and set
        aside the rows it refuses. Outage errors propagate (the caller retries)."""
        try:
            self._write([row for row, _ in items])
        except OUTAGE_ERRORS:
            raise
        except Exception as exc:
            log.warning("decision log: the database refused a group of %d rows (%s); writing them one by one",
                        len(items), f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
        else:
            self._resolve(items)
            return
        for item in items:
            row, _ = item
            try:
                self._write([row])
            except OUTAGE_ERRORS:
                raise
            except Exception as exc:
                self._dead_letter(row, exc)
            self._resolve([item])

    def _resolve(self, items: list[Item]) -> None:
        for _, future in items:
            if not future.done():
                self._written += 1
                future.set_result(None)

    def _write(self, rows: list[Row]) -> None:
        for r in rows:  # the hourly sums need the time the table would otherwise fill in itself
            if r.get("created_at") is None:
                r["created_at"] = utcnow()
        try:
            if self._inserter.takes(rows) and not rollups.late(rows, utcnow()):
                self._inserter.write(rows)
            else:  # rare: late rows join the hourly sums in the same transaction
                with self.db.begin() as conn:
                    _insert(conn, rows)
        except sa_exc.IntegrityError:
            # A retried group may have been committed before the connection broke: write what is missing.
            ids = [r["id"] for r in rows]
            with self.db.begin() as conn:
                present = set(conn.execute(select(DECISIONS.c.id).where(DECISIONS.c.id.in_(ids))).scalars())
                missing = [r for r in rows if r["id"] not in present]
                if missing:
                    _insert(conn, missing)

    def _dead_letter(self, row: Row, exc: Exception) -> None:
        error = storable_text(f"{type(exc).__name__}: {exc}".splitlines()[0][:2000])
        letter = {"decision_id": str(row.get("id"))[:32], "error": error,
                  "record": json.dumps(row, default=_json_default, ensure_ascii=True)}
        self._dead_letters += 1
        log.error("decision %s refused by the database, kept as a dead letter: %s", letter["decision_id"], error)
        try:
            with self.db.begin() as conn:
                conn.execute(insert(DEAD_LETTERS), [letter])
        except Exception as table_exc:
            log.error("dead letter could not be stored (%s); appending it to %s", table_exc, self.dead_letter_file)
            try:
                with self.dead_letter_file.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(letter, ensure_ascii=True) + "\n")
            except OSError as file_exc:  # the last place left is the server's own log
                log.critical("dead letter not kept (%s): %s", file_exc, json.dumps(letter, ensure_ascii=True))

    # -- spill at shutdown, replay at start -----------------------------------------------

    @contextlib.contextmanager
    def _spill_lock(self) -> Iterator[None]:
        """Held while spilling or replaying: the worker processes of one server share the spill
        file, and neither may replay rows twice nor interleave their lines."""
        with self.spill_path.with_name(self.spill_path.name + ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _spill(self, items: list[Item], why: str = "the database did not take them before shutdown") -> None:
        try:
            with self._spill_lock(), self.spill_path.open("a", encoding="utf-8") as f:
                for row, _ in items:
                    f.write(json.dumps(row, default=_json_default, ensure_ascii=False) + "\n")
        except OSError as exc:
            log.error("decision log: %d rows could not be written or spilled to %s: %s", len(items),
                      self.spill_path, exc)
            for _, future in items:
                if not future.done():
                    future.set_exception(RuntimeError(f"decision not written: {exc}"))
            return
        self._spilled += len(items)
        log.warning("decision log: %s; spilled %d rows to %s, the next start writes them", why, len(items),
                    self.spill_path.resolve())
        for _, future in items:
            if not future.done():
                future.set_exception(RowSpilled(f"decision spilled to {self.spill_path}"))

    def _replay(self) -> None:
        """Write the rows the last shutdown spilled (and any an interrupted replay left)."""
        try:
            with self._spill_lock():
                self._replay_locked()
        except OSError as exc:
            log.error("decision log: cannot lock the spill file %s: %s", self.spill_path, exc)

    def _replay_locked(self) -> None:
        replay = self._replay_path
        try:
            if self.spill_path.exists():
                with self.spill_path.open(encoding="utf-8") as src, replay.open("a", encoding="utf-8") as dst:
                    dst.write(src.read())
                self.spill_path.unlink()
            if not replay.exists():
                return
            rows = [_from_json(line) for line in replay.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, ValueError) as exc:
            log.error("decision log: cannot read the spill file %s: %s", replay, exc)
            return
        log.warning("decision log: writing %d rows spilled at the last shutdown (%s)", len(rows), replay.resolve())
        for start in range(0, len(rows), self.max_batch):
            items: list[Item] = [(row, Future()) for row in rows[start:start + self.max_batch]]
            if not self._write_until_done(items):
                return  # shut down again before the replay finished: the file stays for the next start
            self._replayed += len(items)
        replay.unlink()
        log.warning("decision log: %d spilled rows written", len(rows))


def _insert(conn: Connection, rows: list[Row]) -> None:
    """Insert decisions; those that arrive late join the hourly sums in the same transaction."""
    conn.execute(insert(DECISIONS), rows)
    if late := rollups.late(rows, utcnow()):
        rollups.add(conn, late)


def default_spill_path(db: Engine) -> Path:
    """Beside a SQLite file; in the working directory for a server database."""
    if db.url.get_backend_name() == "sqlite" and db.url.database not in (None, "", ":memory:"):
        return Path(f"{db.url.database}.spill.jsonl")
    return DEFAULT_SPILL_FILE


def _json_default(value: Any) -> Any:
    """Spill files and dead letters take any value: a row kept as text beats a writer thread that dies."""
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    try:
        return float(value)  # numpy's numbers
    except (TypeError, ValueError):
        return repr(value)


def _from_json(line: str) -> Row:
    row: Row = json.loads(line)
    created = row.get("created_at")
    if isinstance(created, dict) and "$datetime" in created:
        row["created_at"] = datetime.fromisoformat(created["$datetime"])
    return row
