"""Every console page through streamlit's AppTest, against a real SQLite file and the
simulator on loopback: chat, policy editing, review, charts, empty states."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from router import policy_admin
from router.policy import parse_policy
from storage import policies as store
from storage.db import make_engine
from storage.queries import list_decisions
from storage.reviews import reviews_for
from tests.conftest import Simulator, write_config

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 30


@pytest.fixture
def console(tmp_path: Path, simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Environment for the console: its own SQLite file, tiers on the test simulator."""
    url = f"sqlite:///{tmp_path / 'console.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("ROUTER_CONFIG", str(write_config(tmp_path, base_url=simulator.base_url)))
    monkeypatch.setenv("ROUTER_CLASSIFIER", "keyword")  # the pages' tests need its fixed predictions
    monkeypatch.delenv("NVIDIA_API_KEY", raising=False)
    monkeypatch.chdir(ROOT)
    yield url
    for cached in _engines():
        cached.close()
    st.cache_resource.clear()


def _engines() -> list:
    from pages import _shared

    settings = _shared.Settings.from_env()
    try:
        return [_shared._engine(settings.database_url, str(settings.config_path), settings.classifier)]
    except Exception:
        return []


def app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.caption] + [e.value for e in at.info]
    parts += [e.value for e in at.error] + [e.value for e in at.success] + [e.value for e in at.code]
    return "\n".join(str(p) for p in parts)


def values(array: object) -> list[float]:
    """A plotly JSON array: a plain list, or a typed array {"dtype", "bdata"}."""
    if isinstance(array, dict):
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)  # type: ignore[call-overload]


def db(url: str):  # type: ignore[no-untyped-def]
    return make_engine(url)


def chat(at: AppTest, prompt: str) -> AppTest:
    at.chat_input[0].set_value(prompt).run()
    assert not at.exception, at.exception
    return at


def test_sidebar_shows_health(console: str) -> None:
    at = app()
    side = "\n".join(m.value for m in at.sidebar.markdown)
    assert "**Classifier:** keyword · keyword" in side
    assert f"**Database:** SQLite {console.removeprefix('sqlite:///')} (ok)" in side
    assert "**Active policy:** task-complexity v1" in side
    assert "🟢 llama-3-8b" in side and "🟢 nemotron-super-49b" in side


def test_playground_two_turns_with_decision_lines(console: str) -> None:
    at = app()
    chat(at, "Pythonでソートアルゴリズムを実装して")
    chat(at, "このアルゴリズムの計算量を説明して")
    messages = at.chat_message
    assert [m.name for m in messages] == ["user", "assistant", "user", "assistant"]
    captions = [c.value for c in at.caption if "rule `" in c.value]
    assert len(captions) == 2
    assert "**Code Generation**" in captions[0] and "→ **nemotron-super-49b**" in captions[0]
    assert "**Open QA**" in captions[1] and "→ **llama-3-70b**" in captions[1]
    assert "TTFT" in captions[0] and "baseline llama-3-70b" in captions[0]
    rows = list_decisions(db(console), newest_first=False)
    assert [r.source for r in rows] == ["playground", "playground"]
    assert [r.turn for r in rows] == [1, 2] and rows[0].conversation_id == rows[1].conversation_id
    assert rows[1].stream and rows[1].status == "ok"
    running = "\n".join(m.value for m in at.sidebar.markdown)
    assert "2 turns · cost" in running and "saved" in running

    # Pin the next turn to a tier; the pin is released afterwards.
    at.selectbox(key="pin").set_value("nemotron-super-49b").run()
    chat(at, "Hello!")
    assert list_decisions(db(console), limit=1)[0].tier == "nemotron-super-49b"
    assert at.selectbox(key="pin").value == "auto (route)"

    at.button[0].click().run()  # new conversation
    assert len(at.chat_message) == 0


def test_playground_reports_a_failing_tier(console: str, simulator: Simulator) -> None:
    simulator.configure(default={"mode": "error", "error_status": 503})
    at = chat(app(), "What is the capital of France?")
    assert any("every tier failed" in e.value for e in at.error)
    row = list_decisions(db(console), limit=1)[0]
    assert row.status == "error" and row.http_status == 502


