"""The router beside its peers, in one run against the same tier simulator: req/s, added p50/p99
over calling the simulator directly, and CPU ms per request of each proxy's process tree.

Peers are installed into venvs of their own under --peers-dir (never project dependencies):
sglang-router (Rust, round robin, no classifier: the proxy floor), LiteLLM's proxy (one worker,
no database, its fastest sensible settings) and RouteLLM's OpenAI server (random router: no
model of its own to run). Rows whose peer is not installed are left out, saying why.

The router runs with the keyword classifier and with the shipped learned model, on repeating
prompts (answered from the classifier's cache) and on prompts that never repeat (every request
classified); the learned model's inference-bound limit is cores / one prompt's inference time on
one thread, measured in the same run.

Needs wrk. Usage:
    python -m bench.peers --install          # once: create the peers' venvs (network)
    python -m bench.peers [--duration 10] [--connections 32] [--ttft-ms 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    PROMPTS,
    ROOT,
    command_line,
    cpu_seconds,
    free_port,
    inference_ms,
    require_wrk,
    salt,
    start,
    start_stack,
    wait_http,
)
from bench.throughput import WRK_REPORT, lua_bodies, run_wrk

PEERS = {"sglang": ["sglang-router==0.3.2"], "litellm": ["litellm[proxy]==1.108.7"],
         "routellm": ["routellm[serve]==0.2.0"]}
DEFAULT_PEERS_DIR = Path.home() / ".cache" / "router-bench-peers"

# Each request a prompt of its own when `unique`: a counter and a salt that the classifier's cache
# has never seen, so every request is classified. The salt is written in by `salted` for each run:
# wrk seeds math.random the same way in every run and thread, so a salt drawn in Lua repeats the
# earlier runs' prompts (answered from the cache).
LUA = """
local bodies = {%(bodies)s}
local i = 0
local salt = "__SALT__"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i + 1
  local body = bodies[(i %% #bodies) + 1]
  if %(unique)s then body = body:gsub("__N__", salt .. "-" .. tostring(i)) else body = body:gsub(" %%(__N__%%)", "") end
  return wrk.format(nil, "/v1/chat/completions", nil, body)
end
"""

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
  turn_off_message_logging: true
general_settings:
  dangerously_permit_weak_or_unset_master_key: true  # a loopback benchmark, no clients but wrk
"""


@dataclass(frozen=True)
class Setup:
    """One way of running the router: its classifier, `serve --workers` and extra environment."""

    label: str
    classifier: str
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    repeating: bool = True


SETUPS = (
    Setup("keyword", "keyword"),
    Setup("learned", "auto"),  # one one-thread run per core (the default layout)
    # One batch at a time over both cores.
    Setup("learned, 2 threads x 1 run", "auto", env={"ROUTER_CLASSIFIER_THREADS": "2",
                                                      "ROUTER_CLASSIFIER_RUNS": "1"}, repeating=False),
    Setup("learned, 2 workers", "auto", workers=2, repeating=False),
)


@dataclass
class Row:
    name: str
    result: dict[str, float]
    cpu_ms: float


def script(path: Path, model: str, *, unique: bool) -> Path:
    bodies = [json.dumps({"model": model, "messages": [{"role": "user", "content": p + " (__N__)"}]},
                         ensure_ascii=False) for p in PROMPTS]
    path.write_text(LUA % {"bodies": lua_bodies(bodies), "unique": "true" if unique else "false"} + WRK_REPORT)
    return path


def salted(lua: Path) -> Path:
    """A copy of the script with a salt no earlier run used (nine digits, as inference_ms times)."""
    copy = lua.with_name(f"{lua.stem}-{uuid.uuid4().hex[:12]}.lua")
    copy.write_text(lua.read_text().replace("__SALT__", str(salt())))
    return copy


def measure(name: str, url: str, lua: Path, pid: int, connections: int, duration: int) -> Row:
    run_wrk(url, salted(lua), 4, 2)  # warm-up
    before = cpu_seconds(pid)
    result = run_wrk(url, salted(lua), connections, duration)
    return Row(name, result, (cpu_seconds(pid) - before) * 1000 / max(1, result["requests"]))


def install(peers_dir: Path) -> int:
    for name, requirements in PEERS.items():
        venv = peers_dir / name
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        print(f"installing {' '.join(requirements)} into {venv}", flush=True)
        done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *requirements])
        if done.returncode:
            print(f"  failed ({done.returncode}); its rows will be left out", file=sys.stderr)
    return 0


