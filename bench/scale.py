"""The decision log at scale, on SQLite and Postgres: request latency through `serve` with an
empty decisions table and with ROWS decisions (default 1,000,000), and how long each
console page takes to render with ROWS decisions. Not a test.

    python -m bench.scale [--rows 1000000] [--requests 400] [--rounds 3] [--databases sqlite,postgres]

Requests are chats through `python -m router serve` (keyword classifier, every tier on one
simulator answering at once), sent one at a time and 16 at a time; the figures are the
client's wall time, the median over rounds that alternate the empty and the full database
(both analysed after the bulk insert). Pages are rendered server-side by Streamlit's AppTest
(the script run that builds every chart and table, as `tests/test_console_scale.py` does at
100,000 rows) and in headless Chromium through `router console` (from navigation until the
script has finished and every chart is drawn, default range: 7 days). Postgres gets two
databases of its own (`router_scale_empty`, `router_scale_full`), dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bench.common import (
    PROMPTS,
    ROOT,
    bench_config,
    command_line,
    free_port,
    percentile,
    start,
    start_stack,
    wait_http,
)
from bench.seed_decisions import progress_printer, seed
from storage.db import make_engine, migrate
from storage.models import DECISIONS

PAGES = ("playground", "policies", "misroutes", "costs")
POSTGRES_DB = "router_scale"  # a prefix: _empty and _full
WARMUP = 20
CONCURRENCY = (1, 16)


@dataclass(frozen=True)
class Requests:
    p50_ms: dict[int, float]  # by concurrency
    p99_ms: dict[int, float]
    sent: int
    logged: int  # rows the requests added to the table: every request must leave one


def fresh_database(kind: str, tmp: Path, postgres_url: str, name: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / name}.db"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {POSTGRES_DB}_{name}"))
        conn.execute(text(f"CREATE DATABASE {POSTGRES_DB}_{name}"))
    admin.dispose()
    return make_url(postgres_url).set(database=f"{POSTGRES_DB}_{name}").render_as_string(hide_password=False)


def drop_database(kind: str, postgres_url: str, name: str) -> None:
    if kind == "postgres":
        admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {POSTGRES_DB}_{name} WITH (FORCE)"))
        admin.dispose()


def settle(url: str) -> None:
    """Statistics and visibility up to date after the bulk insert, so autovacuum does not run
    during the timed requests."""
    db = make_engine(url)
    if db.dialect.name == "postgresql":
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with db.begin() as conn:
            conn.execute(text("ANALYZE"))
    db.dispose()


def count_rows(url: str) -> int:
    db = make_engine(url)
    with db.connect() as conn:
        n = conn.execute(select(func.count()).select_from(DECISIONS)).scalar_one()
    db.dispose()
    return int(n)


def chat(i: int) -> dict[str, object]:
    return {"model": "router", "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]}


async def request_latency(api_url: str, n: int, concurrency: int) -> list[float]:
    out: list[float] = []
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=api_url, timeout=30, limits=limits) as client:
        async def one(i: int) -> None:
            start = time.perf_counter()
            response = await client.post("/v1/chat/completions", json=chat(i))
            response.raise_for_status()
            out.append((time.perf_counter() - start) * 1000)

        for i in range(WARMUP):  # warm the connection pool and the server's caches
            await one(i)
        out.clear()
        for start in range(0, n, concurrency):
            await asyncio.gather(*(one(i) for i in range(start, min(n, start + concurrency))))
    return out


def measure_requests(url: str, tmp: Path, n: int, sim_url: str) -> Requests:
    before = count_rows(url)
    _, api_url, procs = start_stack(tmp, database_url=url, env={"ROUTER_CLASSIFIER": "keyword"},
                                    simulator_url=sim_url)
    figures: dict[int, list[float]] = {}
    try:
        for concurrency in CONCURRENCY:
            figures[concurrency] = asyncio.run(request_latency(api_url, n, concurrency))
    finally:
        procs[0].terminate()  # a clean stop drains the decision log
        procs[0].wait(30)
    return Requests({c: percentile(v, 50) for c, v in figures.items()},
                    {c: percentile(v, 99) for c, v in figures.items()},
                    sent=len(CONCURRENCY) * (n + WARMUP), logged=count_rows(url) - before)


def render_pages(url: str, sim_url: str, tmp: Path) -> dict[str, tuple[float, float]]:
    """Each page's first render and rerun in seconds; costs also with the range at 'All time'."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ.update({"DATABASE_URL": url, "ROUTER_CLASSIFIER": "keyword",
                       "ROUTER_CONFIG": str(bench_config(tmp / "console.yaml", sim_url + "/v1"))})
    st.cache_resource.clear()
    out: dict[str, tuple[float, float]] = {}

    def timed(at: AppTest) -> float:
        start = time.perf_counter()
        at.run()
        if at.exception:
            raise RuntimeError(f"page raised: {at.exception}")
        return time.perf_counter() - start

    for page in PAGES:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.run()  # the engine starts once per process; that is not a page load
        at.switch_page(f"pages/{page}.py")
        out[page] = (timed(at), timed(at))
        if page == "costs":
            at.selectbox(key="costs_range").set_value("All time")
            out["costs, All time"] = (timed(at), timed(at))
        if page == "misroutes":
            at.selectbox(key="mis_range").set_value("All time")
            out["misroutes, All time"] = (timed(at), timed(at))
    st.cache_resource.clear()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=400, help="requests per concurrency level")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per table, alternating empty and full")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    if unknown := set(kinds) - {"sqlite", "postgres"}:
        parser.error(f"unknown database kind {', '.join(sorted(unknown))}: use sqlite and/or postgres")

    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    simulator = start(["-m", "router", "--log-level", "warning", "simulate", "--port", str(sim_port), "--ttft-ms", "0",
                       "--tokens-per-s", "0"])
    lines: list[str] = []
    try:
        for kind in kinds:
            lines += measure_database(kind, args, sim_url)
    finally:
        simulator.terminate()
        simulator.wait(30)
    print(f"$ {command_line()}")
    for line in lines:
        print(line)
    return 0