def edit_rules(at: AppTest, edited_rows: dict, added_rows: list | None = None) -> None:
    at.session_state["rules_editor"] = {"edited_rows": edited_rows, "added_rows": added_rows or [],
                                        "deleted_rows": []}


def test_policy_edit_via_data_editor_saves_and_activates(console: str) -> None:
    at = app("policies")
    edit_rules(at, {1: {"tier": "nemotron-super-49b"}})  # easy-code -> 49B
    at.checkbox(key="form_activate").check()
    at.text_input(key="form_comment").input("easy code to 49B")
    at.button(key="form_save").click().run()
    assert not at.exception, at.exception
    assert "Saved task-complexity v2 and activated it." in texts(at)
    assert at.selectbox(key="base_version_task-complexity").value == 2  # the editor now shows v2
    assert not at.warning
    engine = db(console)
    assert store.active_versions(engine)["task-complexity"] == 2
    v2 = store.get_version(engine, "task-complexity", 2)
    assert v2.comment == "easy code to 49B" and v2.created_by == "console"
    assert v2.document["rules"][1]["tier"] == "nemotron-super-49b"


def test_invalid_form_edit_names_the_field_and_saves_nothing(console: str) -> None:
    at = app("policies")
    edit_rules(at, {1: {"tier": "llama-9"}})
    at.button(key="form_save").click().run()
    assert any("Not saved: rules.1.tier: unknown tier 'llama-9'" in e.value for e in at.error)
    assert [v.version for v in store.list_versions(db(console), "task-complexity")] == [1]


def test_invalid_yaml_is_refused_with_its_line(console: str) -> None:
    at = app("policies")
    area = at.text_area[0]
    area.set_value("name: task-complexity\ntiers: {a: [1}\n")
    at.button(key="yaml_save").click().run()
    assert any("Not saved: invalid YAML at line" in e.value for e in at.error)
    good = parse_policy(store.get_version(db(console), "task-complexity", 1).document).to_yaml()
    at.text_area[0].set_value(good.replace("confidence_floor: 0.35", "confidence_floor: 3"))
    at.button(key="yaml_save").click().run()
    assert any("confidence_floor" in e.value and "less than or equal to 1" in e.value for e in at.error)
    assert len(store.list_versions(db(console), "task-complexity")) == 1


def test_dry_run_counts_changes_cost_and_misroutes(console: str) -> None:
    at = app()
    for prompt in ("Write a Python function that reverses a list", "What is the capital of France?",
                   "Summarize the following notes: ship on Friday"):
        chat(at, prompt)
    engine = db(console)
    code_row = next(r for r in list_decisions(engine) if r.task == "Code Generation")
    from storage.reviews import add_review

    # The keyword classifier reads the code above easy-code's ceiling: 49B, which a reviewer thinks too much.
    assert code_row.tier == "nemotron-super-49b"
    add_review(engine, code_row.id, "misrouted", correct_tier="llama-3-8b")
    at.switch_page("pages/policies.py").run()
    edit_rules(at, {2: {"tier": "llama-3-8b"}})  # code-reasoning -> 8B
    at.button(key="form_dry").click().run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Replayed"] == "3"
    assert metrics["Would change tier"] == "1 (33%)"
    assert metrics["Misroutes fixed / introduced"] == "1 / 0"
    assert float(metrics["Cost after"].strip("$")) < float(metrics["Cost before"].strip("$"))
    assert len(store.list_versions(engine, "task-complexity")) == 1  # a dry run saves nothing


def test_activate_rollback_and_diff(console: str) -> None:
    at = app("policies")  # starting the console migrates and seeds the database
    engine = db(console)
    doc = store.get_version(engine, "task-complexity", 1).document
    policy_admin.save(engine, {**doc, "default_tier": "llama-3-8b"}, activate=True)
    at.run()
    at.selectbox(key="diff_old").set_value(1)
    at.selectbox(key="diff_new").set_value(2).run()
    assert "-default_tier: llama-3-70b" in at.code[0].value and "+default_tier: llama-3-8b" in at.code[0].value
    at.button(key="rollback_button").click().run()
    assert "Rolled back task-complexity to v1." in texts(at)
    assert store.active_versions(engine)["task-complexity"] == 1
    at.selectbox(key="activate_version").set_value(2)
    at.button(key="activate_button").click().run()
    assert store.active_versions(engine)["task-complexity"] == 2
    # The console's engine serves the new version at once (a fresh session shows it in the sidebar).
    assert _engines()[0].runtime.registry.get().version == 2
    assert "**Active policy:** task-complexity v2" in "\n".join(m.value for m in app().sidebar.markdown)


