"""`python -m router serve --workers 2` as an operator runs it: both processes answer on one
port, every decision is written once, /metrics from either worker counts all of them, a policy
activated through the database reaches both, and SIGTERM stops them with nothing lost."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from router.config import classifier_layout
from router.workers import worker_environment
from storage.db import make_engine
from storage.queries import list_decisions
from tests.conftest import free_port, run_cli, wait_until_up

REQUESTS = 60


def requests_total(metrics_text: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
               if line.startswith("router_requests_total{"))


def test_two_workers_share_the_port_the_log_and_the_metrics(tmp_path: Path, clean_env: dict[str, str]) -> None:
    db_file = tmp_path / "router.db"
    env = {**clean_env, "DATABASE_URL": f"sqlite:///{db_file}", "ROUTER_CLASSIFIER": "keyword",
           "ROUTER_POLICY_REFRESH_S": "0.2"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "router", "serve", "--workers", "2", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_up(f"{base}/health?tiers=0", proc, timeout_s=60)

        def ask(i: int) -> tuple[int, str]:
            # a new connection each time, so that the kernel may hand it to either worker
            r = httpx.post(f"{base}/v1/chat/completions", headers={"connection": "close"}, timeout=30,
                           json={"model": "router", "messages": [{"role": "user", "content": f"Hello number {i}"}]})
            return r.status_code, r.headers.get("x-router-decision-id", "")

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(REQUESTS)))
        assert all(status == 200 for status, _ in answers), answers
        pids = set()
        deadline = time.monotonic() + 20
        while len(pids) < 2 and time.monotonic() < deadline:
            pids.add(httpx.get(f"{base}/health?tiers=0", headers={"connection": "close"}).json()["process"])
        assert len(pids) == 2, "only one worker ever answered"
        # Either worker's /metrics counts every request (each worker counts its own when it logs the row).
        deadline = time.monotonic() + 10
        while requests_total(httpx.get(f"{base}/metrics").text) < REQUESTS and time.monotonic() < deadline:
            time.sleep(0.1)
        assert requests_total(httpx.get(f"{base}/metrics", headers={"connection": "close"}).text) == REQUESTS
        # One simulator for both workers: the parent's.
        simulators = {httpx.get(f"{base}/health?tiers=0", headers={"connection": "close"}).json()["simulator"]
                      for _ in range(10)}
        assert simulators == {None}  # workers were handed the parent's simulator, not starting their own
        # A new policy version activated in the database reaches every worker.
        shown = run_cli("policy", "show", "task-complexity", cwd=tmp_path, env=env).stdout
        (tmp_path / "v2.yaml").write_text(shown.replace("description: ", "description: v2. ", 1))
        added = run_cli("policy", "add", str(tmp_path / "v2.yaml"), "--activate", cwd=tmp_path, env=env)
        assert added.returncode == 0, added.stderr
        time.sleep(1.0)
        versions = {httpx.post(f"{base}/v1/route", headers={"connection": "close"},
                               json={"messages": [{"role": "user", "content": "hi"}]}).json()["policy"]["version"]
                    for _ in range(12)}
        assert versions == {2}
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Traceback" not in output, output
    db = make_engine(f"sqlite:///{db_file}")
    ids = {d.id for d in list_decisions(db, limit=1000)}
    assert ids == {decision for _, decision in answers} and len(ids) == REQUESTS  # each written once


def test_workers_get_a_share_of_the_cores_and_keep_what_the_operator_set() -> None:
    env = worker_environment(2, {}, simulator_url="http://127.0.0.1:9/v1", metrics_dir="/tmp/m")
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/m" and env["ROUTER_SIMULATOR_URL"] == "http://127.0.0.1:9/v1"
    assert int(env["ROUTER_CLASSIFIER_THREADS"]) >= 1
    mine = {"ROUTER_CLASSIFIER_THREADS": "3", "PROMETHEUS_MULTIPROC_DIR": "/srv/metrics"}
    env = worker_environment(2, mine, simulator_url=None, metrics_dir="/tmp/m")
    assert env["ROUTER_CLASSIFIER_THREADS"] == "3" and env["PROMETHEUS_MULTIPROC_DIR"] == "/srv/metrics"
    assert "ROUTER_SIMULATOR_URL" not in env


def test_each_worker_lays_its_classifier_out_on_its_share_of_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("router.workers.os.cpu_count", lambda: 8)
    env = worker_environment(2, {}, simulator_url=None, metrics_dir="/tmp/m")
    assert (env["ROUTER_CLASSIFIER_THREADS"], env["ROUTER_CLASSIFIER_RUNS"]) == ("1", "4")
    env = worker_environment(2, {"ROUTER_CLASSIFIER_THREADS": "2"}, simulator_url=None, metrics_dir="/tmp/m")
    assert (env["ROUTER_CLASSIFIER_THREADS"], env["ROUTER_CLASSIFIER_RUNS"]) == ("2", "2")
    env = worker_environment(4, {"ROUTER_CLASSIFIER_RUNS": "bad"}, simulator_url=None, metrics_dir="/tmp/m")
    assert env["ROUTER_CLASSIFIER_RUNS"] == "bad"  # left for the worker's own check to name


@pytest.mark.parametrize(("cores", "threads", "runs", "layout"), [
    (2, 0, 0, (1, 2)),  # unset: a one-thread run per core
    (1, 0, 0, (1, 1)),
    (16, 0, 0, (1, 16)),
    (8, 0, 1, (2, 1)),  # one run alone: up to two threads, the server needs the rest
    (8, 0, 2, (4, 2)),
    (8, 4, 0, (4, 2)),
    (2, 3, 5, (3, 5)),  # both set: as set
])
def test_classifier_layout(cores: int, threads: int, runs: int, layout: tuple[int, int]) -> None:
    assert classifier_layout(cores, threads, runs) == layout
