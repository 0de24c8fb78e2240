"""The recorder: turns a routed turn (or a refused request) into its typed decision record,
with cost, baseline cost and redaction, counts it in the metrics, and commits it durably:
a response waits for its row's commit, up to the durability timeout."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field

from router.chat_request import ChatRequest
from router.errors import APIError
from router.metrics import Metrics
from router.plan import RoutePlan
from router.tiers import Attempt
from router.tokens import estimate_prompt_tokens, estimate_tokens
from storage.decision_log import DecisionLog, LogBufferFull
from storage.record import DecisionRecord

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 8000
MAX_RESPONSE_CHARS = 4000
MAX_ERROR_CHARS = 2000


@dataclass
class Outcome:
    """What happened upstream, for the decision record."""

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

    def set_usage(self, req: ChatRequest, prompt: int | None, completion: int | None, text: str) -> None:
        """Token counts as the tier reported them, estimated (and marked so) where it did not."""
        if prompt is None or completion is None:
            self.usage_estimated = True
            prompt = estimate_prompt_tokens(m["content"] for m in req.messages) if prompt is None else prompt
            completion = estimate_tokens(text) if completion is None else completion
        self.prompt_tokens, self.completion_tokens = int(prompt), int(completion)


class Recorder:
    def __init__(self, decision_log: DecisionLog, *, metrics: Metrics | None = None,
                 durability_timeout_s: float = 5.0, redact_prompts: bool = False) -> None:
        self.decision_log = decision_log
        self.metrics = metrics
        self.durability_timeout_s = durability_timeout_s
        self.redact_prompts = redact_prompts

    def record(self, plan: RoutePlan, outcome: Outcome) -> DecisionRecord:
        policy, pred, req = plan.policy, plan.prediction, plan.request
        baseline = policy.baseline
        cost = baseline_cost = None
        if outcome.prompt_tokens is not None and outcome.completion_tokens is not None:
            baseline_cost = policy.tiers[baseline].cost_usd(outcome.prompt_tokens, outcome.completion_tokens)
            if outcome.tier is not None:
                cost = policy.tiers[outcome.tier].cost_usd(outcome.prompt_tokens, outcome.completion_tokens)
        prompt = req.latest_user_text
        redact = self.redact_prompts
        return DecisionRecord(
            id=plan.decision_id, request_id=plan.request_id, conversation_id=plan.conversation_id,
            turn=req.turn, source=req.source, stream=req.stream,
            policy_name=policy.name, policy_version=plan.policy_version,
            task=pred.task, confidence=pred.confidence, task_probs=pred.probabilities,
            complexity=pred.complexity, complexity_dims=pred.dimensions,
            difficulty=pred.difficulty, tier_success=pred.tier_success or None,
            classifier_backend=pred.backend + (" (fallback)" if plan.classifier_fallback else ""),
            rule=plan.choice.rule, reason=plan.choice.reason[:256], pinned_tier=plan.pinned_tier,
            routed_tier=plan.choice.tier,
            tier=outcome.tier, model=outcome.model,
            fallback=outcome.tier is not None and outcome.tier != plan.choice.tier,
            attempts=[a.to_dict() for a in outcome.attempts],
            status=outcome.status, http_status=outcome.http_status, error=outcome.error,
            classify_ms=plan.classify_ms, route_ms=plan.route_ms, ttft_ms=outcome.ttft_ms,
            total_ms=(time.perf_counter() - plan.started) * 1000,
            prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens,
            usage_estimated=outcome.usage_estimated, cost_usd=cost,
            baseline_tier=baseline, baseline_cost_usd=baseline_cost,
            prompt=None if redact else prompt[:MAX_PROMPT_CHARS],
            prompt_hash=hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest(),
            prompt_chars=len(prompt),
            response=None if outcome.response is None or redact else outcome.response[:MAX_RESPONSE_CHARS],
        )

    async def finish(self, plan: RoutePlan, outcome: Outcome) -> None:
        """Record a routed turn and wait for its commit."""
        await self.commit(self.record(plan, outcome))

    def finish_nowait(self, plan: RoutePlan, outcome: Outcome) -> None:
        """Record a turn whose client is gone: nobody waits for the commit."""
        self.submit(self.record(plan, outcome))

    async def refused(self, error: APIError, *, source: str, stream: bool = False, request_id: str | None = None,
                      policy: str | None = None) -> str:
        """Record a request refused before routing; the error's headers name its decision id."""
        decision_id = uuid.uuid4().hex
        await self.commit(DecisionRecord(
            id=decision_id, request_id=request_id or decision_id, source=source, stream=stream,
            policy_name=policy, status="error", http_status=error.status,
            error=f"{error.code or error.type}: {error.message}"[:MAX_ERROR_CHARS]))
        error.headers["x-router-decision-id"] = decision_id
        return decision_id

    async def commit(self, record: DecisionRecord) -> None:
        """Queue the record and wait for its commit, up to the durability timeout."""
        future = self.submit(record)
        if future is None:
            return
        try:
            async with asyncio.timeout(self.durability_timeout_s):
                await asyncio.shield(asyncio.wrap_future(future))
        except TimeoutError:
            log.warning("decision %s not committed within %.1fs; it stays buffered",
                        record.id, self.durability_timeout_s)
        except LogBufferFull as exc:
            log.error("decision %s not logged: %s", record.id, exc)

    def submit(self, record: DecisionRecord) -> Future[None] | None:
        if self.metrics is not None:
            self.metrics.observe(record)
        future = self.decision_log.submit(record)
        if future.done() and future.exception() is not None:
            log.error("decision %s not logged: %s", record.id, future.exception())
            return None
        return future
