"""Requests/s and added latency through `python -m router serve` against the tier
simulator, compared in the same run with calling the simulator directly.

Needs wrk (Debian: apt-get install wrk). Usage:
    python -m bench.throughput [--duration 10] [--concurrency 1 16 64] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import PROMPTS, command_line, percentile, require_wrk, start_stack
from storage.db import make_engine
from storage.queries import list_decisions

# The line run_wrk parses; every script of the benches ends with it.
WRK_REPORT = """done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d errors=%d p50_us=%d p99_us=%d\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""

LUA = """
local bodies = {%(bodies)s}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "%(path)s", nil, bodies[i])
end
"""


def lua_bodies(bodies: list[str]) -> str:
    """JSON bodies as a Lua table's items (long-bracket strings, no escaping needed)."""
    return ",\n".join("[==[" + b + "]==]" for b in bodies)


def lua_script(path: str, bodies: list[dict]) -> str:
    return LUA % {"bodies": lua_bodies([json.dumps(b, ensure_ascii=False) for b in bodies]), "path": path} + WRK_REPORT


def chat_script(path: Path, model: str) -> Path:
    """A wrk script at `path` that posts the bench PROMPTS in turn as chat completions for `model`."""
    path.write_text(lua_script("/v1/chat/completions",
                               [{"model": model, "messages": [{"role": "user", "content": p}]} for p in PROMPTS]))
    return path


def run_wrk(url: str, script: Path, connections: int, duration: int) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script),
                          url], capture_output=True, text=True, check=True).stdout
    match = re.search(r"RESULT (.*)", out)
    if not match:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    fields = dict(kv.split("=") for kv in match.group(1).split())
    requests, duration_us = int(fields["requests"]), int(fields["duration_us"])
    return {"requests": requests, "rps": requests / (duration_us / 1e6), "errors": int(fields["errors"]),
            "p50_ms": int(fields["p50_us"]) / 1000, "p99_ms": int(fields["p99_us"]) / 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--database-url", help="default: a SQLite file in a temp folder")
    args = parser.parse_args()
    if not require_wrk():
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="router-bench-"))
    database_url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    sim_url, api_url, procs = start_stack(tmp, database_url=database_url)
    try:
        direct_lua = chat_script(tmp / "direct.lua", "meta/llama3-70b-instruct")
        router_lua = chat_script(tmp / "router.lua", "router")

        run_wrk(sim_url, direct_lua, 4, 2)  # warm up both paths
        run_wrk(api_url, router_lua, 4, 2)
        rows = []
        for c in args.concurrency:
            direct = run_wrk(sim_url, direct_lua, c, args.duration)
            routed = run_wrk(api_url, router_lua, c, args.duration)
            rows.append((c, direct, routed))

        db = make_engine(database_url)
        decisions = list_decisions(db, limit=10_000_000)
        db.dispose()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)

    ok = [d for d in decisions if d.status == "ok"]
    upstream = [sum(a["ms"] for a in d.attempts or []) for d in ok]
    added = [d.total_ms - u for d, u in zip(ok, upstream, strict=True)]
    added_no_classify = [a - (d.classify_ms or 0) for d, a in zip(ok, added, strict=True)]
    completed = sum(r[2]["requests"] for r in rows)

    print(f"$ {command_line()}")
    print(f"database: {database_url.split('///')[0]}  duration: {args.duration}s per run  client: wrk -t1")
    print(f"{'conc':>4} | {'direct rps':>10} {'p50 ms':>7} {'p99 ms':>7} | {'router rps':>10} {'p50 ms':>7} "
          f"{'p99 ms':>7} | {'added p50':>9} {'added p99':>9} | errors")
    for c, d, r in rows:
        print(f"{c:>4} | {d['rps']:>10.0f} {d['p50_ms']:>7.2f} {d['p99_ms']:>7.2f} | {r['rps']:>10.0f} "
              f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} | {r['p50_ms'] - d['p50_ms']:>9.2f} "
              f"{r['p99_ms'] - d['p99_ms']:>9.2f} | {d['errors']}/{r['errors']}")
    print(f"decision rows: {len(decisions)} (ok {len(ok)}); requests wrk completed through the router "
          f"(excluding warm-up): {completed}; rows >= completed: {len(decisions) >= completed}")
    print("router time outside the upstream call, from the decision rows, before the commit wait (ms):")
    for name, values in (("incl. classifier", added), ("excl. classifier", added_no_classify),
                         ("classify", [d.classify_ms or 0 for d in ok]), ("route (pre-upstream)",
                                                                           [d.route_ms or 0 for d in ok])):
        print(f"  {name:<22} p50 {percentile(values, 50):7.3f}  p99 {percentile(values, 99):7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
