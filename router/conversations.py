"""Each conversation's last answering tier, so a low-confidence follow-up can stay where
the conversation was. Per process and bounded: the oldest conversations are forgotten."""

from __future__ import annotations

from collections import OrderedDict

MAX_CONVERSATIONS = 20_000


class PreviousTiers:
    def __init__(self, max_conversations: int = MAX_CONVERSATIONS) -> None:
        self.max_conversations = max_conversations
        self._tiers: OrderedDict[str, str] = OrderedDict()

    def get(self, conversation_id: str) -> str | None:
        return self._tiers.get(conversation_id)

    def remember(self, conversation_id: str, tier: str) -> None:
        self._tiers[conversation_id] = tier
        self._tiers.move_to_end(conversation_id)
        if len(self._tiers) > self.max_conversations:
            self._tiers.popitem(last=False)

    def __len__(self) -> int:
        return len(self._tiers)
