"""Faults with real processes: kill -9 under load, the database going away and coming
back, and random request bodies that must never produce a 500."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from router.config import Settings
from router.runtime import build_runtime
from storage.db import make_engine
from storage.queries import list_decisions
from tests.conftest import POSTGRES_URL, Api, Simulator, free_port, wait_until_up, write_config

ROOT = Path(__file__).resolve().parent.parent
QA = [{"role": "user", "content": "What is the capital of France?"}]


def start_serve(tmp_path: Path, db_url: str, config: Path, port: int, *, log_level: str = "warning",
                capture: bool = False, **env: str) -> subprocess.Popen:
    """`router serve` as a process; with capture its output is kept (proc.communicate() reads it)."""
    full_env = {**os.environ, "DATABASE_URL": db_url, "ROUTER_CONFIG": str(config), "PYTHONPATH": str(ROOT), **env}
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "router", "--log-level", log_level, "serve", "--port", str(port)],
                            cwd=tmp_path, env=full_env, stdout=output,
                            stderr=subprocess.STDOUT if capture else subprocess.DEVNULL, text=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health?tiers=0", proc)
    except AssertionError:
        proc.kill()
        raise
    return proc


def test_kill_9_under_load_loses_no_answered_decision(tmp_path: Path, simulator: Simulator) -> None:
    simulator.configure(default={"ttft_ms": 5})
    db_url = f"sqlite:///{tmp_path / 'kill.db'}"
    config = write_config(tmp_path, base_url=simulator.base_url)
    port = free_port()
    proc = start_serve(tmp_path, db_url, config, port)
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                try:
                    r = http.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"messages": QA})
                    body = r.json()  # the whole response arrived
                except (httpx.HTTPError, json.JSONDecodeError):
                    return
                if r.status_code == 200 and body["choices"]:
                    with lock:
                        answered.append(r.headers["x-router-decision-id"])

    with ThreadPoolExecutor(8) as pool:
        for _ in range(8):
            pool.submit(client)
        deadline = time.monotonic() + 20
        while len(answered) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop.set()
    assert len(answered) >= 200, "the server answered too few requests before the kill"

    # Restart on the same file: it opens cleanly, and every answered request has its row.
    proc = start_serve(tmp_path, db_url, config, port)
    try:
        logged = {d.id for d in list_decisions(make_engine(db_url), limit=1_000_000)}
        missing = [d for d in answered if d not in logged]
        assert not missing, f"{len(missing)} of {len(answered)} answered requests have no decision row"
        assert httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"messages": QA}).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)


class Proxy:
    """A TCP proxy to Postgres that can cut every connection and refuse new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.up = threading.Event()
        self.up.set()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._listen()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        assert self._listener is not None
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        with self._lock:
            for c in self._conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                except OSError:
                    pass
            self._conns.clear()

    def restore(self) -> None:
        self._listen()


def test_database_outage_keeps_serving_and_writes_later(tmp_path: Path, postgres_url: str,
                                                        simulator: Simulator) -> None:
    proxy = Proxy(("127.0.0.1", 5432))
    url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert url != postgres_url and POSTGRES_URL in postgres_url
    base = Settings.from_env({"DATABASE_URL": url, "ROUTER_CONFIG": str(write_config(tmp_path)),
                              "ROUTER_SIMULATOR": "off", "ROUTER_DURABILITY_TIMEOUT_S": "0.3",
                              "ROUTER_POLICY_REFRESH_S": "0.2"})
    runtime = build_runtime(base, environ={}, simulator_url=simulator.base_url)
    runtime.engine.decision_log.retry_s = 0.1
    api = Api(runtime)
    try:
        assert httpx.post(f"{api.base_url}/chat/completions", json={"messages": QA}).status_code == 200
        proxy.cut()
        during = []
        for _ in range(10):
            r = httpx.post(f"{api.base_url}/chat/completions", json={"messages": QA}, timeout=10)
            assert r.status_code == 200, r.text  # still served
            during.append(r.headers["x-router-decision-id"])
        health = httpx.get(f"{api.url}/health?tiers=0")
        assert health.status_code == 503
        report = health.json()
        assert report["status"] == "degraded" and not report["database"]["healthy"]
        assert report["database"]["queued"] == 10  # the rows wait in the buffer
        assert "router_decision_log_queue" in httpx.get(f"{api.url}/metrics").text

        proxy.restore()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if runtime.engine.decision_log.stats().queued == 0 and runtime.engine.decision_log.stats().healthy:
                break
            time.sleep(0.1)
        assert httpx.get(f"{api.url}/health?tiers=0").json()["database"]["healthy"]
        logged = {d["id"] for d in api.decisions()}
        assert set(during) <= logged, f"lost {len(set(during) - logged)} decisions"
        assert len(logged) == 11
    finally:
        api.server.stop()
        runtime.close()


