"""Worst inputs for classification: how long the keyword classifier (and the request's own
text handling) takes on large and adversarial prompts. Not a test; prints its command.

Usage: python -m bench.keyword_worst_case [--chars 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from bench.common import command_line
from router.chat_request import parse_chat_request
from router.classifier import KeywordClassifier
from router.classifier.cache import CachedClassifier
from router.tokens import estimate_prompt_tokens


def inputs(chars: int) -> dict[str, str]:
    """Each input is `chars` long. The repeated cue words are what backtracking patterns choke on."""
    def fill(unit: str) -> str:
        return (unit * (chars // len(unit) + 1))[:chars]

    return {
        "prose (lorem)": fill("lorem ipsum dolor sit amet, consectetur adipiscing elit. "),
        "'write a ' on one line": fill("write a "),
        "'design a ' on one line": fill("design a "),
        "'書いて' on one line": fill("書いて"),
        "digits": fill("1234567890"),
        "'? ' repeated": fill("? "),
        "'{ ' and ';' repeated": fill("{ ; "),
        "spaces": fill(" ") + "x",
        "Japanese prose": fill("このアルゴリズムの計算量を説明してください。"),
        "newlines": fill("write a\n"),
    }


def timed(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    keyword = KeywordClassifier()
    print(f"$ {command_line()}")
    print(f"{'input (' + format(args.chars, ',') + ' chars)':40} {'keyword ms':>11} {'request ms':>11}")
    for name, text in inputs(args.chars).items():
        body = {"messages": [{"role": "user", "content": text}]}

        def request_path(body: dict[str, object] = body) -> None:
            # What the engine does with the text besides classifying: parse, build the
            # classifier input, estimate tokens, key the cache.
            req = parse_chat_request(body)
            CachedClassifier(keyword).classify([req.classifier_text()])
            estimate_prompt_tokens(m["content"] for m in req.messages)

        ms = timed(lambda text=text: keyword.classify([text]), args.repeat)
        print(f"{name:40} {ms:11.2f} {timed(request_path, args.repeat):11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
