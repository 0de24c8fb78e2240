"""Policy operations for operators: save a validated version, activate, roll back, diff.

The console's Policies page and the `python -m router policy` command both call these.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from router.config import SeedConfig, Settings, load_seed
from router.policy import Policy, PolicyError, diff_policies, parse_policy, parse_policy_yaml
from storage import policies as store
from storage.policies import PolicyNotFound, StoredPolicy


def save(db: Engine, document: dict[str, Any] | Policy, *, created_by: str | None = None,
         comment: str | None = None, activate: bool = False) -> StoredPolicy:
    """Validate and store a new version; nothing invalid reaches the database."""
    policy = document if isinstance(document, Policy) else parse_policy(document)
    stored = store.save_version(db, policy.name, policy.to_document(), created_by=created_by, comment=comment)
    if activate:
        store.activate(db, policy.name, stored.version, activated_by=created_by, comment=comment)
    return stored


def activate(db: Engine, name: str, version: int, *, by: str | None = None, comment: str | None = None
             ) -> StoredPolicy:
    stored = store.get_version(db, name, version)
    parse_policy(stored.document)  # refuse to activate what cannot be served
    return store.activate(db, name, version, activated_by=by, comment=comment)


def rollback(db: Engine, name: str, *, by: str | None = None) -> StoredPolicy:
    """Activate the version that was active before the current one."""
    history = store.activation_history(db, name)
    if not history:
        raise PolicyNotFound(f"policy {name!r} has never been activated")
    current = history[0].version
    previous = next((a.version for a in history[1:] if a.version != current), None)
    if previous is None:
        raise PolicyNotFound(f"policy {name!r} has no earlier active version to roll back to")
    return activate(db, name, previous, by=by, comment=f"rollback from v{current}")


@dataclass(frozen=True)
class Drift:
    """A policy of the config file that differs from what the database serves."""

    name: str
    active_version: int | None  # None: the database has never seen it
    diff: str


def config_drift(db: Engine, seed: SeedConfig) -> list[Drift]:
    """The config file's policies whose document differs from their active version."""
    active = store.active_versions(db)
    drift = []
    for name, policy in seed.policies.items():
        version = active.get(name)
        if version is None:
            drift.append(Drift(name, None, policy.to_yaml()))
            continue
        served = store.get_version(db, name, version).document
        with contextlib.suppress(PolicyError):  # a version stored before a schema change stays as stored
            served = parse_policy(served).to_document()
        if served != policy.to_document():
            drift.append(Drift(name, version, diff_policies(served, policy, old_label=f"{name}@v{version}",
                                                            new_label=f"{name} in the config file")))
    return drift


def sync(db: Engine, seed: SeedConfig, *, by: str = "sync", activate: bool = True) -> list[StoredPolicy]:
    """Make each config-file policy that differs from its active version a new version."""
    saved = []
    for drift in config_drift(db, seed):
        comment = f"synced from the config file (was v{drift.active_version})" if drift.active_version else \
            "synced from the config file"
        saved.append(save(db, seed.policies[drift.name], created_by=by, comment=comment, activate=activate))
    return saved


def diff(db: Engine, name: str, old: int, new: int) -> str:
    a = store.get_version(db, name, old)
    b = store.get_version(db, name, new)
    return diff_policies(a.document, b.document, old_label=f"{name}@v{old}", new_label=f"{name}@v{new}")


def _sync(db: Engine, args: argparse.Namespace) -> int:
    path = Path(args.config) if args.config else Settings.from_env().config_path
    seed = load_seed(path)
    drift = config_drift(db, seed)
    if not drift:
        print(f"the active policies match {path}; nothing to sync")
        return 0
    for d in drift:
        state = f"differs from the active v{d.active_version}" if d.active_version else "is not in the database"
        print(f"{d.name} {state}:\n{d.diff}")
    if args.dry_run:
        print(f"dry run: {len(drift)} policies would get a new version")
        return 0
    for stored in sync(db, seed, activate=not args.no_activate):
        print(f"saved {stored.name} v{stored.version}" + ("" if args.no_activate else " (active)"))
    return 0


def main(args: argparse.Namespace) -> int:
    from storage.db import make_engine, migrate

    db = make_engine()
    migrate(db)
    try:
        if args.action == "list":
            active = store.active_versions(db)
            for name in store.policy_names(db):
                for v in store.list_versions(db, name):
                    mark = "*" if active.get(name) == v.version else " "
                    print(f"{mark} {name} v{v.version}  {v.created_at:%Y-%m-%d %H:%M}  {v.created_by or ''}"
                          f"  {v.comment or ''}")
        elif args.action == "show":
            version = args.version or store.active_versions(db).get(args.name)
            if version is None:
                raise PolicyNotFound(f"policy {args.name!r} has no active version")
            print(parse_policy(store.get_version(db, args.name, version).document).to_yaml(), end="")
        elif args.action == "add":
            policy = parse_policy_yaml(Path(args.file).read_text(encoding="utf-8"))
            stored = save(db, policy, created_by="cli", comment=args.comment, activate=args.activate)
            print(f"saved {stored.name} v{stored.version}" + (" (active)" if args.activate else ""))
        elif args.action == "activate":
            stored = activate(db, args.name, args.version, by="cli")
            print(f"activated {stored.name} v{stored.version}")
        elif args.action == "diff":
            print(diff(db, args.name, args.old, args.new) or "(no differences)", end="")
        elif args.action == "sync":
            return _sync(db, args)
    except (PolicyError, PolicyNotFound, OSError) as exc:
        print(f"error: {exc}")
        return 2
    return 0
