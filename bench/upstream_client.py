"""The tier client's CPU per call on its two HTTP clients, same run, same simulator: aiohttp
(what `serve` uses) and httpx (the seam the unit tests use, and the client before it).

    python -m bench.upstream_client [--requests 3000] [--concurrency 32] [--rounds 2]

The simulator runs in a process of its own and answers at once; the client runs on uvloop, as
`serve` does; the figure is this process's CPU time per completed call (time.process_time), so
it is the client's cost alone.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
import uvloop

from bench.common import command_line, free_port, start, wait_http
from router.policy import Policy, parse_policy
from router.tiers import TierClient


def policy(url: str) -> Policy:
    return parse_policy({"name": "bench", "default_tier": "t", "tiers": {
        "t": {"model": "m", "base_url": url, "price_in": 0, "price_out": 0, "timeout_s": 30, "max_retries": 0}}})


async def measure(client: TierClient, url: str, requests: int, concurrency: int) -> tuple[float, float]:
    """(calls per second, client CPU ms per call)."""
    p = policy(url)
    payload = {"messages": [{"role": "user", "content": "Write a haiku about the sea"}], "max_tokens": 32}
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await client.complete(p, ["t"], payload)

    await asyncio.gather(*(one() for _ in range(min(200, requests))))  # warm the connection pool
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(requests)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await client.aclose()
    return requests / wall, cpu * 1000 / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        sim = start(["-m", "router", "--log-level", "warning", "simulate", "--port", str(port), "--ttft-ms", "0",
                     "--tokens-per-s", "0"], log=Path(tmp) / "simulator.log")
        try:
            wait_http(f"http://127.0.0.1:{port}/health")
            url = f"http://127.0.0.1:{port}/v1"
            print(f"$ {command_line()}")
            print(f"{'client':<10} {'round':>5} {'calls/s':>9} {'CPU ms/call':>12}")
            cpu: dict[str, list[float]] = {"aiohttp": [], "httpx": []}
            for r in range(1, args.rounds + 1):
                for name in cpu:
                    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)  # one of the old 8 pools
                    client = (TierClient() if name == "aiohttp"
                              else TierClient(transport=httpx.AsyncHTTPTransport(limits=limits)))
                    rate, ms = uvloop.run(measure(client, url, args.requests, args.concurrency))
                    cpu[name].append(ms)
                    print(f"{name:<10} {r:>5} {rate:>9,.0f} {ms:>12.3f}")
            best = {name: min(v) for name, v in cpu.items()}
            print(f"httpx / aiohttp CPU per call (best rounds): {best['httpx'] / best['aiohttp']:.1f}x")
        finally:
            sim.terminate()
            sim.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