def start_peer(name: str, venv: Path, sim_url: str, port: int, tmp: Path) -> subprocess.Popen | None:
    log = open(tmp / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "OPENAI_API_KEY": "unused",
           "OPENAI_BASE_URL": sim_url + "/v1"}
    if name == "sglang":
        args = [str(venv / "bin" / "python"), "-m", "sglang_router.launch_router", "--worker-urls", sim_url,
                "--host", "127.0.0.1", "--port", str(port), "--policy", "round_robin"]
        health = f"http://127.0.0.1:{port}/health"
    elif name == "litellm":
        cfg = tmp / "litellm.yaml"
        cfg.write_text(LITELLM_CONFIG.format(api_base=sim_url + "/v1"))
        args = [str(venv / "bin" / "litellm"), "--config", str(cfg), "--port", str(port), "--host", "127.0.0.1",
                "--num_workers", "1"]
        health = f"http://127.0.0.1:{port}/health/liveliness"
    else:
        args = [str(venv / "bin" / "python"), "-m", "routellm.openai_server", "--routers", "random",
                "--strong-model", "openai/meta/llama3-70b-instruct", "--weak-model", "openai/meta/llama3-8b-instruct",
                "--base-url", sim_url + "/v1", "--api-key", "unused", "--port", str(port)]
        health = f"http://127.0.0.1:{port}/v1/chat/completions"  # no health route: a 405 says it is up
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    try:
        wait_http(health, timeout_s=180)
    except RuntimeError:
        proc.terminate()
        print(f"{name}: did not come up (log: {tmp / f'{name}.log'}); left out", file=sys.stderr)
        return None
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--ttft-ms", type=float, default=20, help="the simulator's delay per answer")
    parser.add_argument("--peers-dir", type=Path, default=DEFAULT_PEERS_DIR)
    parser.add_argument("--install", action="store_true", help="create or update the peers' venvs, then exit")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "prompt-classifier")
    args = parser.parse_args()
    if args.install:
        return install(args.peers_dir)
    if not require_wrk():
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="router-peers-"))
    rows: list[Row] = []
    # Timed before and after the runs (it drifts by 10-20% on a shared machine): the limit uses the mean.
    infer_before = inference_ms(args.model, n=200)
    cores = os.cpu_count() or 1
    procs: list[subprocess.Popen] = []
    try:
        sim_port = free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        sim = start(["-m", "router", "--log-level", "warning", "simulate", "--port", str(sim_port), "--ttft-ms",
                     str(args.ttft_ms), "--tokens-per-s", "0"], log=tmp / "simulator.log")
        procs.append(sim)
        wait_http(sim_url + "/health")
        direct = measure("direct (simulator)", sim_url, script(tmp / "direct.lua", "meta/llama3-70b-instruct",
                                                              unique=False), sim.pid, args.connections, args.duration)
        rows.append(direct)
        repeat, unique = script(tmp / "r.lua", "router", unique=False), script(tmp / "u.lua", "router", unique=True)
        for setup in SETUPS:
            stack_tmp = Path(tempfile.mkdtemp(dir=tmp))
            _, api_url, stack = start_stack(stack_tmp, database_url=f"sqlite:///{stack_tmp / 'bench.db'}",
                                            simulator_url=sim_url, workers=setup.workers,
                                            env={"ROUTER_CLASSIFIER": setup.classifier,
                                                 "ROUTER_CLASSIFIER_MODEL": str(args.model), **setup.env})
            label = setup.label
            try:
                api = stack[0]
                if setup.repeating:
                    rows.append(measure(f"router, {label}, repeating", api_url, repeat, api.pid, args.connections,
                                        args.duration))
                rows.append(measure(f"router, {label}, non-repeating", api_url, unique, api.pid, args.connections,
                                    args.duration))
                if setup.classifier == "auto" and setup.workers == 1:
                    for conc in (1, 16):
                        rows.append(measure(f"router, {label}, non-repeating, {conc} conn.", api_url, unique,
                                            api.pid, conc, args.duration))
            finally:
                for proc in stack:
                    proc.terminate()
                    proc.wait(30)
        for name in ("sglang", "litellm", "routellm"):
            venv = args.peers_dir / name
            if not (venv / "bin" / "python").exists():
                print(f"{name}: no venv at {venv} (python -m bench.peers --install); left out", file=sys.stderr)
                continue
            port = free_port()
            proc = start_peer(name, venv, sim_url, port, tmp)
            if proc is None:
                continue
            try:
                model = "router" if name == "litellm" else ("router-random-0.5" if name == "routellm"
                                                             else "meta/llama3-70b-instruct")
                lua = script(tmp / f"{name}.lua", model, unique=False)
                rows.append(measure(name, f"http://127.0.0.1:{port}", lua, proc.pid, args.connections, args.duration))
            finally:
                proc.terminate()
                proc.wait(30)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)

    infer_after = inference_ms(args.model, n=200)
    infer_ms = (infer_before + infer_after) / 2
    base = direct.result
    print(f"$ {command_line()}")
    print(f"simulator answers after {args.ttft_ms:g} ms; {args.connections} connections unless said; wrk -t1; "
          f"SQLite; {cores} cores")
    print(f"learned model: one prompt {infer_ms:.2f} ms on one thread (before the runs {infer_before:.2f}, after "
          f"{infer_after:.2f}); inference-bound limit {cores} / {infer_ms:.2f} ms = "
          f"{cores * 1000 / infer_ms:.0f} req/s")
    print(f"{'':<58} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>8} {'added p50':>9} {'added p99':>9} {'CPU ms/req':>10} "
          f"{'errors':>6}")
    for row in rows:
        r = row.result
        print(f"{row.name:<58} {r['rps']:>7.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>8.2f} "
              f"{r['p50_ms'] - base['p50_ms']:>9.2f} {r['p99_ms'] - base['p99_ms']:>9.2f} {row.cpu_ms:>10.2f} "
              f"{r['errors']:>6.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
