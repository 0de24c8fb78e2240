"""The engine: classify -> decide -> call tier -> record. The one place that does this,
for both the console and the API.

Every routed turn, and every refused request, becomes one decision record, written by the
recorder; the engine records its own refusals. A response is released to the client only
after its row is committed (or the commit has been waiting longer than the durability
timeout, in which case the row stays buffered).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from router.chat_request import ROUTER_MODEL, ChatRequest, parse_chat_request
from router.classifier.batcher import ClassifierBusy
from router.classifier.guarded import GuardedClassifier
from router.conversations import PreviousTiers
from router.errors import APIError
from router.plan import RoutePlan
from router.policy import PINNED, RouteChoice, decide
from router.policy_registry import PolicyRegistry, UnknownPolicy
from router.recorder import Outcome, Recorder
from router.tiers import AllTiersFailed, Attempt, OpenStream, TierClient, TierFailure, TierRejected
from storage.decision_log import DecisionLog

__all__ = ["Engine", "RoutePlan", "StreamResult"]


@dataclass
class StreamResult:
    """Chunks in OpenAI's chat.completion.chunk shape; an {"error": ...} item ends a failed
    stream. When iteration ends normally the decision row is already committed."""

    plan: RoutePlan
    headers: dict[str, str]
    chunks: AsyncIterator[dict[str, Any]]


@dataclass
class CompletionResult:
    body: dict[str, Any]
    plan: RoutePlan


class Engine:
    def __init__(self, *, classifier: GuardedClassifier, registry: PolicyRegistry, tiers: TierClient,
                 recorder: Recorder) -> None:
        self.classifier = classifier
        self.registry = registry
        self.tiers = tiers
        self.recorder = recorder
        self.previous_tiers = PreviousTiers()

    @property
    def decision_log(self) -> DecisionLog:
        return self.recorder.decision_log

    # -- front doors ------------------------------------------------------------------------

    async def chat(self, body: Any, *, source: str, request_id: str | None = None) -> CompletionResult | StreamResult:
        """A chat completion request as a client sent it (a parsed JSON body)."""
        try:
            req = parse_chat_request(body, source=source)
        except APIError as err:
            fields = body if isinstance(body, dict) else {}
            options = fields.get("router")
            policy = options.get("policy") if isinstance(options, dict) else None
            await self.recorder.refused(err, source=source, stream=fields.get("stream") is True,
                                        policy=policy if isinstance(policy, str) else None)
            raise
        req.request_id = request_id
        return await (self.stream(req) if req.stream else self.complete(req))

    async def refuse(self, error: APIError, *, source: str) -> None:
        """Record a request refused before it could be read (authentication, a bad body)."""
        await self.recorder.refused(error, source=source)

    async def route(self, req: ChatRequest) -> dict[str, Any]:
        """The decision only: no upstream call, nothing recorded."""
        return (await self.plan(req)).summary()

    async def complete(self, req: ChatRequest) -> CompletionResult:
        plan = await self._plan_or_refuse(req)
        try:
            result = await self.tiers.complete(plan.policy, plan.chain, self._payload(req))
        except (AllTiersFailed, TierRejected) as exc:
            raise await self._upstream_error(plan, exc) from None
        plan.answered_by = result.tier
        body = result.body
        body["model"] = result.model
        usage = body.get("usage") or {}
        text = _message_text(body)
        outcome = Outcome(tier=result.tier, model=result.model, attempts=result.attempts, response=text)
        outcome.set_usage(req, usage.get("prompt_tokens"), usage.get("completion_tokens"), text)
        await self._finish(plan, outcome)
        return CompletionResult(body, plan)

    async def stream(self, req: ChatRequest) -> StreamResult:
        plan = await self._plan_or_refuse(req)
        try:
            opened = await self.tiers.open_stream(plan.policy, plan.chain, self._payload(req))
        except (AllTiersFailed, TierRejected) as exc:
            raise await self._upstream_error(plan, exc) from None
        outcome = Outcome(tier=opened.tier, model=opened.model, attempts=opened.attempts,
                          ttft_ms=(time.perf_counter() - plan.started) * 1000)
        plan.answered_by = opened.tier
        return StreamResult(plan, plan.headers, self._relay(plan, opened, outcome))

    # -- planning -------------------------------------------------------------------------

    async def plan(self, req: ChatRequest) -> RoutePlan:
        started = time.perf_counter()
        request_id = req.request_id or uuid.uuid4().hex
        if self.decision_log.queued >= self.decision_log.max_buffer:
            raise APIError(503, "the decision log is full because the database is unreachable; retry later",
                           type="server_error", code="decision_log_full")
        try:
            active = self.registry.get(req.policy)
        except UnknownPolicy as exc:
            raise APIError(400, str(exc), param="router.policy", code="policy_not_found") from None
        policy = active.policy
        pinned = None
        if req.model != ROUTER_MODEL:
            pinned = policy.find_tier(req.model)
            if pinned is None:
                raise APIError(404, f"model {req.model!r} is neither {ROUTER_MODEL!r} nor a tier of policy "
                               f"{policy.name!r} (tiers: {sorted(policy.tiers)})", param="model",
                               code="model_not_found")
        t0 = time.perf_counter()
        try:
            prediction, fell_back = await self.classifier.classify_one(req.classifier_text())
        except ClassifierBusy as exc:
            raise APIError(503, str(exc), type="server_error", code="classifier_busy",
                           headers={"Retry-After": "1"}) from None
        classify_ms = (time.perf_counter() - t0) * 1000
        conversation_id = req.derived_conversation_id()
        if pinned is not None:
            choice = RouteChoice(pinned, PINNED, f"model {req.model!r} pinned by the request")
            chain = [pinned]
        else:
            choice = decide(prediction, policy, self.previous_tiers.get(conversation_id))
            chain = policy.tier_chain(choice.tier)
        plan = RoutePlan(req, request_id, uuid.uuid4().hex, conversation_id, policy, active.version, prediction,
                         choice, pinned, chain, started, classify_ms, classifier_fallback=fell_back)
        plan.route_ms = (time.perf_counter() - started) * 1000
        return plan

    async def _plan_or_refuse(self, req: ChatRequest) -> RoutePlan:
        try:
            return await self.plan(req)
        except APIError as err:
            await self.recorder.refused(err, source=req.source, stream=req.stream, request_id=req.request_id,
                                        policy=req.policy)
            raise

    # -- calling tiers --------------------------------------------------------------------

    @staticmethod
    def _payload(req: ChatRequest) -> dict[str, Any]:
        return {**req.params, "messages": req.messages}

    async def _relay(self, plan: RoutePlan, opened: OpenStream, outcome: Outcome) -> AsyncIterator[dict[str, Any]]:
        parts: list[str] = []
        usage: dict[str, Any] = {}
        done = False
        req = plan.request
        try:
            async for c in _all_chunks(opened.first, opened.rest()):
                if c.get("usage"):
                    usage = c["usage"]
                    if not c.get("choices"):
                        if req.include_usage:
                            yield c
                        continue
                    if not req.include_usage:
                        c = {k: v for k, v in c.items() if k != "usage"}
                for choice in c.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        parts.append(content)
                yield c
            text = "".join(parts)
            outcome.response = text
            outcome.set_usage(req, usage.get("prompt_tokens"), usage.get("completion_tokens"), text)
            done = True
            await self._finish(plan, outcome)
        except TierFailure as exc:
            outcome.status, outcome.http_status = "error", 502
            outcome.error = f"{opened.tier}: {exc} after {len(parts)} chunks"
            outcome.response = "".join(parts)
            outcome.attempts.append(Attempt(opened.tier, outcome.attempts[-1].try_no, exc.outcome, 0.0,
                                            exc.status, str(exc)))
            outcome.set_usage(req, None, None, outcome.response)
            done = True
            await self._finish(plan, outcome)
            err = APIError(502, f"the tier stopped mid-answer: {outcome.error}", type="upstream_error",
                           code="stream_interrupted")
            yield err.to_dict()
        finally:
            if not done:  # the client went away before the end
                outcome.status, outcome.http_status = "error", 499
                outcome.error = "client disconnected before the end of the stream"
                outcome.response = "".join(parts)
                outcome.set_usage(req, None, None, outcome.response)
                self.recorder.finish_nowait(plan, outcome)
            await opened.aclose()

    async def _upstream_error(self, plan: RoutePlan, exc: AllTiersFailed | TierRejected) -> APIError:
        """Record the failed turn and return the error for the client: the tier's own status when it
        refused the request as invalid, else 502 (504 if every try timed out)."""
        if isinstance(exc, TierRejected):
            error = APIError(exc.status, str(exc), code="upstream_rejected", headers=plan.headers)
        else:
            error = APIError(504 if exc.all_timeouts else 502, str(exc), type="upstream_error",
                             code="all_tiers_failed", headers=plan.headers)
        await self._finish(plan, Outcome(status="error", http_status=error.status, error=str(exc),
                                         attempts=exc.attempts))
        return error

    async def _finish(self, plan: RoutePlan, outcome: Outcome) -> None:
        if outcome.status == "ok" and outcome.tier is not None:
            self.previous_tiers.remember(plan.conversation_id, outcome.tier)
        await self.recorder.finish(plan, outcome)


async def _all_chunks(first: dict[str, Any], rest: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    yield first
    async for chunk in rest:
        yield chunk


def _message_text(body: dict[str, Any]) -> str:
    try:
        content = body["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    return content if isinstance(content, str) else ""
