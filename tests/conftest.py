"""Shared fixtures: a real simulator and API server on loopback, real SQLite files and
a real Postgres (one schema per test, dropped afterwards)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine, create_engine, text

from bench.seed_decisions import seed
from router.background import BackgroundServer
from router.config import DEFAULT_CONFIG, Settings
from router.runtime import Runtime, build_runtime
from router.server import create_app
from router.simulator import Behaviour
from router.simulator import create_app as create_simulator
from storage.db import make_engine, migrate
from storage.models import DecisionRow
from storage.queries import list_decisions

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, timeout_s: float = 30) -> None:
    """Poll `url` until it answers 200; fail with the process's output if it dies or is slow."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"{proc.args} exited with {proc.returncode}: {output}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not come up in {timeout_s:g} s")
        time.sleep(0.2)


def run_cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m router ARGS` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "router", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def clean_env() -> dict[str, str]:
    """The environment without any of the router's settings."""
    return {k: v for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "ROUTER_CONFIG", "NVIDIA_API_KEY") and not k.startswith("ROUTER_")}


class Simulator:
    def __init__(self) -> None:
        self.server = BackgroundServer(create_simulator(Behaviour()), name="test-simulator")
        self.url = self.server.url
        self.base_url = self.url + "/v1"

    def configure(self, default: dict[str, Any] | None = None, models: dict[str, dict[str, Any]] | None = None
                  ) -> None:
        body = {"default": default or {}, "models": models or {}}
        httpx.put(f"{self.url}/sim/config", json=body).raise_for_status()

    def stats(self) -> dict[str, int]:
        return httpx.get(f"{self.url}/sim/stats").json()["requests"]

    def reset(self) -> None:
        self.configure()
        httpx.delete(f"{self.url}/sim/stats").raise_for_status()


@pytest.fixture(scope="session")
def simulator_server() -> Iterator[Simulator]:
    sim = Simulator()
    yield sim
    sim.server.stop()


@pytest.fixture
def simulator(simulator_server: Simulator) -> Iterator[Simulator]:
    simulator_server.reset()
    yield simulator_server
    simulator_server.reset()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'router.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # the suite requires the local Postgres; fail loudly, never skip
        raise RuntimeError(f"Postgres at {POSTGRES_URL} is required for these tests: {exc}. `bash scripts/test` "
                           "starts the local one; by hand: pg_ctlcluster --skip-systemctl-redirect "
                           "$(ls /etc/postgresql) main start") from exc
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@contextmanager
def seeded_log(database_url: str, n: int, *, days: int, reviews: int) -> Iterator[tuple[Engine, list[DecisionRow]]]:
    """A migrated database holding `n` synthetic decisions over `days` days (bench.seed_decisions)
    with `reviews` of them reviewed, and those decisions as read back."""
    db = make_engine(database_url)
    migrate(db)
    seed(db, n, days=days, reviews=reviews)
    try:
        yield db, list_decisions(db, limit=n + 1)
    finally:
        db.dispose()


def write_config(tmp_path: Path, *, timeout_s: float = 2.0, max_retries: int = 1, base_url: str | None = None,
                 **policy_overrides: Any) -> Path:
    """The seed config with short tier timeouts (and, given base_url, every tier there
    with no key), written to a temp file."""
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    endpoint = {"base_url": base_url, "api_key_env": None} if base_url else {}
    for policy in raw["policies"]:
        policy["tiers"] = {name: {**tier, "timeout_s": timeout_s, "max_retries": max_retries, **endpoint}
                           for name, tier in raw["tiers"].items()}
        if policy["name"] == raw["default_policy"]:
            policy.update(policy_overrides)
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def make_runtime(db_url: str, config: Path, simulator: Simulator, **settings: Any) -> Runtime:
    # The keyword classifier unless a test asks for another: these tests are about serving, and its
    # predictions are fixed by its cue words (the shipped model has tests of its own).
    base = Settings.from_env({"DATABASE_URL": db_url, "ROUTER_CONFIG": str(config),
                              "ROUTER_POLICY_REFRESH_S": "0.2", "ROUTER_SIMULATOR": "off",
                              "ROUTER_SPILL_FILE": str(config.parent / "spill.jsonl"), "ROUTER_CLASSIFIER": "keyword"})
    fields = {**base.__dict__, **settings}
    return build_runtime(Settings(**fields), environ={}, simulator_url=simulator.base_url)


class Api:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.server = BackgroundServer(create_app(runtime), lifespan="on", name="test-api")
        self.url = self.server.url
        self.base_url = self.url + "/v1"

    def openai(self, **kwargs: Any) -> Any:
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key="unused", max_retries=0, **kwargs)

    def decisions(self) -> list[dict[str, Any]]:
        """Every decision row, oldest first, read through a fresh connection pool: what is committed."""
        db = make_engine(self.runtime.db.url.render_as_string(hide_password=False))
        try:
            return [d.model_dump() for d in list_decisions(db, limit=10_000, newest_first=False)]
        finally:
            db.dispose()


@pytest.fixture
def api_factory(tmp_path: Path, simulator: Simulator) -> Iterator[Any]:
    made: list[Api] = []

    def make(db_url: str, **config: Any) -> Api:
        runtime = make_runtime(db_url, write_config(tmp_path, **config), simulator)
        api = Api(runtime)
        made.append(api)
        return api

    yield make
    for api in made:
        api.server.stop()
        api.runtime.close()


@pytest.fixture
def api(api_factory: Any, database_url: str) -> Api:
    return api_factory(database_url)


@pytest.fixture
def sqlite_api(api_factory: Any, sqlite_url: str) -> Api:
    return api_factory(sqlite_url)
