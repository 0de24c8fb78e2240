"""Router overhead per request, by part, in process: classify, decide, plan (policy
lookup + classify + decide), and the decision log's commit wait on SQLite and Postgres.

Usage: python -m bench.overhead [--n 5000] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from concurrent.futures import wait
from pathlib import Path

from bench.common import PROMPTS, command_line, percentile
from router.chat_request import parse_chat_request
from router.classifier import KeywordClassifier
from router.config import DEFAULT_CONFIG, Settings, load_seed
from router.policy import decide
from router.runtime import build_runtime
from storage.db import make_engine, migrate
from storage.decision_log import DecisionLog
from storage.record import DecisionRecord


def timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - start) * 1000)
    return out


def row() -> DecisionRecord:
    return DecisionRecord.from_mapping({
        "id": uuid.uuid4().hex, "request_id": "bench", "source": "api", "status": "ok", "task": "Open QA",
        "task_probs": {"Open QA": 0.9, "Other": 0.1}, "attempts": [{"tier": "a", "outcome": "ok", "ms": 1.0}],
        "prompt": "What is the capital of France?", "total_ms": 1.0})


def log_commit(url: str, n: int, concurrent: int) -> tuple[list[float], float]:
    db = make_engine(url)
    migrate(db)
    log = DecisionLog(db)
    single = timed(lambda _: log.submit(row()).result(10), n)
    start = time.perf_counter()
    futures = [log.submit(row()) for _ in range(concurrent)]
    wait(futures, timeout=60)
    burst_rows_per_s = concurrent / (time.perf_counter() - start)
    log.close()
    db.dispose()
    return single, burst_rows_per_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    n = args.n

    classifier = KeywordClassifier()
    seed = load_seed(DEFAULT_CONFIG)
    policy = seed.policies[seed.default_policy]
    requests = [parse_chat_request({"messages": [{"role": "user", "content": p}]}) for p in PROMPTS]
    texts = [r.classifier_text() for r in requests]
    predictions = classifier.classify(texts)

    results: dict[str, list[float]] = {}
    results["classify (keyword)"] = timed(lambda i: classifier.classify([texts[i % len(texts)]]), n)
    results["decide"] = timed(lambda i: decide(predictions[i % len(predictions)], policy), n)

    tmp = Path(tempfile.mkdtemp(prefix="router-overhead-"))
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp / 'o.db'}", "ROUTER_SIMULATOR": "off"})
    runtime = build_runtime(settings, environ={}, simulator_url="http://127.0.0.1:9/v1")
    loop = asyncio.new_event_loop()
    results["plan (lookup+classify+decide)"] = timed(
        lambda i: loop.run_until_complete(runtime.engine.plan(requests[i % len(requests)])), n)
    results["parse request"] = timed(
        lambda i: parse_chat_request({"messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]}), n)
    # The classifier's batcher runs on this loop: stop it there, or its tasks die noisily at exit.
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.close()
    runtime.close()

    bursts = {}
    for name, url in (("sqlite", f"sqlite:///{tmp / 'log.db'}"), ("postgres", args.postgres_url)):
        try:
            single, burst = log_commit(url, min(n, 2000), 5000)
        except Exception as exc:  # Postgres may be absent where the bench runs
            print(f"(skipping {name}: {exc})")
            continue
        results[f"log commit wait, one at a time ({name})"] = single
        bursts[name] = burst

    print(f"$ {command_line()}")
    print(f"{'part':<44} {'p50 ms':>8} {'p99 ms':>8}")
    for name, values in results.items():
        print(f"{name:<44} {percentile(values, 50):>8.3f} {percentile(values, 99):>8.3f}")
    for name, rate in bursts.items():
        print(f"log group commit, 5000 rows queued at once ({name}): {rate:,.0f} rows/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
