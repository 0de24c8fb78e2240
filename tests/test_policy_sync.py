"""Editing config/router.yaml after the first start: the server says the file and the served
versions differ, and `router policy sync` turns the file's changes into new versions."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from router.config import load_seed
from router.policy_admin import config_drift
from storage.db import make_engine
from storage.policies import active_versions, get_version
from tests.conftest import Simulator, make_runtime, run_cli, write_config


def edit_price(config: Path, price: float) -> None:
    raw = yaml.safe_load(config.read_text())
    for policy in raw["policies"]:
        if policy["name"] == "task-complexity":
            policy["tiers"]["llama-3-8b"]["price_in"] = price
    config.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_a_changed_config_file_is_reported_at_start(tmp_path: Path, sqlite_url: str, simulator: Simulator,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    config = write_config(tmp_path)
    make_runtime(sqlite_url, config, simulator).close()
    edit_price(config, 0.99)
    with caplog.at_level(logging.WARNING, logger="router.runtime"):
        runtime = make_runtime(sqlite_url, config, simulator)
    try:
        assert "['task-complexity'] in" in caplog.text and "router policy sync" in caplog.text
        assert runtime.health()["config_drift"] == ["task-complexity"]
        drift = config_drift(runtime.db, load_seed(config))
        assert [d.name for d in drift] == ["task-complexity"] and "price_in: 0.99" in drift[0].diff
        # what is served is still the database's version
        assert runtime.registry.get().policy.tiers["llama-3-8b"].price_in != 0.99
    finally:
        runtime.close()


def test_policy_sync_makes_the_files_changes_new_active_versions(tmp_path: Path, clean_env: dict[str, str],
                                                                  simulator: Simulator) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    config = write_config(tmp_path)
    make_runtime(url, config, simulator).close()
    env = {**clean_env, "DATABASE_URL": url, "ROUTER_CONFIG": str(config)}

    same = run_cli("policy", "sync", cwd=tmp_path, env=env)
    assert same.returncode == 0 and "nothing to sync" in same.stdout

    edit_price(config, 0.99)
    dry = run_cli("policy", "sync", "--dry-run", cwd=tmp_path, env=env)
    assert dry.returncode == 0 and "task-complexity differs from the active v1" in dry.stdout
    assert "price_in: 0.99" in dry.stdout and "would get a new version" in dry.stdout
    db = make_engine(url)
    assert active_versions(db)["task-complexity"] == 1

    done = run_cli("policy", "sync", cwd=tmp_path, env=env)
    assert done.returncode == 0 and "saved task-complexity v2 (active)" in done.stdout, done.stdout + done.stderr
    assert active_versions(db) == {"task-complexity": 2, "economy": 1, "quality-tolerance": 1}
    stored = get_version(db, "task-complexity", 2)
    assert stored.document["tiers"]["llama-3-8b"]["price_in"] == 0.99 and "synced" in (stored.comment or "")
    assert "nothing to sync" in run_cli("policy", "sync", cwd=tmp_path, env=env).stdout

    broken = run_cli("policy", "sync", "--config", str(tmp_path / "missing.yaml"), cwd=tmp_path, env=env)
    assert broken.returncode == 2 and "config file not found" in broken.stdout
    db.dispose()
