"""A blocking facade over the async engine, for callers without an event loop (the
console's page scripts). The engine runs on one event loop in a thread of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from router.chat_request import ChatRequest
from router.engine import Engine
from router.runtime import Runtime, build_runtime

T = TypeVar("T")


@dataclass
class ChatTurn:
    """A streamed answer: iterate `text()` for the deltas; afterwards `decision_id`,
    `tier` and `error` say what happened."""

    decision_id: str
    routed_tier: str
    tier: str
    task: str
    error: str | None = None
    parts: list[str] = field(default_factory=list)
    _owner: BlockingEngine | None = None
    _chunks: Any = None

    def text(self) -> Iterator[str]:
        assert self._owner is not None
        owner, chunks = self._owner, self._chunks
        try:
            while True:
                try:
                    chunk = owner.run(chunks.__anext__())
                except StopAsyncIteration:
                    return
                if "error" in chunk:
                    self.error = chunk["error"]["message"]
                    return
                for choice in chunk.get("choices") or ():
                    delta = (choice.get("delta") or {}).get("content")
                    if delta:
                        self.parts.append(delta)
                        yield delta
        finally:
            # Stopped early (a rerun, a closed tab): the engine logs the turn as interrupted.
            owner.run(chunks.aclose())

    @property
    def answer(self) -> str:
        return "".join(self.parts)


class BlockingEngine:
    def __init__(self, runtime: Runtime | None = None) -> None:
        self.runtime = runtime or build_runtime()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="engine-loop", daemon=True)
        self._thread.start()

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def chat(self, req: ChatRequest) -> ChatTurn:
        """Start a streamed turn; raises APIError when it cannot start (the engine records it)."""
        req.stream = True
        result = self.run(self.engine.stream(req))
        plan = result.plan
        return ChatTurn(plan.decision_id, plan.choice.tier, plan.answered_by or plan.choice.tier,
                        plan.prediction.task, _owner=self, _chunks=result.chunks)

    def route(self, req: ChatRequest) -> dict[str, Any]:
        return self.run(self.engine.route(req))

    def refresh_policies(self) -> bool:
        return self.runtime.registry.refresh()

    def health(self) -> dict[str, Any]:
        return self.run(self.runtime.health_with_tiers(), timeout=10)

    def close(self) -> None:
        self.run(self.runtime.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