message = st.fixed_dictionaries({}, optional={
    "role": st.one_of(st.sampled_from(["user", "assistant", "system", "tool", "wizard"]), st.integers(), st.none()),
    "content": st.one_of(st.text(max_size=50), st.none(), st.integers(),
                         st.lists(st.fixed_dictionaries({}, optional={"type": st.sampled_from(["text", "image_url"]),
                                                                       "text": st.one_of(st.text(max_size=20),
                                                                                         st.integers())}),
                                  max_size=3)),
})
body = st.one_of(
    st.fixed_dictionaries({}, optional={
        "model": st.one_of(st.just("router"), st.sampled_from(["llama-3-8b", "nope"]), st.integers(), st.none()),
        "messages": st.one_of(st.lists(message, max_size=4), st.text(max_size=10), st.none()),
        "stream": st.one_of(st.booleans(), st.text(max_size=3)),
        "router": st.one_of(st.fixed_dictionaries({}, optional={"policy": st.one_of(st.text(max_size=8), st.none()),
                                                                 "conversation_id": st.text(max_size=80)}),
                            st.text(max_size=5)),
        "max_tokens": st.one_of(st.integers(-5, 100), st.text(max_size=3)),
        "stream_options": st.one_of(st.fixed_dictionaries({"include_usage": st.booleans()}), st.integers()),
    }),
    st.lists(st.integers(), max_size=3),
    st.text(max_size=20),
)


@pytest.fixture(scope="module")
def fuzz_api(tmp_path_factory: pytest.TempPathFactory, simulator_server: Simulator):
    tmp = tmp_path_factory.mktemp("fuzz")
    base = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp / 'fuzz.db'}",
                              "ROUTER_CONFIG": str(write_config(tmp)), "ROUTER_SIMULATOR": "off"})
    runtime = build_runtime(base, environ={}, simulator_url=simulator_server.base_url)
    api = Api(runtime)
    yield api
    api.server.stop()
    runtime.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=body, path=st.sampled_from(["/chat/completions", "/route"]))
def test_random_bodies_never_cause_a_500(fuzz_api: Api, payload: object, path: str) -> None:
    r = httpx.post(f"{fuzz_api.base_url}{path}", content=json.dumps(payload), timeout=10)
    assert r.status_code < 500 or r.status_code in (502, 504), r.text
    if r.status_code >= 400:
        error = r.json()["error"]
        assert error["message"] and error["type"]
    elif path == "/chat/completions" and isinstance(payload, dict) and payload.get("stream") is True:
        assert r.text.endswith("data: [DONE]\n\n")


def openapi_request_schema() -> dict:
    from router.openapi import openapi

    return {"$ref": "#/components/schemas/ChatCompletionRequest", "components": openapi()["components"]}


@pytest.fixture(scope="module")
def served_spec(fuzz_api: Api) -> dict:
    return httpx.get(f"{fuzz_api.url}/openapi.json").json()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(payload=from_schema(openapi_request_schema()), path=st.sampled_from(["/chat/completions", "/route"]))
def test_bodies_from_the_openapi_description_get_documented_answers(fuzz_api: Api, served_spec: dict,
                                                                   payload: dict, path: str) -> None:
    documented = {int(s) for s in served_spec["paths"][f"/v1{path}"]["post"]["responses"]}
    r = httpx.post(f"{fuzz_api.base_url}{path}", json=payload, timeout=10)
    assert r.status_code in documented and r.status_code != 500, (r.status_code, r.text)
    if r.status_code != 200:
        assert r.json()["error"]["message"]
    elif path == "/chat/completions" and not payload.get("stream"):
        assert r.json()["choices"][0]["message"]["content"]
