"""Wiring: settings -> database, policies, classifier, tiers, decision log -> Engine.

Both front doors (the API server and the console) build their engine here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Engine as DBEngine

from router.background import BackgroundServer
from router.classifier import Classifier, KeywordClassifier
from router.classifier.artifact import ArtifactError
from router.classifier.cache import CachedClassifier
from router.classifier.guarded import GuardedClassifier
from router.config import Settings, classifier_layout, load_seed
from router.engine import Engine
from router.metrics import Metrics
from router.policy_admin import config_drift
from router.policy_registry import PolicyRegistry
from router.recorder import Recorder
from router.simulator import start_simulator
from router.tiers import EndpointError, TierClient
from storage import policies as policy_store
from storage.db import describe, make_engine, migrate
from storage.decision_log import DecisionLog

log = logging.getLogger(__name__)

TIER_CHECK_TTL_S = 15.0


def make_classifier(settings: Settings, cache_entries: int = 10_000) -> tuple[Classifier, str | None]:
    """The configured backend behind a prediction cache, and why it is not the one asked
    for (None when it is). A model backend that cannot start leaves the keyword classifier."""
    name = settings.classifier
    if name == "auto":
        if not (settings.classifier_model / "model.onnx").is_file():
            return CachedClassifier(KeywordClassifier(), cache_entries), None
        name = "onnx"
    try:
        if name == "onnx":
            from router.classifier.onnx import OnnxClassifier

            threads, _ = classifier_layout(os.cpu_count() or 1, settings.classifier_threads, settings.classifier_runs)
            inner: Classifier = OnnxClassifier(settings.classifier_model, threads=threads,
                                               int8=settings.classifier_int8)
        elif name == "triton":
            from router.classifier.triton import TritonClassifier

            inner = TritonClassifier(settings.triton_url, settings.classifier_model, model_name=settings.triton_model,
                                     protocol=settings.triton_protocol)
        else:
            inner = KeywordClassifier()
    except (ArtifactError, OSError, ImportError) as exc:
        log.error("classifier backend %s failed to start, using the keyword classifier: %s", name, exc)
        return CachedClassifier(KeywordClassifier(), cache_entries), f"{name} failed to start: {exc}"
    return CachedClassifier(inner, cache_entries), None


def tiers_without_keys(registry: PolicyRegistry, environ: Mapping[str, str]) -> list[str]:
    missing = set()
    for name in registry.names():
        for tier_name, tier in registry.get(name).policy.tiers.items():
            if tier.api_key_env and not environ.get(tier.api_key_env):
                missing.add(tier_name)
    return sorted(missing)


@dataclass
class Runtime:
    settings: Settings
    db: DBEngine
    engine: Engine
    metrics: Metrics | None = None
    simulator: BackgroundServer | None = None
    config_drift: list[str] = field(default_factory=list)  # policies whose config file differs from the db
    _tier_checks: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    @property
    def registry(self) -> PolicyRegistry:
        return self.engine.registry

    async def aclose(self) -> None:
        await self.engine.tiers.aclose()
        self.close()

    def close(self) -> None:
        """Flush the decision log, stop the simulator, release the database and the tier connections
        of event loops that have ended."""
        self.engine.recorder.decision_log.close()
        self.engine.tiers.release()
        if self.simulator is not None:
            self.simulator.stop()
        self.db.dispose()

    def health(self) -> dict[str, Any]:
        engine = self.engine
        stats = engine.recorder.decision_log.stats()
        classifier = engine.classifier.info()
        tiers = {}
        default = self.registry.get()
        for name, tier in default.policy.tiers.items():
            try:
                ep = engine.tiers.endpoint(name, tier)
                tiers[name] = {"model": tier.model, "endpoint": ep.base_url, "simulated": ep.simulated}
            except EndpointError as exc:
                tiers[name] = {"model": tier.model, "endpoint": None, "simulated": False, "error": str(exc)}
        degraded = not stats.healthy or engine.classifier.failures > 0
        return {
            "status": "degraded" if degraded else "ok",
            "process": os.getpid(),  # which worker answered, under `serve --workers`
            "classifier": classifier,
            "database": {"location": describe(self.db), "healthy": stats.healthy, "queued": stats.queued,
                         "written": stats.written, "last_error": stats.last_error,
                         "last_batch_ms": round(stats.last_batch_ms, 3), "dead_letters": stats.dead_letters,
                         "replayed": stats.replayed,
                         "sums_sealed_until": stats.sealed_until.isoformat() if stats.sealed_until else None},
            "policies": {n: self.registry.get(n).version for n in self.registry.names()},
            "default_policy": {"name": default.policy.name, "version": default.version},
            "tiers": tiers,
            "simulator": self.simulator.url if self.simulator else None,
            "config_drift": self.config_drift,
        }

    async def health_with_tiers(self) -> dict[str, Any]:
        """The health report with each tier's reachability merged in."""
        report = self.health()
        for name, status in (await self.check_tiers()).items():
            report["tiers"].setdefault(name, {}).update(status)
        return report

    async def check_tiers(self, timeout_s: float = 2.0) -> dict[str, dict[str, Any]]:
        """Reachability of each tier of the default policy (GET /models), cached briefly."""
        default = self.registry.get().policy
        out: dict[str, dict[str, Any]] = {}

        async def check(name: str) -> None:
            cached = self._tier_checks.get(name)
            if cached and time.monotonic() - cached[0] < TIER_CHECK_TTL_S:
                out[name] = cached[1]
                return
            try:
                ep = self.engine.tiers.endpoint(name, default.tiers[name])
            except EndpointError as exc:
                out[name] = {"reachable": False, "error": str(exc)}
                return
            headers = {"authorization": f"Bearer {ep.api_key}"} if ep.api_key else {}
            start = time.perf_counter()
            try:
                async with httpx.AsyncClient(timeout=timeout_s) as client:
                    r = await client.get(f"{ep.base_url}/models", headers=headers)
                result: dict[str, Any] = {"reachable": r.status_code < 500, "status": r.status_code,
                          "ms": round((time.perf_counter() - start) * 1000, 1)}
            except httpx.HTTPError as exc:
                result = {"reachable": False, "error": type(exc).__name__}
            self._tier_checks[name] = (time.monotonic(), result)
            out[name] = result

        await asyncio.gather(*(check(n) for n in default.tiers))
        return out


