"""Prometheus metrics for the API server, fed from decision rows as they are logged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
FAST_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("router_requests_total", "Routed and refused requests.",
                                ["policy", "tier", "task", "status"], registry=r)
        self.decision = Histogram("router_decision_seconds", "Time from request to upstream call (classify + decide).",
                                  buckets=FAST_BUCKETS, registry=r)
        self.classify = Histogram("router_classifier_seconds", "Classifier latency per prompt.", ["backend"],
                                  buckets=FAST_BUCKETS, registry=r)
        self.ttft = Histogram("router_upstream_ttft_seconds", "Time to first token of streamed answers.", ["tier"],
                              buckets=LATENCY_BUCKETS, registry=r)
        self.total = Histogram("router_request_seconds", "Total request latency.", ["tier"],
                               buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("router_tokens_total", "Tokens by tier.", ["tier", "kind"], registry=r)
        self.cost = Counter("router_cost_usd_total", "Cost in USD by tier.", ["tier"], registry=r)
        self.baseline_cost = Counter("router_baseline_cost_usd_total",
                                     "What the same requests would have cost on the baseline tier.", ["policy"],
                                     registry=r)
        self.fallbacks = Counter("router_fallbacks_total", "Requests answered by a fallback tier.",
                                 ["routed_tier", "tier"], registry=r)
        self.errors = Counter("router_errors_total", "Failed attempts and failed requests by cause.", ["cause"],
                              registry=r)
        self.log_queue = Gauge("router_decision_log_queue", "Decisions waiting to be written.", registry=r)
        self.log_write = Histogram("router_decision_log_write_seconds", "Duration of one group commit.",
                                   buckets=(*FAST_BUCKETS, 0.25, 0.5, 1, 5), registry=r)

    def observe(self, row: Mapping[str, Any]) -> None:
        """Account for one decision row (routed or refused)."""
        tier = row.get("tier") or row.get("routed_tier") or "none"
        self.requests.labels(row.get("policy_name") or "none", tier, row.get("task") or "none",
                             row.get("status", "error")).inc()
        if row.get("route_ms") is not None:
            self.decision.observe(row["route_ms"] / 1000)
        if row.get("classify_ms") is not None:
            self.classify.labels(row.get("classifier_backend") or "none").observe(row["classify_ms"] / 1000)
        if row.get("ttft_ms") is not None:
            self.ttft.labels(tier).observe(row["ttft_ms"] / 1000)
        if row.get("total_ms") is not None:
            self.total.labels(tier).observe(row["total_ms"] / 1000)
        if row.get("prompt_tokens") is not None and row.get("tier"):
            self.tokens.labels(tier, "prompt").inc(row["prompt_tokens"])
            self.tokens.labels(tier, "completion").inc(row.get("completion_tokens") or 0)
        if row.get("cost_usd") is not None:
            self.cost.labels(tier).inc(row["cost_usd"])
            self.baseline_cost.labels(row.get("policy_name") or "none").inc(row.get("baseline_cost_usd") or 0)
        if row.get("fallback"):
            self.fallbacks.labels(row.get("routed_tier") or "none", tier).inc()
        for attempt in row.get("attempts") or ():
            if attempt.get("outcome") not in (None, "ok"):
                self.errors.labels(f"tier_{attempt['outcome']}").inc()
        if row.get("status") == "error":
            self.errors.labels(_request_cause(row)).inc()

    def observe_log_write(self, seconds: float) -> None:
        self.log_write.observe(seconds)

    def render(self, queue_depth: int) -> bytes:
        self.log_queue.set(queue_depth)
        return generate_latest(self.registry)


def _request_cause(row: Mapping[str, Any]) -> str:
    status = row.get("http_status") or 0
    if status == 499:
        return "client_disconnected"
    if status >= 500:
        return "upstream" if status in (502, 504) else "server"
    return "bad_request"
