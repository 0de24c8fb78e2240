"""The engine: classify -> decide -> call tier -> log. The one place that does this,
for both the console and the API.

Every routed turn, and every refused request, becomes one decision row. A response
is released to the client only after its row is committed (or the commit has been
waiting longer than the durability timeout, in which case the row stays buffered).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from router.chat_request import ROUTER_MODEL, ChatRequest
from router.classifier import Classifier, KeywordClassifier, Prediction
from router.classifier.batcher import MicroBatcher
from router.errors import APIError
from router.metrics import Metrics
from router.policy import PINNED, Decision, Policy, decide
from router.policy_registry import PolicyRegistry, UnknownPolicy
from router.tiers import AllTiersFailed, Attempt, TierClient, TierFailure
from router.tokens import estimate_prompt_tokens, estimate_tokens
from storage.decision_log import DecisionLog, LogBufferFull

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 8000
MAX_RESPONSE_CHARS = 4000
MAX_CONVERSATIONS = 20_000


@dataclass
class RoutePlan:
    request: ChatRequest
    request_id: str
    decision_id: str
    conversation_id: str
    policy: Policy
    policy_version: int
    prediction: Prediction
    decision: Decision
    pinned_tier: str | None
    chain: list[str]
    started: float
    classify_ms: float
    route_ms: float = 0.0
    classifier_fallback: bool = False
    answered_by: str | None = None  # set once a tier answers; differs from decision.tier after a fallback

    @property
    def headers(self) -> dict[str, str]:
        tier = self.answered_by or self.decision.tier
        headers = {"x-router-tier": tier, "x-router-task": self.prediction.task,
                   "x-router-decision-id": self.decision_id,
                   "x-router-policy": f"{self.policy.name}@{self.policy_version}"}
        if tier != self.decision.tier:
            headers["x-router-routed-tier"] = self.decision.tier
        return headers

    def summary(self) -> dict[str, Any]:
        """The decision without an upstream call: what /v1/route returns."""
        return {
            "decision_id": self.decision_id,
            "policy": {"name": self.policy.name, "version": self.policy_version},
            "tier": self.decision.tier,
            "model": self.policy.tiers[self.decision.tier].model,
            "rule": self.decision.rule,
            "reason": self.decision.reason,
            "fallback_order": self.chain[1:],
            "classification": self.prediction.to_dict(),
            "classify_ms": round(self.classify_ms, 3),
            "route_ms": round(self.route_ms, 3),
        }


@dataclass
class Outcome:
    """What happened upstream, for the decision row."""

    status: str = "ok"
    http_status: int = 200
    error: str | None = None
    tier: str | None = None
    model: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage_estimated: bool = False
    response: str | None = None


@dataclass
class StreamResult:
    """Chunks in OpenAI's chat.completion.chunk shape; an {"error": ...} item ends a failed
    stream. When iteration ends normally the decision row is already committed."""

    plan: RoutePlan
    headers: dict[str, str]
    chunks: AsyncIterator[dict[str, Any]]


class Engine:
    def __init__(self, *, classifier: Classifier, registry: PolicyRegistry, tiers: TierClient,
                 decision_log: DecisionLog, durability_timeout_s: float = 5.0,
                 metrics: Metrics | None = None, redact_prompts: bool = False) -> None:
        self.keyword = KeywordClassifier()  # the fallback when a model backend fails
        self.classifier = classifier
        self.registry = registry
        self.tiers = tiers
        self.decision_log = decision_log
        self.durability_timeout_s = durability_timeout_s
        self.metrics = metrics
        self.redact_prompts = redact_prompts
        self.classifier_failures = 0
        self.last_classifier_error: str | None = None
        self._previous_tier: OrderedDict[str, str] = OrderedDict()

    # -- planning -------------------------------------------------------------------------

    @property
    def classifier(self) -> Classifier:
        return self._classifier

    @classifier.setter
    def classifier(self, value: Classifier) -> None:
        # Model backends run in a worker thread with micro-batching; the keyword classifier
        # takes microseconds and runs inline.
        self._classifier = value
        self._batcher = None if value.info().get("backend") == "keyword" else MicroBatcher(value)

    def classify(self, texts: list[str]) -> tuple[list[Prediction], bool]:
        """Predictions, and whether the keyword fallback produced them."""
        try:
            return self.classifier.classify(texts), False
        except Exception as exc:  # a model backend failing must not fail the request
            return self._fall_back(texts, exc), True

    async def classify_one(self, text: str) -> tuple[Prediction, bool]:
        if self._batcher is None:
            predictions, fell_back = self.classify([text])
            return predictions[0], fell_back
        try:
            return await self._batcher.classify(text), False
        except Exception as exc:
            return self._fall_back([text], exc)[0], True

    def _fall_back(self, texts: list[str], exc: Exception) -> list[Prediction]:
        self.classifier_failures += 1
        self.last_classifier_error = f"{type(exc).__name__}: {exc}"
        log.error("classifier %s failed, using keyword fallback: %s", self.classifier.name, exc)
        return self.keyword.classify(texts)

    async def plan(self, req: ChatRequest) -> RoutePlan:
        started = time.perf_counter()
        request_id = req.request_id or uuid.uuid4().hex
        if self.decision_log.stats().queued >= self.decision_log.max_buffer:
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
        prediction, fell_back = await self.classify_one(req.classifier_text())
        classify_ms = (time.perf_counter() - t0) * 1000
        conversation_id = req.derived_conversation_id()
        if pinned is not None:
            decision = Decision(pinned, PINNED, f"model {req.model!r} pinned by the request")
            chain = [pinned]
        else:
            decision = decide(prediction, policy, self._previous_tier.get(conversation_id))
            chain = policy.tier_chain(decision.tier)
        plan = RoutePlan(req, request_id, uuid.uuid4().hex, conversation_id, policy, active.version, prediction,
                         decision, pinned, chain, started, classify_ms, classifier_fallback=fell_back)
        plan.route_ms = (time.perf_counter() - started) * 1000
        return plan

    async def route(self, req: ChatRequest) -> dict[str, Any]:
        return (await self.plan(req)).summary()

    # -- calling tiers --------------------------------------------------------------------

    @staticmethod
    def _payload(req: ChatRequest) -> dict[str, Any]:
        return {**req.params, "messages": req.messages}

    async def complete(self, req: ChatRequest) -> tuple[dict[str, Any], RoutePlan]:
        plan = await self.plan(req)
        try:
            result = await self.tiers.complete(plan.policy, plan.chain, self._payload(req))
        except AllTiersFailed as exc:
            raise await self._give_up(plan, exc) from None
        plan.answered_by = result.tier
        body = result.body
        body["model"] = result.model
        usage = body.get("usage") or {}
        text = _message_text(body)
        outcome = Outcome(tier=result.tier, model=result.model, attempts=result.attempts, response=text)
        self._usage(outcome, req, usage.get("prompt_tokens"), usage.get("completion_tokens"), text)
        await self._finish(plan, outcome)
        return body, plan

    async def stream(self, req: ChatRequest) -> StreamResult:
        plan = await self.plan(req)
        try:
            opened = await self.tiers.open_stream(plan.policy, plan.chain, self._payload(req))
        except AllTiersFailed as exc:
            raise await self._give_up(plan, exc) from None
        outcome = Outcome(tier=opened.tier, model=opened.model, attempts=opened.attempts,
                          ttft_ms=(time.perf_counter() - plan.started) * 1000)
        plan.answered_by = opened.tier
        return StreamResult(plan, plan.headers, self._relay(plan, opened, outcome))

    async def _relay(self, plan: RoutePlan, opened: Any, outcome: Outcome) -> AsyncIterator[dict[str, Any]]:
        parts: list[str] = []
        usage: dict[str, Any] = {}
        done = False
        try:
            async for c in _all_chunks(opened.first, opened.rest()):
                if c.get("usage"):
                    usage = c["usage"]
                    if not c.get("choices"):
                        if plan.request.include_usage:
                            yield c
                        continue
                    if not plan.request.include_usage:
                        c = {k: v for k, v in c.items() if k != "usage"}
                for choice in c.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        parts.append(content)
                yield c
            text = "".join(parts)
            outcome.response = text
            self._usage(outcome, plan.request, usage.get("prompt_tokens"), usage.get("completion_tokens"), text)
            done = True
            await self._finish(plan, outcome)
        except TierFailure as exc:
            outcome.status, outcome.http_status = "error", 502
            outcome.error = f"{opened.tier}: {exc} after {len(parts)} chunks"
            outcome.response = "".join(parts)
            outcome.attempts.append(Attempt(opened.tier, outcome.attempts[-1].try_no, exc.outcome, 0.0,
                                            exc.status, str(exc)))
            self._usage(outcome, plan.request, None, None, outcome.response)
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
                self._usage(outcome, plan.request, None, None, outcome.response)
                self._submit(self._record(plan, outcome))
            await opened.aclose()

    # -- outcomes and the decision row ------------------------------------------------------

    async def _give_up(self, plan: RoutePlan, exc: AllTiersFailed) -> APIError:
        """Log the failed turn and return the error for the client: 504 if every try timed out."""
        status = 504 if exc.all_timeouts else 502
        await self._finish(plan, Outcome(status="error", http_status=status, error=str(exc), attempts=exc.attempts))
        return APIError(status, str(exc), type="upstream_error", code="all_tiers_failed", headers=plan.headers)

    @staticmethod
    def _usage(outcome: Outcome, req: ChatRequest, prompt: int | None, completion: int | None, text: str) -> None:
        if prompt is None or completion is None:
            outcome.usage_estimated = True
            prompt = estimate_prompt_tokens(m["content"] for m in req.messages) if prompt is None else prompt
            completion = estimate_tokens(text) if completion is None else completion
        outcome.prompt_tokens, outcome.completion_tokens = int(prompt), int(completion)

    def _record(self, plan: RoutePlan, outcome: Outcome) -> dict[str, Any]:
        policy, pred, req = plan.policy, plan.prediction, plan.request
        baseline = policy.baseline
        cost = baseline_cost = None
        if outcome.prompt_tokens is not None and outcome.completion_tokens is not None:
            baseline_cost = policy.tiers[baseline].cost_usd(outcome.prompt_tokens, outcome.completion_tokens)
            if outcome.tier is not None:
                cost = policy.tiers[outcome.tier].cost_usd(outcome.prompt_tokens, outcome.completion_tokens)
        prompt = req.latest_user_text
        return {
            "id": plan.decision_id, "request_id": plan.request_id, "conversation_id": plan.conversation_id,
            "turn": req.turn, "source": req.source, "stream": req.stream,
            "policy_name": policy.name, "policy_version": plan.policy_version,
            "task": pred.task, "confidence": pred.confidence, "task_probs": pred.probabilities,
            "complexity": pred.complexity, "complexity_dims": pred.dimensions,
            "classifier_backend": pred.backend + (" (fallback)" if plan.classifier_fallback else ""),
            "rule": plan.decision.rule, "pinned_tier": plan.pinned_tier, "routed_tier": plan.decision.tier,
            "tier": outcome.tier, "model": outcome.model,
            "fallback": outcome.tier is not None and outcome.tier != plan.decision.tier,
            "attempts": [a.to_dict() for a in outcome.attempts],
            "status": outcome.status, "http_status": outcome.http_status, "error": outcome.error,
            "classify_ms": plan.classify_ms, "route_ms": plan.route_ms, "ttft_ms": outcome.ttft_ms,
            "total_ms": (time.perf_counter() - plan.started) * 1000,
            "prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens,
            "usage_estimated": outcome.usage_estimated, "cost_usd": cost,
            "baseline_tier": baseline, "baseline_cost_usd": baseline_cost,
            "prompt": None if self.redact_prompts else prompt[:MAX_PROMPT_CHARS],
            "prompt_hash": hashlib.sha256(prompt.encode()).hexdigest(), "prompt_chars": len(prompt),
            "response": None if outcome.response is None or self.redact_prompts
            else outcome.response[:MAX_RESPONSE_CHARS],
        }

    async def _finish(self, plan: RoutePlan, outcome: Outcome) -> None:
        if outcome.status == "ok" and outcome.tier is not None:
            self._remember_tier(plan.conversation_id, outcome.tier)
        await self._commit(self._record(plan, outcome))

    async def _commit(self, record: dict[str, Any]) -> None:
        """Queue the row and wait for its commit, up to the durability timeout."""
        future = self._submit(record)
        if future is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.durability_timeout_s)
        except TimeoutError:
            log.warning("decision %s not committed within %.1fs; it stays buffered",
                        record["id"], self.durability_timeout_s)
        except LogBufferFull as exc:
            log.error("decision %s not logged: %s", record["id"], exc)

    def _submit(self, record: dict[str, Any]) -> Any:
        if self.metrics is not None:
            self.metrics.observe(record)
        future = self.decision_log.submit(record)
        if future.done() and future.exception() is not None:
            log.error("decision %s not logged: %s", record["id"], future.exception())
            return None
        return future

    async def log_rejected(self, error: APIError, *, source: str, stream: bool = False,
                           request_id: str | None = None, policy: str | None = None) -> str:
        """Record a request refused before routing; returns the decision id."""
        decision_id = uuid.uuid4().hex
        await self._commit({
            "id": decision_id, "request_id": request_id or decision_id, "source": source, "stream": stream,
            "policy_name": policy, "status": "error", "http_status": error.status,
            "error": f"{error.code or error.type}: {error.message}"[:2000],
        })
        return decision_id

    def _remember_tier(self, conversation_id: str, tier: str) -> None:
        self._previous_tier[conversation_id] = tier
        self._previous_tier.move_to_end(conversation_id)
        if len(self._previous_tier) > MAX_CONVERSATIONS:
            self._previous_tier.popitem(last=False)


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
