"""Client API keys, tier keys that never leak, prompt redaction and the console guard."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from streamlit.testing.v1 import AppTest

from router.background import BackgroundServer
from router.config import Settings
from router.runtime import build_runtime
from storage.api_keys import create_key, list_keys, revoke_key
from tests.conftest import Api, Simulator, run_cli, write_config

QA = [{"role": "user", "content": "What is the capital of France?"}]
SECRET = "nvapi-THIS-IS-A-SECRET-0123456789"


def api_with(tmp_path: Path, db_url: str, config: Path, environ: dict[str, str], simulator_url: str | None,
             **settings: Any) -> Api:
    base = Settings.from_env({"DATABASE_URL": db_url, "ROUTER_CONFIG": str(config), "ROUTER_SIMULATOR": "off",
                              "ROUTER_POLICY_REFRESH_S": "0.2"})
    runtime = build_runtime(Settings(**{**base.__dict__, **settings}), environ=environ,
                            simulator_url=simulator_url)
    return Api(runtime)


@pytest.fixture
def keyed_api(tmp_path: Path, sqlite_url: str, simulator: Simulator):
    api = api_with(tmp_path, sqlite_url, write_config(tmp_path), {}, simulator.base_url, auth="keys")
    yield api
    api.server.stop()
    api.runtime.close()


def test_keys_are_required_checked_and_revocable(keyed_api: Api) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        keyed_api.openai().chat.completions.create(model="router", messages=QA)
    assert info.value.body["code"] == "invalid_api_key"
    r = httpx.post(f"{keyed_api.base_url}/chat/completions", json={"messages": QA})
    assert r.status_code == 401 and "didn't provide an API key" in r.json()["error"]["message"]
    assert httpx.get(f"{keyed_api.base_url}/models").status_code == 401
    assert httpx.post(f"{keyed_api.base_url}/route", json={"messages": QA}).status_code == 401
    assert httpx.get(f"{keyed_api.url}/health?tiers=0").status_code == 200  # probes stay open

    key, row = create_key(keyed_api.runtime.db, "billing-service")
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest() and key not in row.key_hash
    client = openai.OpenAI(base_url=keyed_api.base_url, api_key=key, max_retries=0)
    deadline = time.monotonic() + 3
    while True:  # the server reloads keys with its policy refresh
        try:
            reply = client.chat.completions.create(model="router", messages=QA)
            break
        except openai.AuthenticationError:
            assert time.monotonic() < deadline, "a new key was not accepted within 3 s"
            time.sleep(0.1)
    assert reply.choices[0].message.content

    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=keyed_api.base_url, api_key=key + "x", max_retries=0).models.list()

    revoke_key(keyed_api.runtime.db, row.prefix)
    deadline = time.monotonic() + 3
    while True:
        try:
            client.models.list()
        except openai.AuthenticationError:
            break
        assert time.monotonic() < deadline, "a revoked key still worked after 3 s"
        time.sleep(0.1)
    statuses = [d["http_status"] for d in keyed_api.decisions()]
    assert statuses.count(401) >= 2 and 200 in statuses
    assert all(key not in str(d) for d in keyed_api.decisions())


def test_keys_command(tmp_path: Path, clean_env: dict[str, str]) -> None:
    env = {**clean_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}"}
    created = run_cli("keys", "create", "mobile-app", cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("rk-") and len(key) > 40
    listing = run_cli("keys", "list", cwd=tmp_path, env=env).stdout
    assert "mobile-app" in listing and "active" in listing and key not in listing
    prefix = listing.split("…")[0]
    assert "revoked" in run_cli("keys", "revoke", prefix, cwd=tmp_path, env=env).stdout
    assert "revoked 20" in run_cli("keys", "list", cwd=tmp_path, env=env).stdout
    missing = run_cli("keys", "revoke", "rk-nope", cwd=tmp_path, env=env)
    assert missing.returncode == 2 and "no key with prefix" in missing.stdout


def test_tier_keys_never_leak(tmp_path: Path, sqlite_url: str, simulator: Simulator,
                              caplog: pytest.LogCaptureFixture) -> None:
    # A tier that echoes the request headers, key included, in its error body.
    async def echo_error(request: Request) -> JSONResponse:
        return JSONResponse({"error": {"message": f"rejected {request.headers.get('authorization')}"}}, 500)

    echo = BackgroundServer(Starlette(routes=[Route("/v1/chat/completions", echo_error, methods=["POST"]),
                                              Route("/v1/models", echo_error)]), name="echo-tier")
    config = write_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    for policy in raw["policies"]:
        policy["tiers"]["llama-3-70b"].update(base_url=echo.url + "/v1", api_key_env="TIER_SECRET")
    config.write_text(yaml.safe_dump(raw))
    api = api_with(tmp_path, sqlite_url, config, {"TIER_SECRET": SECRET}, simulator.base_url)
    try:
        with caplog.at_level(logging.DEBUG):
            r = httpx.post(f"{api.base_url}/chat/completions", json={"messages": QA, "model": "llama-3-70b"})
            assert r.status_code == 502
            assert "HTTP 500" in r.text and "[redacted]" in r.text and SECRET not in r.text
            streamed = httpx.post(f"{api.base_url}/chat/completions",
                                  json={"messages": QA, "model": "llama-3-70b", "stream": True})
            assert streamed.status_code == 502 and SECRET not in streamed.text
            health = httpx.get(f"{api.url}/health").text
            metrics = httpx.get(f"{api.url}/metrics").text
        rows = api.decisions()
        assert len(rows) == 2 and all(SECRET not in str(row) for row in rows)
        assert "[redacted]" in rows[0]["error"]
        assert SECRET not in health and SECRET not in metrics
        assert SECRET not in caplog.text
        assert SECRET not in repr(api.runtime.engine.tiers.endpoint("llama-3-70b",
                                                                   api.runtime.registry.get().policy.tiers["llama-3-70b"]))
    finally:
        api.server.stop()
        api.runtime.close()
        echo.stop()


def test_prompt_redaction_stores_hash_and_length(tmp_path: Path, sqlite_url: str, simulator: Simulator) -> None:
    api = api_with(tmp_path, sqlite_url, write_config(tmp_path), {}, simulator.base_url, redact_prompts=True)
    try:
        text = "My account number is 12345678; what is my balance?"
        r = httpx.post(f"{api.base_url}/chat/completions", json={"messages": [{"role": "user", "content": text}]})
        assert r.status_code == 200
        row = api.decisions()[0]
        assert row["prompt"] is None and row["response"] is None
        assert row["prompt_hash"] == hashlib.sha256(text.encode()).hexdigest()
        assert row["prompt_chars"] == len(text)
        assert row["task"] and row["tier"] and row["cost_usd"] is not None  # routing facts are kept
        assert "12345678" not in str(row)
    finally:
        api.server.stop()
        api.runtime.close()


def test_console_operator_pages_need_the_password(tmp_path: Path, simulator: Simulator,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit as st

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'c.db'}")
    monkeypatch.setenv("ROUTER_CONFIG", str(write_config(tmp_path, base_url=simulator.base_url)))
    monkeypatch.setenv("ROUTER_CONSOLE_PASSWORD", "correct horse")
    root = Path(__file__).resolve().parent.parent
    try:
        at = AppTest.from_file(str(root / "app.py"), default_timeout=30).run()
        assert at.chat_input  # the playground stays open
        for page in ("policies", "misroutes"):
            at.switch_page(f"pages/{page}.py").run()
            assert not at.exception
            assert any("Operator sign-in" in m.value for m in at.markdown)
            assert not at.get("data_editor") and not at.text_area and not at.get("download_button")
        at.switch_page("pages/policies.py").run()
        at.text_input(key="operator_password").input("wrong")
        at.button[0].click().run()
        assert any("Wrong password." in e.value for e in at.error)
        at.text_input(key="operator_password").input("correct horse")
        at.button[0].click().run()
        assert not at.exception
        assert at.text_area and any(t.label == "Policy YAML" for t in at.text_area)
    finally:
        st.cache_resource.clear()


def test_keys_table_holds_no_plaintext(sqlite_url: str) -> None:
    from storage.db import make_engine, migrate

    db = make_engine(sqlite_url)
    migrate(db)
    key, _ = create_key(db, "ci")
    dump = "\n".join(db.raw_connection().driver_connection.iterdump())
    assert key not in dump and list_keys(db)[0].prefix == key[:10]
