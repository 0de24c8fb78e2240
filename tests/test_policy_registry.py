"""router/policy_registry.py: the active versions in memory, reloaded only when an activation
happened, and a stored version that no longer parses is left out instead of failing the rest."""

from __future__ import annotations

import pytest

from router import policy_admin
from router.config import DEFAULT_CONFIG, load_seed
from router.policy_registry import PolicyRegistry, UnknownPolicy
from storage import policies as store
from storage.db import make_engine, migrate

SEED = load_seed(DEFAULT_CONFIG)


@pytest.fixture
def db(database_url: str):  # type: ignore[no-untyped-def]
    db = make_engine(database_url)
    migrate(db)
    store.seed(db, {n: p.to_document() for n, p in SEED.policies.items()})
    yield db
    db.dispose()


def test_get_refresh_and_unknown_names(db) -> None:  # type: ignore[no-untyped-def]
    registry = PolicyRegistry(db, SEED.default_policy)
    assert registry.get().policy.name == SEED.default_policy and registry.get().version == 1
    assert registry.names() == sorted(SEED.policies)
    assert registry.refresh() is False  # nothing activated since
    document = {**SEED.policies[SEED.default_policy].to_document(), "default_tier": "llama-3-8b"}
    policy_admin.save(db, document, activate=True)
    assert registry.refresh() is True
    assert registry.get().version == 2 and registry.get().policy.default_tier == "llama-3-8b"
    with pytest.raises(UnknownPolicy, match="unknown policy 'nope'; active policies are"):
        registry.get("nope")


def test_a_stored_version_that_no_longer_parses_is_left_out(db) -> None:  # type: ignore[no-untyped-def]
    stored = store.save_version(db, "economy", {"name": "economy", "tiers": {}, "default_tier": "gone"})
    store.activate(db, "economy", stored.version)
    registry = PolicyRegistry(db, SEED.default_policy)
    assert "economy" not in registry.names() and SEED.default_policy in registry.names()
