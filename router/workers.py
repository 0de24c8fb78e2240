"""`serve --workers N`: N server processes on one port, each with its own engine, sharing what
must be shared.

The parent prepares what the workers must not race over, then hands the port to uvicorn's
process manager:
- the database is migrated and the config file's policies seeded once, here;
- one tier simulator serves every worker when tiers have no keys (ROUTER_SIMULATOR_URL);
- metrics go to one prometheus_client multiprocess folder, so /metrics from any worker reports
  all of them;
- each worker's classifier gets an equal share of the cores (ROUTER_CLASSIFIER_THREADS and _RUNS).
Policies and API keys are read from the database by every worker (ROUTER_POLICY_REFRESH_S), a
decision row is written by the worker that served it, and the decision log's spill file is
locked, so shutdown and restart keep every row as with one process.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

import uvicorn

from router.config import Settings, classifier_layout
from router.runtime import prepare_database, tiers_without_keys
from router.simulator import start_simulator

log = logging.getLogger(__name__)


def worker_environment(workers: int, environ: dict[str, str], *, simulator_url: str | None,
                       metrics_dir: str) -> dict[str, str]:
    """The variables the workers start with: the caller's, plus what they share (the simulator
    the parent started, if it did). An operator's own ROUTER_CLASSIFIER_THREADS, _RUNS or
    PROMETHEUS_MULTIPROC_DIR is kept."""
    env = dict(environ)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
    # Each worker's classifier is laid out on its share of the cores.
    threads, runs = classifier_layout(max(1, (os.cpu_count() or 1) // workers),
                                      _count(env.get("ROUTER_CLASSIFIER_THREADS")),
                                      _count(env.get("ROUTER_CLASSIFIER_RUNS")))
    env.setdefault("ROUTER_CLASSIFIER_THREADS", str(threads))
    env.setdefault("ROUTER_CLASSIFIER_RUNS", str(runs))
    if simulator_url:
        env["ROUTER_SIMULATOR_URL"] = simulator_url
    return env


def _count(raw: str | None) -> int:
    """A positive whole number, else 0 (unset; a bad value is left for the worker's own check to name)."""
    try:
        return max(0, int(raw or 0))
    except ValueError:
        return 0


def serve_workers(settings: Settings, workers: int, *, host: str, port: int, log_level: str,
                  access_log: bool) -> int:
    db, registry, _ = prepare_database(settings)
    missing = tiers_without_keys(registry, os.environ)
    db.dispose()
    simulator = None
    if missing and settings.simulator == "auto" and not settings.simulator_url:
        simulator = start_simulator()
        log.warning("tiers %s have no API key set; the %d workers share the built-in simulator at %s",
                    missing, workers, simulator.url)
    metrics_dir = tempfile.mkdtemp(prefix="router-metrics-")
    env = worker_environment(workers, dict(os.environ),
                             simulator_url=simulator.url + "/v1" if simulator else None, metrics_dir=metrics_dir)
    os.environ.update(env)  # uvicorn's workers are spawned with this process's environment
    try:
        uvicorn.run("router.server:create_app", factory=True, workers=workers, host=host, port=port,
                    log_level=log_level, access_log=access_log)
    finally:
        if simulator is not None:
            simulator.stop()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
