"""Token estimates for tiers that do not report usage. An estimate is marked as one
in the decision row (usage_estimated)."""

from __future__ import annotations

import re
from collections.abc import Iterable

# CJK characters are about a token each; Latin words about 1.3 tokens; punctuation one.
_PIECES = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]|[A-Za-z0-9_]+|[^\W\d_]+|[^\w\s]")


SAMPLE_CHARS = 20_000  # a longer text is estimated from evenly spaced samples of this much in all


def estimate_tokens(text: str) -> int:
    if len(text) > SAMPLE_CHARS:
        # Bounded work for huge prompts: the rate of three samples, scaled to the whole.
        step = len(text) // 3
        part = SAMPLE_CHARS // 3
        sampled = sum(_count(text[i:i + part]) for i in (0, step, len(text) - part))
        return max(1, round(sampled * len(text) / (3 * part)))
    return _count(text)


def _count(text: str) -> int:
    pieces = _PIECES.findall(text)
    words = sum(1 for p in pieces if len(p) > 1 or (p.isascii() and p.isalnum()))
    return max(1, round(words * 1.3 + (len(pieces) - words))) if text else 0


def estimate_prompt_tokens(contents: Iterable[str]) -> int:
    # About four tokens of chat-template overhead per message.
    return sum(estimate_tokens(c) + 4 for c in contents)
