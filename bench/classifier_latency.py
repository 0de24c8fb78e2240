"""Classifier latency: batch-1 p50/p99 for a ~100-token prompt and batch-32 throughput,
for the ONNX artifact in fp32 and int8 and for the keyword classifier, in one run.

Latency does not depend on the heads' weights, so an untrained-heads build is enough:
    python -m training.export --encoder <minilm folder> --out /tmp/minilm-artifact
    python -m bench.classifier_latency --artifact /tmp/minilm-artifact [--n 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.common import command_line, percentile
from router.classifier import KeywordClassifier
from router.classifier.int8_kernels import signed_int8_saturates
from router.classifier.onnx import OnnxClassifier

PROMPT = ("Write a Python function that reads a CSV file of customer orders, groups the orders by customer and "
          "month, computes the total and the average order value for each group, and writes the result to a new "
          "CSV file sorted by total descending. Handle missing values, malformed dates and duplicate order ids, "
          "and explain the time complexity of your approach in two sentences. Use only the standard library, "
          "add type hints and docstrings, and include three unit tests with pytest that cover the edge cases.")
# The same request in Japanese: with a glossary in the artifact this also times the glossing.
PROMPT_JA = ("顧客の注文のCSVファイルを読み込み、顧客と月ごとに注文をまとめ、各グループの合計と平均注文額を計算し、"
             "合計の降順で新しいCSVファイルに書き出すPythonの関数を書いてください。欠損値、不正な日付、重複した注文IDを"
             "処理し、計算量を二文で説明してください。標準ライブラリだけを使い、型ヒントとdocstringを付け、"
             "境界条件をカバーするpytestの単体テストを三つ含めてください。")


def measure(classifier, n: int, prompt: str = PROMPT) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    batch = [prompt + f" ({i})" for i in range(32)]
    for _ in range(10):
        classifier.classify([prompt])
    single = []
    for i in range(n):
        start = time.perf_counter()
        classifier.classify([prompt + f" v{i}"])
        single.append((time.perf_counter() - start) * 1000)
    rounds = max(3, n // 30)
    start = time.perf_counter()
    for _ in range(rounds):
        classifier.classify(batch)
    throughput = rounds * len(batch) / (time.perf_counter() - start)
    return percentile(single, 50), percentile(single, 99), throughput


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--providers", nargs="+", help="e.g. CUDAExecutionProvider (default: CUDA then CPU)")
    args = parser.parse_args()

    rows = []
    # int8 both as shipped and with unsigned weights (the default on CPUs whose signed kernel
    # saturates: router/classifier/int8_kernels.py), so the exact path's cost is measured beside it.
    variants = (("onnx fp32", "model-fp32.onnx", "native"), ("onnx int8, as shipped", "model.onnx", "native"),
                ("onnx int8, unsigned weights", "model.onnx", "exact"))
    for label, file, int8 in variants:
        if not (args.artifact / file).is_file():
            print(f"(no {file} in {args.artifact}; skipping {label})")
            continue
        c = OnnxClassifier(args.artifact, model_file=file, providers=args.providers, allow_untrained=True, int8=int8)
        if int8 == "exact" and not c.unsigned_weights:
            continue  # nothing to rewrite (a GPU, or no int8 weights): the same model as the row above
        tokens = len(c.pre.tokenizer.encode(PROMPT).ids)
        rows.append((f"{label} [{c.provider}]", *measure(c, args.n)))
        if c.pre.glossary is not None and file == "model.onnx" and int8 == "native":
            rows.append((f"{label}, Japanese prompt (glossed)", *measure(c, args.n, PROMPT_JA)))
    rows.append(("keyword", *measure(KeywordClassifier(), args.n)))

    print(f"$ {command_line()}")
    print(f"this CPU's signed int8 kernel saturates: {'yes' if signed_int8_saturates() else 'no'}")
    print_table("classifier", tokens, args.n, rows)
    return 0


def print_table(title: str, tokens: int, n: int, rows: list[tuple[str, float, float, float]]) -> None:
    print(f"prompt: {tokens} tokens; batch-1 over {n} prompts; batch-32 throughput")
    print(f"{title:<52} {'p50 ms':>8} {'p99 ms':>8} {'batch-32 prompts/s':>20}")
    for name, p50, p99, tput in rows:
        print(f"{name:<52} {p50:>8.3f} {p99:>8.3f} {tput:>20,.0f}")


if __name__ == "__main__":
    sys.exit(main())
