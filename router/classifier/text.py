"""How a conversation becomes classifier input: the latest user turn first, then a
short context of earlier turns so that follow-ups ("make it shorter") can be resolved."""

from __future__ import annotations

CONTEXT_MARKER = "\n\n### context\n"
MAX_CONTEXT_CHARS = 600


def join_turn_and_context(turn: str, context: str) -> str:
    if not context:
        return turn
    return turn + CONTEXT_MARKER + context[-MAX_CONTEXT_CHARS:]


def split_turn_and_context(text: str) -> tuple[str, str]:
    turn, _, context = text.partition(CONTEXT_MARKER)
    return turn, context
