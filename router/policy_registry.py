"""The active policies, cached in memory and refreshed from the database when an
activation happens, so every process picks up a change without a restart."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy import Engine

from router.policy import Policy, PolicyError, parse_policy
from storage import policies as store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ActivePolicy:
    policy: Policy
    version: int


class UnknownPolicy(LookupError):
    pass


class PolicyRegistry:
    def __init__(self, db: Engine, default_policy: str) -> None:
        self.db = db
        self.default_policy = default_policy
        self._active: dict[str, ActivePolicy] = {}
        self._marker = -1
        self._lock = threading.Lock()
        self.refresh()

    def names(self) -> list[str]:
        return sorted(self._active)

    def get(self, name: str | None = None) -> ActivePolicy:
        name = name or self.default_policy
        try:
            return self._active[name]
        except KeyError:
            raise UnknownPolicy(f"unknown policy {name!r}; active policies are {self.names()}") from None

    def refresh(self) -> bool:
        """Reload if any activation happened since the last look. True if it reloaded."""
        marker = store.activation_marker(self.db)
        if marker == self._marker:
            return False
        with self._lock:
            active: dict[str, ActivePolicy] = {}
            for name, stored in store.active_policies(self.db).items():
                try:
                    active[name] = ActivePolicy(parse_policy(stored.document), stored.version)
                except PolicyError as exc:  # stored before a schema change; keep serving the others
                    log.error("policy %s v%d cannot be loaded: %s", name, stored.version, exc)
            self._active = active
            self._marker = marker
        log.info("active policies: %s", {n: a.version for n, a in active.items()})
        return True
