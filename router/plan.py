"""A routed turn before the tier answers: the request, the prediction, the policy's
choice and the order of tiers to try."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from router.chat_request import ChatRequest
from router.classifier import Prediction
from router.policy import Policy, RouteChoice


@dataclass
class RoutePlan:
    request: ChatRequest
    request_id: str
    decision_id: str
    conversation_id: str
    policy: Policy
    policy_version: int
    prediction: Prediction
    choice: RouteChoice
    pinned_tier: str | None
    chain: list[str]
    started: float
    classify_ms: float
    route_ms: float = 0.0
    classifier_fallback: bool = False
    answered_by: str | None = None  # set once a tier answers; differs from choice.tier after a fallback

    @property
    def headers(self) -> dict[str, str]:
        tier = self.answered_by or self.choice.tier
        headers = {"x-router-tier": tier, "x-router-task": self.prediction.task,
                   "x-router-decision-id": self.decision_id,
                   "x-router-policy": f"{self.policy.name}@{self.policy_version}"}
        if tier != self.choice.tier:
            headers["x-router-routed-tier"] = self.choice.tier
        return headers

    def summary(self) -> dict[str, Any]:
        """The decision without an upstream call: what /v1/route returns."""
        return {
            "decision_id": self.decision_id,
            "policy": {"name": self.policy.name, "version": self.policy_version},
            "tier": self.choice.tier,
            "model": self.policy.tiers[self.choice.tier].model,
            "rule": self.choice.rule,
            "reason": self.choice.reason,
            "fallback_order": self.chain[1:],
            "classification": self.prediction.to_dict(),
            "classify_ms": round(self.classify_ms, 3),
            "route_ms": round(self.route_ms, 3),
        }