def test_review_a_decision_and_see_the_matrices(console: str) -> None:
    at = app()
    chat(at, "Write a Python function that reverses a list")
    chat(at, "Hello!")
    at.switch_page("pages/misroutes.py").run()
    assert not at.exception, at.exception
    assert "No reviewed decisions yet" in texts(at)
    picked = at.selectbox(key="review_pick").value
    at.radio(key="review_verdict").set_value("misrouted")
    at.selectbox(key="review_task").set_value("Open QA")
    at.selectbox(key="review_tier").set_value("nemotron-super-49b")
    at.text_input(key="review_note").input("needs the big model")
    at.button[0].click().run()  # the form's submit button
    assert not at.exception, at.exception
    assert "Review saved." in texts(at)
    review = reviews_for(db(console), picked)[0]
    assert (review.verdict, review.correct_task, review.correct_tier) == ("misrouted", "Open QA",
                                                                        "nemotron-super-49b")
    at.run()
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = [c["layout"]["title"]["text"] for c in charts]
    assert "Task: predicted vs reviewed" in titles and "Tier: routed vs should have been" in titles
    assert "Misroute rate per day" in titles
    buttons = at.get("download_button")
    assert len(buttons) == 2


def test_costs_page_charts_have_one_series_per_tier(console: str) -> None:
    at = app()
    for prompt in ("Write a Python function that reverses a list", "What is the capital of France?",
                   "Summarize the following notes: ship on Friday"):
        chat(at, prompt)
    at.switch_page("pages/costs.py").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Requests"] == "3"
    charts = {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec)
              for c in at.get("plotly_chart")}
    requests = charts["Requests per tier per hour"]
    assert sorted(trace["name"] for trace in requests["data"]) == ["llama-3-70b", "llama-3-8b", "nemotron-super-49b"]
    assert sum(sum(values(trace["y"])) for trace in requests["data"]) == 3
    savings = charts["Cumulative cost: actual vs baseline (USD)"]
    assert [t["name"] for t in savings["data"]] == ["actual", "all to baseline tier"]
    assert "Latency percentiles (ms)" in charts and "Routing by task" in charts


@pytest.mark.parametrize("page", ["policies", "misroutes", "costs"])
def test_empty_database_has_helpful_empty_states(console: str, page: str) -> None:
    at = app(page)
    assert not at.exception
    if page == "policies":
        assert "Active: v1" in texts(at)  # seeded at start
        at.button(key="form_dry").click().run()
        assert "nothing to replay" in texts(at)
    elif page == "misroutes":
        assert "No decisions match" in texts(at)
    else:
        assert "No decisions in this range yet" in texts(at)


def test_engine_that_cannot_start_is_a_message(console: str, monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv("ROUTER_CONFIG", str(tmp_path / "missing.yaml"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("The routing engine could not start" in e.value and "config file not found" in e.value
               for e in at.error)


def test_pages_on_postgres(postgres_url: str, tmp_path: Path, simulator: Simulator,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    monkeypatch.setenv("ROUTER_CONFIG", str(write_config(tmp_path, base_url=simulator.base_url)))
    monkeypatch.setenv("ROUTER_CLASSIFIER", "keyword")
    try:
        at = app()
        assert any("**Database:** Postgres 127.0.0.1:5432/test" in m.value for m in at.sidebar.markdown)
        chat(at, "Write a Python function that reverses a list")
        chat(at, "What is the capital of France?")
        for page in ("costs", "misroutes", "policies"):
            at.switch_page(f"pages/{page}.py").run()
            assert not at.exception, (page, at.exception)
        at.switch_page("pages/costs.py").run()
        assert {m.label: m.value for m in at.metric}["Requests"] == "2"
    finally:
        for cached in _engines():
            cached.close()
        st.cache_resource.clear()
