"""Storage on real SQLite files and the local Postgres: migrations, immutable policy
versions with activation and rollback, and the group-commit decision log."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from concurrent.futures import wait

import pytest
from sqlalchemy import create_engine, inspect, text

from router import policy_admin
from router.config import DEFAULT_CONFIG, load_seed
from router.policy import PolicyError
from storage import policies as store
from storage.db import describe, make_engine, migrate
from storage.decision_log import DecisionLog, LogBufferFull
from storage.policies import PolicyNotFound
from storage.queries import get_decision, list_decisions
from storage.record import DecisionRecord

SEED = load_seed(DEFAULT_CONFIG)
DOC = SEED.policies["task-complexity"].to_document()


@pytest.fixture
def db(database_url: str):
    db = make_engine(database_url)
    migrate(db)
    yield db
    db.dispose()


def row(**fields) -> dict:
    return {"id": uuid.uuid4().hex, "request_id": "r", "source": "api", "status": "ok", **fields}


def record(**fields) -> DecisionRecord:
    return DecisionRecord.from_mapping(row(**fields))


def test_migrations_create_every_table_and_are_idempotent(db) -> None:
    migrate(db)  # a second run is a no-op
    tables = set(inspect(db).get_table_names())
    assert {"decisions", "reviews", "policy_versions", "policy_activations", "api_keys", "dead_letters",
            "alembic_version"} <= tables
    with db.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0005"
    # The migrations build exactly the columns the models declare (a missing migration fails here).
    from sqlmodel import SQLModel

    for table in SQLModel.metadata.sorted_tables:
        assert {c["name"] for c in inspect(db).get_columns(table.name)} == set(table.columns.keys()), table.name


def test_versions_are_immutable_and_numbered(db) -> None:
    v1 = policy_admin.save(db, DOC, created_by="ana", comment="first")
    changed = {**DOC, "default_tier": "llama-3-8b"}
    v2 = policy_admin.save(db, changed, created_by="bo")
    assert (v1.version, v2.version) == (1, 2)
    assert store.get_version(db, "task-complexity", 1).document == DOC  # v1 untouched
    assert [v.created_by for v in store.list_versions(db, "task-complexity")] == ["ana", "bo"]
    assert "+default_tier: llama-3-8b" in policy_admin.diff(db, "task-complexity", 1, 2)


def test_invalid_documents_never_reach_the_database(db) -> None:
    with pytest.raises(PolicyError, match="default_tier"):
        policy_admin.save(db, {**DOC, "default_tier": "nope"})
    assert store.policy_names(db) == []


def test_activate_and_roll_back(db) -> None:
    policy_admin.save(db, DOC, activate=True)
    policy_admin.save(db, {**DOC, "default_tier": "llama-3-8b"}, activate=True)
    policy_admin.save(db, {**DOC, "default_tier": "nemotron-super-49b"})  # saved, not active
    assert store.active_versions(db) == {"task-complexity": 2}
    marker = store.activation_marker(db)
    rolled = policy_admin.rollback(db, "task-complexity", by="ops")
    assert rolled.version == 1 and store.active_versions(db) == {"task-complexity": 1}
    assert store.activation_marker(db) > marker
    history = store.activation_history(db, "task-complexity")
    assert [h.version for h in history] == [1, 2, 1] and history[0].comment == "rollback from v2"
    policy_admin.activate(db, "task-complexity", 3)
    assert store.active_versions(db) == {"task-complexity": 3}
    with pytest.raises(PolicyNotFound, match="no version 9"):
        policy_admin.activate(db, "task-complexity", 9)


def test_rollback_needs_an_earlier_version(db) -> None:
    policy_admin.save(db, DOC, activate=True)
    with pytest.raises(PolicyNotFound, match="no earlier active version"):
        policy_admin.rollback(db, "task-complexity")


def test_seed_only_adds_unknown_names(db) -> None:
    docs = {n: p.to_document() for n, p in SEED.policies.items()}
    assert sorted(store.seed(db, docs)) == ["economy", "quality-tolerance", "task-complexity"]
    policy_admin.save(db, {**DOC, "default_tier": "llama-3-8b"}, activate=True)
    assert store.seed(db, docs) == []
    assert store.active_versions(db) == {"economy": 1, "quality-tolerance": 1, "task-complexity": 2}


def test_decision_log_group_commits_and_resolves_futures(db) -> None:
    log = DecisionLog(db)
    try:
        futures = [log.submit(record(task_probs={"Open QA": 1.0}, attempts=[{"tier": "a"}])) for _ in range(300)]
        wait(futures, timeout=20)
        assert all(f.done() and f.exception() is None for f in futures)
        stats = log.stats()
        assert stats.written == 300 and stats.batches < 300  # grouped
        rows = list_decisions(db, limit=1000)
        assert len(rows) == 300 and rows[0].task_probs == {"Open QA": 1.0}
    finally:
        log.close()
    with pytest.raises(ValueError, match="unknown decision field"):
        record(colour="red")


def test_json_columns_take_numpy_scores_and_japanese_text(db) -> None:
    import numpy as np

    log = DecisionLog(db)
    try:
        probs = {"Open QA": np.float32(0.75), "Rewrite": np.float64(0.25)}
        attempts = [{"tier": "小", "error": "接続できません", "ms": np.float32(1.5)}]
        log.submit(record(id="np", task_probs=probs, attempts=attempts, complexity_dims={1: 0.5})).result(timeout=20)
    finally:
        log.close()
    stored = get_decision(db, "np")
    assert stored is not None and stored.task_probs == {"Open QA": 0.75, "Rewrite": 0.25}
    assert stored.attempts == [{"tier": "小", "error": "接続できません", "ms": 1.5}]
    assert stored.complexity_dims == {"1": 0.5}


def test_decision_log_close_flushes(db) -> None:
    log = DecisionLog(db)
    ids = [log.submit(record()) for _ in range(50)]
    log.close()
    assert all(f.done() for f in ids)
    assert len(list_decisions(db, limit=100)) == 50


def test_database_outage_buffers_and_writes_later(tmp_path) -> None:
    path = tmp_path / "outage.db"
    db = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.05, "check_same_thread": False})
    migrate(db)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # the database refuses writes until released
    log = DecisionLog(db, retry_s=0.05, max_buffer=20)
    try:
        futures = [log.submit(record()) for _ in range(5)]
        time.sleep(0.5)
        stats = log.stats()
        assert not stats.healthy and stats.failures > 0 and "locked" in stats.last_error
        assert not any(f.done() for f in futures)
        many = [log.submit(record()) for _ in range(40)]
        refused = [f for f in many if f.done() and isinstance(f.exception(), LogBufferFull)]
        assert refused, "a full buffer refuses rows and says so"
        locker.execute("ROLLBACK")
        wait(futures, timeout=10)
        assert all(f.exception() is None for f in futures)
        kept = [f for f in many if f not in refused]
        wait(kept, timeout=10)
        assert log.stats().healthy
        assert len(list_decisions(db, limit=1000)) == len(futures) + len(kept)
    finally:
        locker.close()
        log.close()
        db.dispose()


def test_a_batch_committed_before_a_retry_is_not_duplicated(db) -> None:
    first = row()
    log = DecisionLog(db)
    try:
        log.submit(DecisionRecord.from_mapping(first)).result(10)
        log._write([first, row()])  # the same row again, as after a lost commit acknowledgement
        assert len(list_decisions(db, limit=10)) == 2
        assert get_decision(db, first["id"]) is not None
    finally:
        log.close()


def test_describe_hides_credentials() -> None:
    assert describe(make_engine("postgresql+psycopg://u:secret@db.example:5433/routes")) == \
        "Postgres db.example:5433/routes"
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        make_engine("mysql://x@y/z")


def test_concurrent_submitters(db) -> None:
    log = DecisionLog(db)
    futures = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            f = log.submit(record())
            with lock:
                futures.append(f)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait(futures, timeout=20)
    log.close()
    assert len(list_decisions(db, limit=1000)) == 200


def test_the_writers_own_insert_stores_what_sqlalchemys_insert_stores(db) -> None:
    from sqlalchemy import insert, select

    from storage.decision_insert import DecisionInserter
    from storage.models import DECISIONS

    def full(**fields) -> dict:  # every column set, as the engine's records are
        rec = record(conversation_id="c", turn=2, stream=True, policy_name="p", policy_version=3, task="Rewrite",
                     confidence=0.5, task_probs={"Rewrite": 0.5, "日本語": 0.25}, complexity_dims={"reasoning": 0.1},
                     difficulty=0.3, tier_success={"small": 0.7}, attempts=[{"tier": "t", "ms": 1.5, "error": None}],
                     fallback=True, usage_estimated=True, cost_usd=1e-6, prompt="もっと簡潔に", response="ok", **fields)
        return rec.to_row()

    ours, theirs = full(), full()
    inserter = DecisionInserter(db)
    try:
        inserter.write([ours])
    finally:
        inserter.close()
    with db.begin() as conn:
        conn.execute(insert(DECISIONS), [theirs])
    with db.connect() as conn:
        got = {r.id: r._asdict() for r in conn.execute(select(DECISIONS).where(DECISIONS.c.id.in_([ours["id"],
                                                                                                   theirs["id"]])))}
    a, b = got[ours["id"]], got[theirs["id"]]
    assert {k: v for k, v in a.items() if k not in ("id", "created_at")} == \
        {k: v for k, v in b.items() if k not in ("id", "created_at")}
    assert a["task_probs"] == {"Rewrite": 0.5, "日本語": 0.25} and a["stream"] is True
    assert a["created_at"].replace(tzinfo=None) == ours["created_at"].replace(tzinfo=None)
    with db.connect() as conn:  # stored as the same text on SQLite, where the console's range filters compare it
        kinds = conn.execute(text("SELECT created_at FROM decisions WHERE id IN (:a, :b)"),
                             {"a": ours["id"], "b": theirs["id"]}).scalars().all()
    assert len({type(k) for k in kinds}) == 1 and all(len(str(k)) == len(str(kinds[0])) for k in kinds)


def test_the_writers_own_insert_reports_outages_and_refused_rows_as_sqlalchemy_does(tmp_path) -> None:
    from sqlalchemy import exc as sa_exc

    from storage.decision_insert import DecisionInserter

    path = tmp_path / "r.db"
    migrate(make_engine(f"sqlite:///{path}"))
    db = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.1})
    inserter = DecisionInserter(db)
    try:
        with pytest.raises(sa_exc.IntegrityError):  # NOT NULL status: a refused row, which the log sets aside
            inserter.write([{**record().to_row(), "status": None}])
        inserter.write([record().to_row()])  # the same connection goes on
        lock = sqlite3.connect(path)
        lock.execute("BEGIN EXCLUSIVE")
        with pytest.raises(sa_exc.OperationalError):  # busy: an outage, which the log retries
            inserter.write([record().to_row()])
        lock.rollback()
        lock.close()
        inserter.write([record().to_row()])  # on a fresh connection
    finally:
        inserter.close()
        db.dispose()
    assert len(list_decisions(make_engine(f"sqlite:///{path}"), limit=10)) == 2
