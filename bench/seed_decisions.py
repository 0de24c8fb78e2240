"""Fill a database with synthetic decisions (and some reviews) for load-testing the
console's pages. Rows are routed by the real seed policy and keyword classifier, so
their tiers, rules and costs are what the router would have logged.

Usage: DATABASE_URL=sqlite:///big.db python -m bench.seed_decisions --n 100000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

from bench.common import PROMPTS
from router.classifier import KeywordClassifier
from router.config import DEFAULT_CONFIG, load_seed
from router.policy import decide
from storage import policies as policy_store
from storage import rollups
from storage.db import make_engine, migrate
from storage.models import DECISIONS, REVIEWS

CHUNK = 5000


def progress_printer(total: int, label: str = "") -> Callable[[int], None]:
    """A `seed` progress callback printing rows done, time so far and an estimate of time left."""
    started = time.perf_counter()

    def progress(done: int) -> None:
        if done % 100_000 == 0 or done == total:
            elapsed = time.perf_counter() - started
            print(f"{label}seeded {done:,} / {total:,} rows, {elapsed:.0f}s, "
                  f"about {elapsed * (total - done) / done:.0f}s left", flush=True)

    return progress


def seed(db: Engine, n: int, *, days: int = 30, reviews: int = 2000, rng_seed: int = 7,
         progress: Callable[[int], None] | None = None, config_path: Path = DEFAULT_CONFIG) -> None:
    """Insert `n` decisions spread over the last `days` days and `reviews` reviews of them, in
    chunks (a million rows never sit in memory at once), routed by the policies in `config_path`
    (stored unless the database has policies already); `progress` hears the rows written so far."""
    rng = random.Random(rng_seed)
    config = load_seed(config_path)
    policy_store.seed(db, {name: p.to_document() for name, p in config.policies.items()})
    policy = config.policies[config.default_policy]
    predictions = KeywordClassifier().classify(PROMPTS)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    ids: list[str] = []
    with db.begin() as conn:
        for i in range(n):
            k = rng.randrange(len(PROMPTS))
            p = predictions[k]
            d = decide(p, policy)
            failed = rng.random() < 0.01
            fell_back = not failed and rng.random() < 0.03
            tier = None if failed else (policy.tier_chain(d.tier)[1] if fell_back else d.tier)
            pt, ct = rng.randint(20, 800), rng.randint(20, 600)
            decision_id = uuid.uuid4().hex
            ids.append(decision_id)
            rows.append({
                "id": decision_id, "request_id": decision_id, "conversation_id": uuid.uuid4().hex[:24], "turn": 1,
                "created_at": now - timedelta(seconds=rng.uniform(0, days * 86400)),
                "source": "api" if rng.random() < 0.8 else "playground", "stream": rng.random() < 0.5,
                "policy_name": policy.name, "policy_version": 1, "task": p.task, "confidence": p.confidence,
                "task_probs": p.probabilities, "difficulty": p.difficulty, "complexity": p.complexity,
                "complexity_dims": p.dimensions,
                "classifier_backend": "keyword", "rule": d.rule, "routed_tier": d.tier, "tier": tier,
                "model": policy.tiers[tier].model if tier else None, "fallback": fell_back,
                "attempts": [{"tier": d.tier, "try_no": 1, "outcome": "status" if failed else "ok", "ms": 100.0}],
                "status": "error" if failed else "ok", "http_status": 502 if failed else 200,
                "error": "every tier failed (synthetic)" if failed else None,
                "classify_ms": rng.uniform(0.05, 0.3), "route_ms": rng.uniform(0.1, 0.5),
                "ttft_ms": rng.uniform(80, 900), "total_ms": rng.uniform(300, 6000),
                "prompt_tokens": pt, "completion_tokens": ct, "usage_estimated": False,
                "cost_usd": policy.tiers[tier].cost_usd(pt, ct) if tier else None,
                "baseline_tier": policy.baseline, "baseline_cost_usd": policy.tiers[policy.baseline].cost_usd(pt, ct),
                "prompt": PROMPTS[k], "prompt_chars": len(PROMPTS[k]), "response": "synthetic answer",
            })
            if len(rows) == CHUNK or i == n - 1:
                conn.execute(insert(DECISIONS), rows)
                rows.clear()
                if progress is not None:
                    progress(i + 1)
        review_rows = []
        for decision_id in rng.sample(ids, min(reviews, n)):
            r = rng.random()
            if r < 0.6:
                review_rows.append({"decision_id": decision_id, "verdict": "correct", "created_at": now})
            elif r < 0.8:
                review_rows.append({"decision_id": decision_id, "verdict": "misrouted", "created_at": now,
                                    "correct_task": rng.choice(["Open QA", "Rewrite", "Code Generation"]),
                                    "correct_tier": rng.choice(list(policy.tiers))})
            else:
                review_rows.append({"decision_id": decision_id, "verdict": rng.choice(["thumbs_up", "thumbs_down"]),
                                    "created_at": now})
        if review_rows:
            conn.execute(insert(REVIEWS), review_rows)
        rollups.rebuild(conn)  # these rows went around the decision log: sum every hour again


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    db = make_engine()
    migrate(db)
    start = time.perf_counter()
    seed(db, args.n, progress=progress_printer(args.n))
    print(f"seeded {args.n} decisions into {db.url.render_as_string()} in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
