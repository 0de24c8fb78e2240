"""The decision log never blocks and never loses a row: text a database cannot hold is made
storable, a row the database still refuses becomes a dead letter while the rest of its group
is written, and rows not written by shutdown are spilled and replayed at the next start."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from concurrent.futures import wait
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select

from storage.db import make_engine, migrate
from storage.decision_log import DecisionLog, RowSpilled
from storage.models import DEAD_LETTERS
from storage.queries import get_decision, list_decisions
from storage.record import DecisionRecord
from storage.storable import NUL_STANDIN, SURROGATE_STANDIN, storable
from tests.conftest import Api, Simulator, free_port, write_config
from tests.test_fault_tolerance import Proxy, start_serve

ROOT = Path(__file__).resolve().parent.parent
QA = [{"role": "user", "content": "What is the capital of France?"}]


def record(**fields: object) -> DecisionRecord:
    return DecisionRecord.from_mapping({"id": uuid.uuid4().hex, "request_id": "r", "source": "api",
                                        "status": "ok", **fields})


@pytest.fixture
def db(database_url: str):  # type: ignore[no-untyped-def]
    db = make_engine(database_url)
    migrate(db)
    yield db
    db.dispose()


def test_storable_keeps_ordinary_text_and_replaces_only_what_cannot_be_stored() -> None:
    assert storable("日本語 and ✓ emoji 🎉") == "日本語 and ✓ emoji 🎉"
    assert storable("a\x00b\ud800c") == f"a{NUL_STANDIN}b{SURROGATE_STANDIN}c"
    assert storable({"k\x00": ["\udfff", 1, None]}) == {f"k{NUL_STANDIN}": [SURROGATE_STANDIN, 1, None]}


def test_nul_and_lone_surrogates_are_stored(db) -> None:  # type: ignore[no-untyped-def]
    log = DecisionLog(db)
    try:
        rec = record(prompt="a\x00b\ud83dc", task_probs={"Open\x00QA": 1.0}, error="x\x00",
                     attempts=[{"tier": "t", "error": "\ud800"}])
        log.submit(rec).result(10)
        row = get_decision(db, rec.id)
        assert row is not None and row.prompt == f"a{NUL_STANDIN}b{SURROGATE_STANDIN}c"
        assert row.task_probs == {f"Open{NUL_STANDIN}QA": 1.0} and row.attempts == [{"tier": "t", "error": "\ufffd"}]
        assert log.stats().dead_letters == 0
    finally:
        log.close()


def test_a_refused_row_is_a_dead_letter_and_the_rest_of_its_group_is_written(db) -> None:  # type: ignore[no-untyped-def]
    log = DecisionLog(db)
    try:
        good = [record(task="Open QA") for _ in range(20)]
        bad = record(status=None)  # NOT NULL: the database refuses it on any backend
        futures = [log.submit(r) for r in good[:10]] + [log.submit(bad)] + [log.submit(r) for r in good[10:]]
        done, pending = wait(futures, timeout=10)
        assert not pending and all(f.exception() is None for f in done)
        ids = {d.id for d in list_decisions(db, limit=100)}
        assert ids == {r.id for r in good}
        with db.connect() as conn:
            letters = conn.execute(select(DEAD_LETTERS)).mappings().all()
        assert [letter["decision_id"] for letter in letters] == [bad.id]
        assert "null" in letters[0]["error"].lower()
        assert json.loads(letters[0]["record"])["id"] == bad.id
        assert log.stats().dead_letters == 1 and log.stats().healthy
        start = time.perf_counter()
        log.submit(record()).result(5)  # the log did not stall on it
        assert time.perf_counter() - start < 2
    finally:
        log.close()


def test_a_value_no_column_can_hold_is_a_dead_letter_and_the_writer_goes_on(db) -> None:  # type: ignore[no-untyped-def]
    log = DecisionLog(db)
    try:
        bad = record(attempts=[{"tier": "t", "handle": object()}])  # not JSON: neither the column nor a spill takes it
        good = record(task="Open QA")
        futures = [log.submit(bad), log.submit(good)]
        done, pending = wait(futures, timeout=10)
        assert not pending and all(f.exception() is None for f in done)
        assert get_decision(db, good.id) is not None
        with db.connect() as conn:
            letter = conn.execute(select(DEAD_LETTERS)).mappings().one()
        kept = json.loads(letter["record"])
        assert kept["id"] == bad.id and kept["attempts"][0]["tier"] == "t" and "object" in kept["attempts"][0]["handle"]
        log.submit(record()).result(5)
    finally:
        log.close()


def test_a_failing_batch_callback_does_not_stop_the_writer(db) -> None:  # type: ignore[no-untyped-def]
    def broken_metrics(seconds: float) -> None:
        raise ValueError("metrics broke")

    log = DecisionLog(db, on_batch=broken_metrics)
    try:
        first, second = record(), record()
        log.submit(first).result(5)
        log.submit(second).result(5)  # the writer thread is still there
        assert get_decision(db, first.id) is not None and get_decision(db, second.id) is not None
        assert log.stats().failures >= 1
    finally:
        log.close()


def test_rows_left_at_shutdown_are_spilled_and_written_by_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "spill.db"
    url = f"sqlite:///{path}"
    migrate(make_engine(url))
    locked = create_engine(url, connect_args={"timeout": 0.05, "check_same_thread": False})
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # the database refuses writes until released
    log = DecisionLog(locked, retry_s=0.05, spill_path=tmp_path / "spill.jsonl")
    records = [record(prompt=f"p{i}") for i in range(25)]
    futures = [log.submit(r) for r in records]
    start = time.perf_counter()
    assert log.close(timeout=0.5) == 25
    assert time.perf_counter() - start < 2.5
    assert all(isinstance(f.exception(timeout=0), RowSpilled) for f in futures)
    assert len((tmp_path / "spill.jsonl").read_text().splitlines()) == 25
    locker.execute("ROLLBACK")
    locker.close()

    db = make_engine(url)
    second = DecisionLog(db, spill_path=tmp_path / "spill.jsonl")
    try:
        deadline = time.monotonic() + 10
        while second.stats().replayed < 25 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.stats().replayed == 25
        assert {d.id for d in list_decisions(db, limit=100)} == {r.id for r in records}
        assert not (tmp_path / "spill.jsonl").exists() and not (tmp_path / "spill.jsonl.replaying").exists()
    finally:
        second.close()


def _serve(tmp_path: Path, db_url: str, config: Path, port: int, **env: str) -> subprocess.Popen[str]:
    # At the default log level, so that what a user sees at start and at shutdown is checked.
    return start_serve(tmp_path, db_url, config, port, log_level="info", capture=True, ROUTER_SIMULATOR="off",
                       ROUTER_SPILL_FILE=str(tmp_path / "spill.jsonl"), **env)


def _stop(proc: subprocess.Popen[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return time.perf_counter() - start, out


def test_an_idle_server_stops_in_under_two_seconds(tmp_path: Path, sqlite_url: str, simulator: Simulator) -> None:
    proc = _serve(tmp_path, sqlite_url, write_config(tmp_path, base_url=simulator.base_url), free_port())
    took, out = _stop(proc)
    assert proc.returncode in (0, -signal.SIGTERM), out  # uvicorn re-raises the signal once it has shut down
    assert took < 2.0, f"idle shutdown took {took:.2f} s"
    assert "alembic" not in out.lower()  # migrations are quiet at start


def test_database_cut_off_sigterm_restore_restart_loses_nothing(tmp_path: Path, postgres_url: str,
                                                                 simulator: Simulator) -> None:
    proxy = Proxy(("127.0.0.1", 5432))
    url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    config = write_config(tmp_path, base_url=simulator.base_url)
    port = free_port()
    proc = _serve(tmp_path, url, config, port, ROUTER_DURABILITY_TIMEOUT_S="0.3", ROUTER_DRAIN_TIMEOUT_S="1")
    answered = []
    try:
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"messages": QA}, timeout=10)
        answered.append(r.headers["x-router-decision-id"])
        proxy.cut()
        for _ in range(8):
            r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"messages": QA}, timeout=10)
            assert r.status_code == 200, r.text
            answered.append(r.headers["x-router-decision-id"])
        took, out = _stop(proc)
        assert took < 5, f"shutdown with the database down took {took:.1f} s"
        assert "spilled" in out and (tmp_path / "spill.jsonl").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.restore()
    proc = _serve(tmp_path, url, config, port)
    try:
        db = make_engine(url)
        deadline = time.monotonic() + 15
        logged: set[str] = set()
        while time.monotonic() < deadline:
            logged = {d.id for d in list_decisions(db, limit=1000)}
            if set(answered) <= logged:
                break
            time.sleep(0.2)
        assert set(answered) <= logged, f"{len(set(answered) - logged)} answered requests have no row"
        db.dispose()
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def unicode_api(tmp_path_factory: pytest.TempPathFactory, simulator_server: Simulator):  # type: ignore[no-untyped-def]
    from tests.conftest import make_runtime

    tmp = tmp_path_factory.mktemp("unicode")
    made = []
    for name in ("sqlite", "postgres"):
        url = f"sqlite:///{tmp / 'u.db'}" if name == "sqlite" else os.environ.get(
            "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
        made.append(Api(make_runtime(url, write_config(tmp), simulator_server)))
    yield made
    for api in made:
        api.server.stop()
        api.runtime.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(codec=None, min_codepoint=0), min_size=1, max_size=40).filter(str.strip),
       which=st.sampled_from([0, 1]))
def test_any_unicode_prompt_is_answered_and_logged(unicode_api: list[Api], text: str, which: int) -> None:
    api = unicode_api[which]
    body = json.dumps({"messages": [{"role": "user", "content": text}]}, ensure_ascii=True)  # lone surrogates too
    start = time.perf_counter()
    r = httpx.post(f"{api.base_url}/chat/completions", content=body, headers={"content-type": "application/json"},
                   timeout=10)
    assert r.status_code in (200, 400), r.text
    assert time.perf_counter() - start < 3  # never waits out the durability timeout on a refused row
    decision = get_decision(api.runtime.db, r.headers["x-router-decision-id"])
    assert decision is not None
    if r.status_code == 200:
        assert decision.prompt == storable(text)
        assert decision.prompt_hash == hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
