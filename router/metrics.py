"""Prometheus metrics for the API server, fed from decision rows as they are logged.

Under `serve --workers N` each worker process counts into prometheus_client's shared files
(PROMETHEUS_MULTIPROC_DIR, which serve sets) and whichever worker answers /metrics reports the
sum over all of them."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from storage.decision_log import LogStats
from storage.record import DecisionRecord

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
        self.difficulty = Histogram("router_difficulty", "Estimated chance a small tier falls short, by routed tier.",
                                    ["routed_tier"], buckets=tuple(i / 10 for i in range(1, 11)), registry=r)
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
        # livesum: with several workers, the sum over the processes alive (ignored in one process)
        self.log_queue = Gauge("router_decision_log_queue", "Decisions waiting to be written.", registry=r,
                               multiprocess_mode="livesum")
        self.dead_letters = Gauge("router_decision_log_dead_letters", "Decision rows the database refused, kept "
                                  "in the dead_letters table since this process started.", registry=r,
                                  multiprocess_mode="livesum")
        self.log_write = Histogram("router_decision_log_write_seconds", "Duration of one group commit.",
                                   buckets=(*FAST_BUCKETS, 0.25, 0.5, 1, 5), registry=r)
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}  # see _child

    def _child(self, metric: Any, *values: str) -> Any:
        """metric.labels(*values), kept: prometheus_client checks and converts the values on every
        call, which was half of a decision's accounting (25 -> 13 us). The label values are
        policies, tiers, tasks and causes, so the children stay few."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe(self, record: DecisionRecord) -> None:
        """Account for one decision (routed or refused)."""
        child = self._child
        tier = record.tier or record.routed_tier or "none"
        child(self.requests, record.policy_name or "none", tier, record.task or "none", record.status).inc()
        if record.route_ms is not None:
            self.decision.observe(record.route_ms / 1000)
        if record.classify_ms is not None:
            child(self.classify, record.classifier_backend or "none").observe(record.classify_ms / 1000)
        if record.difficulty is not None:
            child(self.difficulty, record.routed_tier or "none").observe(record.difficulty)
        if record.ttft_ms is not None:
            child(self.ttft, tier).observe(record.ttft_ms / 1000)
        if record.total_ms is not None:
            child(self.total, tier).observe(record.total_ms / 1000)
        if record.prompt_tokens is not None and record.tier:
            child(self.tokens, tier, "prompt").inc(record.prompt_tokens)
            child(self.tokens, tier, "completion").inc(record.completion_tokens or 0)
        if record.cost_usd is not None:
            child(self.cost, tier).inc(record.cost_usd)
            child(self.baseline_cost, record.policy_name or "none").inc(record.baseline_cost_usd or 0)
        if record.fallback:
            child(self.fallbacks, record.routed_tier or "none", tier).inc()
        for attempt in record.attempts or ():
            if attempt.get("outcome") not in (None, "ok"):
                child(self.errors, f"tier_{attempt['outcome']}").inc()
        if record.status == "error":
            child(self.errors, _request_cause(record)).inc()

    def observe_log_write(self, seconds: float) -> None:
        self.log_write.observe(seconds)

    def render(self, log: LogStats) -> bytes:
        self.log_queue.set(log.queued)
        self.dead_letters.set(log.dead_letters)
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if shared:  # several workers: every process's counts, not this one's alone
            combined = CollectorRegistry()
            MultiProcessCollector(combined, path=shared)  # type: ignore[no-untyped-call]
            return generate_latest(combined)
        return generate_latest(self.registry)


def _request_cause(record: DecisionRecord) -> str:
    status = record.http_status or 0
    if status == 499:
        return "client_disconnected"
    if status >= 500:
        return "upstream" if status in (502, 504) else "server"
    return "bad_request"