BROWSER_PAGES = {"playground": ("", "Playground"), "policies": ("policies", "Policies"),
                 "misroutes": ("misroutes", "Misroutes"), "costs": ("costs", "Costs and latency")}
CHROMIUM = "/usr/bin/chromium"
# Done: the script has finished and every plotly chart it sent is drawn.
RENDERED = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  return [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].every(c => c.querySelector('svg.main-svg'));
}"""


def browser_pages(url: str, sim_url: str, tmp: Path) -> dict[str, tuple[float, float]]:
    """Each page in headless Chromium through `router console`: seconds from navigation until
    its title shows, the script has finished and every chart is drawn; a first and a second load."""
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    env = {"DATABASE_URL": url, "ROUTER_CLASSIFIER": "keyword", "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
           "ROUTER_CONFIG": str(bench_config(tmp / "browser.yaml", sim_url + "/v1"))}
    console = start(["-m", "router", "--log-level", "warning", "console", "--port", str(port)], env=env,
                    log=tmp / "console.log")
    out: dict[str, tuple[float, float]] = {}
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", timeout_s=120)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            for name, (path, title) in BROWSER_PAGES.items():
                loads = []
                for _ in range(2):
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    start_s = time.perf_counter()
                    page.goto(f"http://127.0.0.1:{port}/{path}")
                    expect(page.get_by_role("heading", name=title)).to_be_visible(timeout=120_000)
                    page.wait_for_function(RENDERED, timeout=120_000)
                    loads.append(time.perf_counter() - start_s)
                    page.close()
                out[name] = (loads[0], loads[1])
            # An operator moves between pages in one tab: the sidebar link, no new session.
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function(RENDERED, timeout=120_000)
            switches: dict[str, list[float]] = {name: [] for name in BROWSER_PAGES}
            for _ in range(2):
                for name in ("policies", "misroutes", "costs", "playground"):
                    title = BROWSER_PAGES[name][1]
                    start_s = time.perf_counter()
                    page.get_by_role("link", name=title).click()
                    expect(page.get_by_role("heading", name=title)).to_be_visible(timeout=120_000)
                    page.wait_for_function(RENDERED, timeout=120_000)
                    switches[name].append(time.perf_counter() - start_s)
            for name, times in switches.items():
                out[f"{name}, in-app switch"] = (times[0], times[1])
            browser.close()
    finally:
        console.terminate()
        console.wait(30)
    return out


def measure_database(kind: str, args: argparse.Namespace, sim_url: str) -> list[str]:
    tmp = Path(tempfile.mkdtemp(prefix=f"router-scale-{kind}-"))
    urls = {name: fresh_database(kind, tmp, args.postgres_url, name) for name in ("empty", "full")}

    rounds: dict[str, list[Requests]] = {"empty": [], "full": []}
    try:
        for url in urls.values():
            migrate(make_engine(url))
        db = make_engine(urls["full"])  # its policies are the bench's: every tier on the simulator
        seed(db, args.rows, progress=progress_printer(args.rows, f"[{kind}] "),
             config_path=bench_config(tmp / "seed.yaml", sim_url + "/v1"))
        db.dispose()
        for url in urls.values():
            settle(url)
        # Alternate the two databases, and which goes first, so drift and order fall on both alike.
        for i in range(args.rounds):
            for name in ("empty", "full") if i % 2 == 0 else ("full", "empty"):
                url = urls[name]
                print(f"[{kind}] round {i + 1} of {args.rounds}: requests, {name} table ...", flush=True)
                rounds[name].append(measure_requests(url, tmp, args.requests, sim_url))
        print(f"[{kind}] rendering pages ...", flush=True)
        pages = render_pages(urls["full"], sim_url, tmp)
        browser = browser_pages(urls["full"], sim_url, tmp) if Path(CHROMIUM).exists() else {}
    finally:
        for name in urls:
            drop_database(kind, args.postgres_url, name)
    lines = []
    for c in CONCURRENCY:
        e50, e99, f50, f99 = (statistics.median(getattr(r, q)[c] for r in rounds[name])
                              for name in ("empty", "full") for q in ("p50_ms", "p99_ms"))
        lines.append(f"{kind:<9} requests {c:>2} at a time: empty p50 {e50:6.2f} p99 {e99:6.2f} ms | "
                     f"{args.rows:,} rows p50 {f50:6.2f} p99 {f99:6.2f} ms | "
                     f"ratio p50 {f50 / e50:4.2f} p99 {f99 / e99:4.2f}")
    for name in rounds:
        logged, sent = sum(r.logged for r in rounds[name]), sum(r.sent for r in rounds[name])
        lines.append(f"{kind:<9} rows logged, {name} table: {logged} of {sent} requests")
    for page, (first, again) in pages.items():
        lines.append(f"{kind:<9} page {page:<20} first {first:6.2f} s, rerun {again:6.2f} s (script run)")
    for page, (first, again) in browser.items():
        lines.append(f"{kind:<9} page {page:<20} first {first:6.2f} s, again {again:6.2f} s (Chromium, drawn)")
    if not browser:
        lines.append(f"{kind:<9} (no {CHROMIUM}: pages not timed in a browser)")
    return lines


if __name__ == "__main__":
    sys.exit(main())
