"""Settings from the environment, each with a working default, and the seed file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from router.classifier.int8_kernels import INT8_MODES
from router.policy import Policy, PolicyError, parse_policy

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "router.yaml"
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "prompt-classifier"


@dataclass(frozen=True)
class Settings:
    database_url: str | None  # None: storage's default SQLite file
    config_path: Path
    classifier: str  # auto (onnx when the artifact exists, else keyword) | onnx | triton | keyword
    classifier_model: Path  # the artifact folder (model.onnx, tokenizer.json, labels.json)
    triton_url: str
    triton_protocol: str  # http | grpc
    triton_model: str
    simulator: str  # auto: serve tiers without keys from the built-in simulator; off: never
    max_body_bytes: int
    durability_timeout_s: float
    policy_refresh_s: float
    auth: str  # off: no client keys (the local-dev default); keys: every API call needs a valid key
    redact_prompts: bool  # store a hash and a length instead of prompt and answer text
    console_password: str | None  # guards the console's policy and review pages
    drain_timeout_s: float = 3.0  # longest shutdown waits for buffered decisions before spilling them
    spill_file: Path | None = None  # where they are spilled (default: beside a SQLite file, else
    # decision-log-spill.jsonl in the working directory); the next start replays it
    classifier_max_pending: int = 64  # prompts a model backend may have waiting; past it, 503
    classifier_threads: int = 0  # ONNX Runtime intra-op threads per run; 0: see classifier_layout
    classifier_runs: int = 0  # model batches classified at once; 0: see classifier_layout
    classifier_int8: str = "auto"  # auto | exact | native: see router/classifier/int8_kernels.py
    simulator_url: str | None = None  # a running tier simulator to use instead of starting one

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)

        def number(name: str, default: str, kind: type[int] | type[float] = float) -> Any:
            raw = env.get(name, default)
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"{name} must be a number, got {raw!r}") from None
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {raw!r}")
            return value

        simulator = env.get("ROUTER_SIMULATOR", "auto")
        if simulator not in ("auto", "off"):
            raise ValueError(f"ROUTER_SIMULATOR must be auto or off, got {simulator!r}")
        classifier = env.get("ROUTER_CLASSIFIER", "auto")
        if classifier not in ("auto", "onnx", "triton", "keyword"):
            raise ValueError(f"ROUTER_CLASSIFIER must be auto, onnx, triton or keyword, got {classifier!r}")
        triton_protocol = env.get("ROUTER_TRITON_PROTOCOL", "http")
        if triton_protocol not in ("http", "grpc"):
            raise ValueError(f"ROUTER_TRITON_PROTOCOL must be http or grpc, got {triton_protocol!r}")
        classifier_int8 = env.get("ROUTER_CLASSIFIER_INT8", "auto")
        if classifier_int8 not in INT8_MODES:
            raise ValueError(f"ROUTER_CLASSIFIER_INT8 must be auto, exact or native, got {classifier_int8!r}")
        auth = env.get("ROUTER_AUTH", "off")
        if auth not in ("off", "keys"):
            raise ValueError(f"ROUTER_AUTH must be off or keys, got {auth!r}")
        redact = env.get("ROUTER_REDACT_PROMPTS", "0").lower()
        if redact not in ("0", "1", "false", "true", "no", "yes"):
            raise ValueError(f"ROUTER_REDACT_PROMPTS must be 0 or 1, got {redact!r}")
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            config_path=Path(env.get("ROUTER_CONFIG") or DEFAULT_CONFIG),
            classifier=classifier,
            classifier_model=Path(env.get("ROUTER_CLASSIFIER_MODEL") or DEFAULT_MODEL),
            triton_url=env.get("ROUTER_TRITON_URL", "127.0.0.1:8000"),
            triton_protocol=triton_protocol,
            triton_model=env.get("ROUTER_TRITON_MODEL", "prompt_classifier"),
            simulator=simulator,
            max_body_bytes=number("ROUTER_MAX_BODY_BYTES", str(4 * 1024 * 1024), int),
            durability_timeout_s=number("ROUTER_DURABILITY_TIMEOUT_S", "5"),
            policy_refresh_s=number("ROUTER_POLICY_REFRESH_S", "1"),
            auth=auth,
            redact_prompts=redact in ("1", "true", "yes"),
            console_password=env.get("ROUTER_CONSOLE_PASSWORD") or None,
            drain_timeout_s=number("ROUTER_DRAIN_TIMEOUT_S", "3"),
            spill_file=Path(env["ROUTER_SPILL_FILE"]) if env.get("ROUTER_SPILL_FILE") else None,
            classifier_max_pending=number("ROUTER_CLASSIFIER_MAX_PENDING", "64", int),
            classifier_threads=(number("ROUTER_CLASSIFIER_THREADS", "1", int)
                                if env.get("ROUTER_CLASSIFIER_THREADS") else 0),
            classifier_runs=number("ROUTER_CLASSIFIER_RUNS", "1", int) if env.get("ROUTER_CLASSIFIER_RUNS") else 0,
            classifier_int8=classifier_int8,
            simulator_url=env.get("ROUTER_SIMULATOR_URL") or None,
        )


def classifier_layout(cores: int, threads: int = 0, runs: int = 0) -> tuple[int, int]:
    """(intra-op threads per run, runs at once) for a model classifier on `cores` cores; 0 means
    unset. Unset, each core gets a one-thread run of its own: fresh prompts under load are
    classified 1.1-1.3x faster than by one batch over every core (README, Benchmarks). One run
    alone gets up to two threads, since it shares the host with the server."""
    cores = max(1, cores)
    if threads and runs:
        return threads, runs
    if threads:
        return threads, max(1, cores // threads)
    if runs:
        return (max(1, cores // runs) if runs > 1 else min(2, cores)), runs
    return 1, cores


@dataclass(frozen=True)
class SeedConfig:
    default_policy: str
    policies: dict[str, Policy]


def load_seed(path: Path) -> SeedConfig:
    """Read and validate the seed YAML; errors name the file and the bad field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"{path}: config file not found (set ROUTER_CONFIG)") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("policies"), list) or not raw["policies"]:
        raise PolicyError(f"{path}: expected a mapping with a non-empty 'policies' list")
    policies: dict[str, Policy] = {}
    for i, doc in enumerate(raw["policies"]):
        try:
            policy = parse_policy(doc)
        except PolicyError as exc:
            raise PolicyError(f"{path}: policies[{i}].{exc}", field=f"policies.{i}.{exc.field}") from None
        if policy.name in policies:
            raise PolicyError(f"{path}: policies[{i}].name: duplicate policy {policy.name!r}")
        policies[policy.name] = policy
    default = raw.get("default_policy") or next(iter(policies))
    if default not in policies:
        raise PolicyError(f"{path}: default_policy {default!r} is not one of {sorted(policies)}")
    return SeedConfig(default, policies)
