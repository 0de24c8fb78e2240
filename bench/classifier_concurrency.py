"""The learned classifier behind its micro-batcher under concurrent callers, prompts that never
repeat, for one and two ONNX Runtime threads and for one one-thread run per core, in one run
(no server, no HTTP): prompts/s, p50/p99 wait per prompt, and the inference-bound limit (cores /
one prompt's time on one thread) measured in the same run. What serving adds on top of this is
bench/peers.py's to measure.

    python -m bench.classifier_concurrency --artifact models/prompt-classifier [--callers 16] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from itertools import count
from pathlib import Path

from bench.common import PROMPTS, command_line, inference_ms, percentile, salt
from router.classifier.batcher import MicroBatcher
from router.classifier.onnx import OnnxClassifier

# (intra-op threads, batches classified at once): one batch over both cores, one thread, and one
# one-thread run per core.
SETUPS = ((2, 1), (1, 1), (1, 2))


async def drive(batcher: MicroBatcher, callers: int, seconds: float) -> tuple[int, list[float]]:
    numbers = count()
    run_salt = salt()  # the suffix's shape is the one inference_ms times
    waits: list[float] = []
    stop = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < stop:
            i = next(numbers)
            start = time.perf_counter()
            await batcher.classify(f"{PROMPTS[i % len(PROMPTS)]} ({run_salt}-{i})")
            waits.append((time.perf_counter() - start) * 1000)

    await asyncio.gather(*(caller() for _ in range(callers)))
    return len(waits), waits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, default=Path("models/prompt-classifier"))
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    single = inference_ms(args.artifact)
    limit = cores * 1000 / single
    print(f"$ {command_line()}")
    print(f"one prompt on one thread: {single:.2f} ms; limit {cores} cores / {single:.2f} ms = {limit:.0f} prompts/s")
    print(f"{args.callers} callers, {args.seconds:.0f} s each\n")
    print("| intra-op threads | runs at once | prompts/s | share of limit | p50 ms | p99 ms | mean batch |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for threads, runs in SETUPS:
        batcher = MicroBatcher(OnnxClassifier(args.artifact, threads=threads), max_pending=max(64, args.callers),
                               runs=runs)
        asyncio.run(drive(batcher, args.callers, 1.0))  # warm-up
        batches, items = batcher.batches, batcher.items
        start = time.perf_counter()
        n, waits = asyncio.run(drive(batcher, args.callers, args.seconds))
        rate = n / (time.perf_counter() - start)
        mean_batch = (batcher.items - items) / max(1, batcher.batches - batches)
        print(f"| {threads} | {runs} | {rate:.0f} | {rate / limit:.0%} | {percentile(waits, 50):.2f} | "
              f"{percentile(waits, 99):.2f} | {mean_batch:.1f} |")
        batcher.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