def prepare_database(settings: Settings) -> tuple[DBEngine, PolicyRegistry, list[str]]:
    """Open the database, migrate it and seed the config file's policies: the database, the
    policy registry, and the policies whose file differs from the database. `serve --workers`
    runs it once before it starts the workers, which then find the schema and policies in place."""
    seed = load_seed(settings.config_path)
    db = make_engine(settings.database_url)
    migrate(db)
    seeded = policy_store.seed(db, {n: p.to_document() for n, p in seed.policies.items()})
    if seeded:
        log.info("seeded policies %s from %s", seeded, settings.config_path)
    drift = [d.name for d in config_drift(db, seed)]
    if drift:
        log.warning("%s in %s differ from the active versions in the database, which are what is served; "
                    "`router policy sync` makes the file's changes new versions", drift, settings.config_path)
    registry = PolicyRegistry(db, seed.default_policy)
    registry.get()  # the default policy must exist
    return db, registry, drift


def build_runtime(settings: Settings | None = None, *, environ: Mapping[str, str] | None = None,
                  simulator_url: str | None = None) -> Runtime:
    """Open the database (migrating it), seed policies, and start the simulator if a tier needs it."""
    settings = settings or Settings.from_env()
    environ = os.environ if environ is None else environ
    db, registry, drift = prepare_database(settings)
    simulator_url = simulator_url or settings.simulator_url
    simulator = None
    missing = tiers_without_keys(registry, environ)
    if simulator_url is None and missing and settings.simulator == "auto":
        simulator = start_simulator()
        simulator_url = simulator.url + "/v1"
        log.warning("tiers %s have no API key set; they are served by the built-in simulator at %s",
                    missing, simulator_url)
    tiers = TierClient(simulator_url=simulator_url, environ=environ)
    metrics = Metrics()
    classifier, classifier_error = make_classifier(settings)
    decision_log = DecisionLog(db, on_batch=metrics.observe_log_write, spill_path=settings.spill_file,
                               drain_timeout_s=settings.drain_timeout_s)
    recorder = Recorder(decision_log, metrics=metrics, durability_timeout_s=settings.durability_timeout_s,
                        redact_prompts=settings.redact_prompts)
    _, runs = classifier_layout(os.cpu_count() or 1, settings.classifier_threads, settings.classifier_runs)
    guarded = GuardedClassifier(classifier, max_pending=settings.classifier_max_pending, runs=runs)
    if classifier_error:
        guarded.record_failure(classifier_error)
    engine = Engine(classifier=guarded, registry=registry, tiers=tiers, recorder=recorder)
    return Runtime(settings, db, engine, metrics, simulator, drift)
