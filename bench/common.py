"""Helpers shared by the benchmarks: processes on loopback, percentiles, a bench config."""

from __future__ import annotations

import os
import random
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = [
    "Write a Python function that merges two sorted lists",
    "What is the capital of France?",
    "Summarize the following meeting notes: we agreed to ship on Friday and to review the budget.",
    "Rewrite this paragraph in a more formal tone: hey folks, the build is broken again",
    "Prove step by step that the algorithm is optimal and analyze the trade-offs of a distributed approach",
    "Pythonでソートアルゴリズムを実装して",
    "Give me 10 ideas for a team offsite",
    "Hello! How are you today?",
]


def require_wrk() -> bool:
    """The load benchmarks drive HTTP with wrk; say how to get it when it is missing."""
    if shutil.which("wrk"):
        return True
    print("wrk is required: apt-get install wrk", file=sys.stderr)
    return False


def command_line() -> str:
    """How this benchmark was started, as `python -m bench.NAME ...`."""
    module = "bench." + Path(sys.argv[0]).stem
    return "python -m " + " ".join(shlex.quote(a) for a in [module, *sys.argv[1:]])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout_s}s")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and all its descendants so far (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        todo += children.get(current, [])
    return total


def start(args: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (closed with the process)
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out,
                            stderr=subprocess.STDOUT)


def bench_config(path: Path, simulator_url: str) -> Path:
    """The seed policies with every tier pointed at one external simulator, no keys."""
    raw = yaml.safe_load((ROOT / "config" / "router.yaml").read_text())
    tiers = {name: {**tier, "base_url": simulator_url, "api_key_env": None} for name, tier in raw["tiers"].items()}
    for policy in raw["policies"]:
        policy["tiers"] = tiers
    raw["tiers"] = tiers
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def start_stack(tmp: Path, *, database_url: str, ttft_ms: float = 0, workers: int = 1,
                env: dict[str, str] | None = None, simulator_url: str | None = None
                ) -> tuple[str, str, list[subprocess.Popen]]:
    """The simulator (unless `simulator_url` names a running one) and `serve --workers N`, every
    tier on that simulator, as processes on loopback, up and answering. Returns the simulator
    URL, the API URL and the processes (the server first)."""
    procs = []
    sim_url = simulator_url
    if sim_url is None:
        sim_port = free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        procs.append(start(["-m", "router", "--log-level", "warning", "simulate", "--port", str(sim_port),
                            "--ttft-ms", str(ttft_ms), "--tokens-per-s", "0"], log=tmp / "simulator.log"))
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    config = bench_config(tmp / "bench.yaml", sim_url + "/v1")
    api = start(["-m", "router", "--log-level", "warning", "serve", "--port", str(api_port), "--workers",
                 str(workers)], env={"DATABASE_URL": database_url, "ROUTER_CONFIG": str(config), **(env or {})},
                log=tmp / "serve.log")
    wait_http(sim_url + "/health")
    wait_http(api_url + "/health?tiers=0", timeout_s=90)
    return sim_url, api_url, [api, *procs]


def salt() -> int:
    """A nine-digit number that makes a load bench's prompts new to the classifier's cache: every
    bench that times fresh prompts, and the limit they are compared with, uses this shape."""
    return random.randint(10**8, 10**9 - 1)


def inference_ms(model_dir: Path, n: int = 60) -> float:
    """Median time of one prompt through the shipped model on one thread (no cache), each prompt
    with a suffix of the shape the load benches make prompts unique with: (nine digits-counter)."""
    from router.classifier.onnx import OnnxClassifier

    classifier = OnnxClassifier(model_dir, threads=1)
    times = []
    run_salt = salt()
    for i in range(n):
        text = f"{PROMPTS[i % len(PROMPTS)]} ({run_salt}-{i})"
        start_s = time.perf_counter()
        classifier.classify([text])
        times.append((time.perf_counter() - start_s) * 1000)
    return statistics.median(times[5:])
