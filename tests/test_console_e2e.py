"""End to end: `router console` (Streamlit, warmed) headless on 127.0.0.1 with no configuration
(SQLite file, built-in classifier, built-in simulator), driven by Playwright in
Debian's Chromium. Screenshots of every page go to test-artifacts/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from storage import policies as store
from storage.db import make_engine
from storage.queries import list_decisions
from storage.reviews import reviews_for
from tests.conftest import free_port, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def console_url(tmp_path: Path) -> Iterator[tuple[str, str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "ROUTER_CONFIG", "NVIDIA_API_KEY") and not k.startswith("ROUTER_")}
    # The flow through the pages is under test here, with the keyword classifier's fixed predictions;
    # the shipped model's own behaviour is tests/test_shipped_classifier.py's.
    env["ROUTER_CLASSIFIER"] = "keyword"
    env["PYTHONPATH"] = str(ROOT)
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    proc = subprocess.Popen([sys.executable, "-m", "router", "console", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/_stcore/health", proc, timeout_s=60)
        yield url, f"sqlite:///{tmp_path / 'router.db'}"
    finally:
        proc.terminate()
        proc.wait(20)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def send(page: Page, prompt: str, expected_lines: int) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(prompt)
    box.press("Enter")
    # The decision line appears under the answer once the stream has ended and its row is committed.
    expect(page.get_by_test_id("stCaptionContainer").filter(has_text="rule ")).to_have_count(expected_lines,
                                                                                               timeout=30_000)


def open_page(page: Page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible(timeout=30_000)


def test_chat_edit_policy_and_see_it_in_costs(console_url: tuple[str, str]) -> None:
    url, database_url = console_url
    with sync_playwright() as p:
        assert Path(CHROMIUM).exists(), (f"{CHROMIUM} is missing: `bash scripts/test` installs it, or "
                                         "apt-get install chromium fonts-ipafont-gothic fonts-noto-color-emoji")
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(url)
        expect(page.get_by_role("heading", name="Playground")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("llama-3-8b (simulator)")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("Try a prompt.")).to_be_visible()  # the empty playground says what to do
        expect(page.get_by_text("are answered by the built-in simulator")).to_be_visible()
        shot(page, "playground-empty")

        send(page, "Pythonでソートアルゴリズムを実装して", 1)
        send(page, "このアルゴリズムの計算量を説明して", 2)
        lines = page.get_by_test_id("stCaptionContainer").filter(has_text="rule ")
        expect(lines.nth(0)).to_contain_text("Code Generation")
        expect(lines.nth(0)).to_contain_text("nemotron-super-49b")
        expect(lines.nth(1)).to_contain_text("Open QA")
        expect(lines.nth(1)).to_contain_text("llama-3-70b")
        expect(page.get_by_text("simulated answer from meta/llama3-70b-instruct")).to_be_visible()
        thumbs_down = page.locator('[data-testid="stFeedbackButton"][aria-label="Thumbs down"]')
        expect(thumbs_down).to_have_count(2)  # both turns drawn, so .first is the first turn's
        thumbs_down.first.click()
        expect(page.get_by_text("Thanks, recorded on the decision.")).to_be_visible(timeout=10_000)
        shot(page, "playground")

        db = make_engine(database_url)
        rows = list_decisions(db, newest_first=False)
        assert [(r.task, r.tier, r.source) for r in rows] == [("Code Generation", "nemotron-super-49b", "playground"),
                                                              ("Open QA", "llama-3-70b", "playground")]
        assert [r.verdict for r in reviews_for(db, rows[0].id)] == ["thumbs_down"]

        # Policies: send Open QA to the small tier, save and activate from the YAML editor.
        open_page(page, "Policies")
        page.get_by_role("tab", name="Edit as YAML").click()
        area = page.get_by_label("Policy YAML")
        expect(area).to_have_value(re.compile(r"name: qa-creative"), timeout=30_000)
        original = area.input_value()
        edited = original.replace("- name: qa-creative\n  tier: llama-3-70b", "- name: qa-creative\n  tier: llama-3-8b")
        assert edited != original
        area.fill(edited)
        area.press("Control+Enter")
        panel = page.get_by_role("tabpanel", name="Edit as YAML")
        panel.get_by_text("Activate after saving").click()
        panel.get_by_role("button", name="Save as new version").click()
        expect(page.get_by_text("Saved task-complexity v2 and activated it.")).to_be_visible(timeout=30_000)
        shot(page, "policies")
        assert store.active_versions(db)["task-complexity"] == 2

        # The next turn routes under v2: QA now goes to the small tier.
        open_page(page, "Playground")
        send(page, "What is the capital of France?", 3)
        expect(page.get_by_test_id("stCaptionContainer").filter(has_text="rule ").nth(2)).to_contain_text(
            "llama-3-8b")
        assert list_decisions(db, limit=1)[0].policy_version == 2

        open_page(page, "Misroutes")
        expect(page.get_by_text("Review a decision")).to_be_visible()
        expect(page.get_by_text("Verdict", exact=True)).to_be_visible(timeout=30_000)
        page.locator(".js-plotly-plot:visible").first.wait_for(timeout=30_000)
        shot(page, "misroutes")

        open_page(page, "Costs and latency")
        versions = page.get_by_test_id("stDataFrame").first
        expect(versions).to_contain_text("task-complexity v2", timeout=30_000)
        expect(versions).to_contain_text("task-complexity v1")
        expect(page.get_by_text("Requests per tier per hour")).to_be_visible()
        page.locator(".js-plotly-plot:visible").first.wait_for(timeout=30_000)
        shot(page, "costs")
        # The offline cost-quality curve (bench/curves, measured on RouterBench) opens on request.
        page.get_by_text("Cost-quality curve on public outcome data").click()
        expect(page.get_by_text("quality and cost are shares of always using GPT-4")).to_be_visible(timeout=30_000)
        expect(page.locator(".js-plotly-plot:visible").filter(has_text="RouterBench")).to_have_count(1,
                                                                                                  timeout=30_000)
        page.wait_for_timeout(1000)  # the expander's opening animation, for a whole figure in the shot
        shot(page, "costs-curve")
        browser.close()
