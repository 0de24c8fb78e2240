"""The console's first page load, cold: `router console` (engine built before the port opens)
against `streamlit run app.py` (engine built on the first page), in one run, on the embedded
defaults (a fresh SQLite file, the shipped classifier, the simulator). Not a test.

    python -m bench.console_first_load [--runs 3]

For each launcher: seconds from start until the health endpoint answers, and from the first
browser request until the Playground's sidebar shows the tiers (the page is usable), then the
same for a second page load. Needs Debian's chromium (`bash scripts/test` installs it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import ROOT, command_line, free_port

CHROMIUM = "/usr/bin/chromium"
LAUNCHERS = {
    "router console": lambda port: [sys.executable, "-m", "router", "console", "--port", str(port)],
    "streamlit run app.py": lambda port: [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                                          "--server.headless", "true", "--server.port", str(port)],
}


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in {timeout_s:g} s")


def one_run(name: str) -> tuple[float, float, float]:
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_") and k != "DATABASE_URL"}
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    with tempfile.TemporaryDirectory() as cwd:
        started = time.perf_counter()
        proc = subprocess.Popen(LAUNCHERS[name](port), cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            wait_up(f"http://127.0.0.1:{port}/_stcore/health", proc)
            up = time.perf_counter() - started
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
                loads = []
                for _ in range(2):
                    page = browser.new_page()
                    t0 = time.perf_counter()
                    page.goto(f"http://127.0.0.1:{port}")
                    expect(page.get_by_text("llama-3-8b (simulator)")).to_be_visible(timeout=120_000)
                    loads.append(time.perf_counter() - t0)
                    page.close()
                browser.close()
        finally:
            proc.terminate()
            proc.wait(30)
    return up, loads[0], loads[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium (or bash scripts/test)", file=sys.stderr)
        return 2
    print(f"$ {command_line()}")
    print(f"{'launcher':<22} {'port open s':>12} {'first page s':>13} {'second page s':>14}  (median of {args.runs})")
    for name in LAUNCHERS:
        runs = [one_run(name) for _ in range(args.runs)]
        up, first, second = (statistics.median(r[i] for r in runs) for i in range(3))
        print(f"{name:<22} {up:>12.2f} {first:>13.2f} {second:>14.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
