"""A load run of several minutes against `python -m router serve` with the simulator as
tiers: throughput, latency, the server's memory over time, and decisions logged versus
responses received. Optionally compared, in the same run and against the same simulator,
with LiteLLM's proxy, as a ratio of added latency.

Needs wrk (apt-get install wrk). LiteLLM is not a project dependency: install it in a
venv of its own (python -m venv /tmp/litellm && /tmp/litellm/bin/pip install 'litellm[proxy]')
and pass --litellm /tmp/litellm/bin/litellm.

Usage: python -m bench.load [--duration 180] [--connections 32] [--litellm PATH]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import command_line, free_port, require_wrk, start_stack, wait_http
from bench.throughput import chat_script, run_wrk
from storage.db import make_engine
from storage.queries import list_decisions

LITELLM_CONFIG = """
model_list:
  - model_name: router
    litellm_params:
      model: openai/meta/llama3-70b-instruct
      api_base: {api_base}
      api_key: unused
litellm_settings:
  drop_params: true
  telemetry: false
general_settings:
  dangerously_permit_weak_or_unset_master_key: true  # a loopback benchmark, no clients but wrk
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sample_memory(pid: int, every_s: float, out: list[tuple[float, float]], stop: threading.Event) -> None:
    start = time.monotonic()
    while not stop.is_set():
        out.append((time.monotonic() - start, rss_mb(pid)))
        stop.wait(every_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=180, help="seconds of load on the router")
    parser.add_argument("--compare-duration", type=int, default=30, help="seconds for the direct/LiteLLM runs")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--ttft-ms", type=float, default=20, help="the simulator's delay per answer")
    parser.add_argument("--litellm", help="path to LiteLLM's `litellm` command, to compare with its proxy")
    args = parser.parse_args()
    if not require_wrk():
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="router-load-"))
    lite_port = free_port()
    database_url = f"sqlite:///{tmp / 'load.db'}"
    sim_url, api_url, procs = start_stack(tmp, database_url=database_url, ttft_ms=args.ttft_ms)
    api = procs[0]
    lite = None
    try:
        router_lua = chat_script(tmp / "router.lua", "router")
        direct_lua = chat_script(tmp / "direct.lua", "meta/llama3-70b-instruct")

        memory: list[tuple[float, float]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_memory, args=(api.pid, 5.0, memory, stop), daemon=True)
        run_wrk(api_url, router_lua, 4, 3)  # warm-up
        sampler.start()
        routed = run_wrk(api_url, router_lua, args.connections, args.duration)
        stop.set()
        sampler.join()
        time.sleep(1)
        direct = run_wrk(sim_url, direct_lua, args.connections, args.compare_duration)
        routed_short = run_wrk(api_url, router_lua, args.connections, args.compare_duration)

        litellm = None
        if args.litellm:
            cfg = tmp / "litellm.yaml"
            cfg.write_text(LITELLM_CONFIG.format(api_base=sim_url + "/v1"))
            log = open(tmp / "litellm.log", "w")  # noqa: SIM115 (closed with the process)
            env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # no fetch at start
            lite = subprocess.Popen([args.litellm, "--config", str(cfg), "--port", str(lite_port), "--host",
                                     "127.0.0.1", "--num_workers", "1"], stdout=log, stderr=subprocess.STDOUT,
                                    env=env)
            wait_http(f"http://127.0.0.1:{lite_port}/health/liveliness", timeout_s=120)
            run_wrk(f"http://127.0.0.1:{lite_port}", router_lua, 4, 3)
            litellm = run_wrk(f"http://127.0.0.1:{lite_port}", router_lua, args.connections, args.compare_duration)

        db = make_engine(database_url)
        decisions = list_decisions(db, limit=10_000_000)
        db.dispose()
    finally:
        for proc in [p for p in (lite, *procs) if p is not None]:
            proc.terminate()
            proc.wait(15)

    print(f"$ {command_line()}")
    print(f"simulator answers after {args.ttft_ms:g} ms; {args.connections} connections; wrk -t1; SQLite")
    print(f"router, {args.duration}s: {routed['rps']:.0f} req/s, p50 {routed['p50_ms']:.2f} ms, "
          f"p99 {routed['p99_ms']:.2f} ms, {routed['errors']} errors, {routed['requests']} responses")
    print(f"{'':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'added p99':>10}")
    rows = [("direct", direct), ("router", routed_short)] + ([("litellm", litellm)] if litellm else [])
    for name, r in rows:
        print(f"{name:<10} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
              f"{r['p50_ms'] - direct['p50_ms']:>10.2f} {r['p99_ms'] - direct['p99_ms']:>10.2f}")
    if litellm:
        ratio = (litellm["p50_ms"] - direct["p50_ms"]) / max(1e-9, routed_short["p50_ms"] - direct["p50_ms"])
        print(f"LiteLLM adds {ratio:.1f}x the router's added latency at p50")
    first, peak, last = memory[0][1], max(m for _, m in memory), memory[-1][1]
    half = memory[len(memory) // 2][1]
    print(f"router RSS over the long run (MB): start {first:.0f}, middle {half:.0f}, end {last:.0f}, peak {peak:.0f} "
          f"({len(memory)} samples every 5 s)")
    answered = routed["requests"] + routed_short["requests"]
    print(f"decision rows {len(decisions)} (ok {sum(d.status == 'ok' for d in decisions)}) for {answered} responses "
          f"wrk counted (plus warm-up): {'none lost' if len(decisions) >= answered else 'ROWS MISSING'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
