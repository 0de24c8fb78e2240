"""`serve --workers N` under load: req/s, added latency and CPU per request for each worker
count, in one run against the same simulator (and the simulator called directly beside them).

CPU per request is the user+system time of the server's process tree (parent and workers)
during the run, divided by the responses wrk counted. Needs wrk. Usage:
    python -m bench.workers [--workers 1 2] [--duration 15] [--connections 32] [--ttft-ms 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench.common import command_line, cpu_seconds, require_wrk, start_stack
from bench.throughput import chat_script, run_wrk


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--ttft-ms", type=float, default=20, help="the simulator's delay per answer")
    parser.add_argument("--classifier", default="keyword", help="ROUTER_CLASSIFIER for the server")
    args = parser.parse_args()
    if not require_wrk():
        return 2
    rows = []
    direct = None
    for workers in args.workers:
        tmp = Path(tempfile.mkdtemp(prefix="router-workers-"))
        sim_url, api_url, procs = start_stack(tmp, database_url=f"sqlite:///{tmp / 'bench.db'}",
                                              ttft_ms=args.ttft_ms, workers=workers,
                                              env={"ROUTER_CLASSIFIER": args.classifier})
        try:
            routed_lua = chat_script(tmp / "router.lua", "router")
            direct_lua = chat_script(tmp / "direct.lua", "meta/llama3-70b-instruct")
            if direct is None:
                direct = run_wrk(sim_url, direct_lua, args.connections, args.duration)
            run_wrk(api_url, routed_lua, 4, 3)  # warm-up: every worker's caches and connections
            before = cpu_seconds(procs[0].pid)
            result = run_wrk(api_url, routed_lua, args.connections, args.duration)
            result["cpu_ms"] = (cpu_seconds(procs[0].pid) - before) * 1000 / max(1, result["requests"])
            rows.append((workers, result))
            time.sleep(1)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(30)
    assert direct is not None
    print(f"$ {command_line()}")
    print(f"simulator answers after {args.ttft_ms:g} ms; {args.connections} connections; wrk -t1; SQLite; "
          f"classifier {args.classifier}")
    print(f"{'':<12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'added p99':>10} {'CPU ms/req':>11}")
    print(f"{'direct':<12} {direct['rps']:>8.0f} {direct['p50_ms']:>8.2f} {direct['p99_ms']:>8.2f}")
    for workers, r in rows:
        print(f"{f'{workers} worker(s)':<12} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
              f"{r['p50_ms'] - direct['p50_ms']:>10.2f} {r['p99_ms'] - direct['p99_ms']:>10.2f} {r['cpu_ms']:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
