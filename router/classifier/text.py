"""How a conversation becomes classifier input: the latest user turn first, then a
short context of earlier turns so that follow-ups ("make it shorter") can be resolved."""

from __future__ import annotations

CONTEXT_MARKER = "\n\n### context\n"
MAX_CONTEXT_CHARS = 600
# A model sees about 128 tokens; a long turn keeps its head and its tail, where a pasted
# document's instruction usually sits ("... Summarize this email").
MODEL_TURN_HEAD_CHARS = 300
MODEL_TURN_TAIL_CHARS = 200


def join_turn_and_context(turn: str, context: str) -> str:
    if not context:
        return turn
    return turn + CONTEXT_MARKER + context[-MAX_CONTEXT_CHARS:]


def split_turn_and_context(text: str) -> tuple[str, str]:
    turn, _, context = text.partition(CONTEXT_MARKER)
    return turn, context


def model_text(text: str) -> str:
    """The text a model backend tokenizes (training uses the same function)."""
    turn, context = split_turn_and_context(text)
    if len(turn) > MODEL_TURN_HEAD_CHARS + MODEL_TURN_TAIL_CHARS + 20:
        turn = turn[:MODEL_TURN_HEAD_CHARS] + " … " + turn[-MODEL_TURN_TAIL_CHARS:]
    return join_turn_and_context(turn, context)
