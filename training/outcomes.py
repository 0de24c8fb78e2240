"""Public per-prompt outcome data (../shared/data/routing, see its ROUTING.md), read as
training rows for the difficulty head: a prompt and the share of small models that fell short
on it.

Training reads RouterBench's train files (its open models up to 70B are the small stand-ins)
and RouterDC's train files and unsplit English sets (seven 7-8B models). RouteLLM's files are
the test and are never read here except to drop training prompts that repeat them; CMMLU and
C-Eval (non-commercial licenses) are left out of a shipped model.
"""

from __future__ import annotations

import ast
import csv
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from training.benchmarks import read_objects

ROUTERBENCH = Path("routerbench-subset") / "routerbench_zs"
ROUTERDC = Path("routerdc") / "split2_model7"
ROUTELLM_EVALS = Path("routellm") / "routellm" / "evals"

ROUTERBENCH_STRONG = "gpt-4-1106-preview"
# RouterBench's open-weight models: what a deployment's small and medium tiers look like.
ROUTERBENCH_SMALL = ("mistralai/mistral-7b-chat", "WizardLM/WizardLM-13B-V1.2", "meta/code-llama-instruct-34b-chat",
                     "zero-one-ai/Yi-34B-Chat", "mistralai/mixtral-8x7b-chat", "meta/llama-2-70b-chat")
# The RouterBench models whose outcomes calibrate each quality class of tier (see the README's
# tolerance rule): the 7B class, the 70B class, and the strongest model.
STAND_INS = {"small": "mistralai/mistral-7b-chat", "medium": "meta/llama-2-70b-chat", "large": ROUTERBENCH_STRONG}
ROUTERBENCH_TRAIN = ("arc_challenge_train.csv", "mbpp_train.csv", "winograde_train.csv")
ROUTERBENCH_TEST = ("arc_challenge_test.csv", "mbpp_test.csv", "winograde_test.csv")
# RouterDC's English files with a train split, and the unsplit ones it keeps for out-of-domain
# tests (used here for training: the project's test is RouteLLM's). mmlu_train repeats MMLU's test
# questions, which RouteLLM scores on: the near-duplicate filter drops them.
ROUTERDC_TRAIN = ("arc_challenge_train.json", "arc_easy_train.json", "gsm8k-train.json", "humaneval_train.json",
                  "mbpp.json", "MATH_prealgebra.json", "mmlu_train.json")

# The code benchmarks among them: the code head of the difficulty build is fitted on these alone.
CODE_SOURCES = ("routerbench/mbpp", "routerdc/humaneval_train", "routerdc/mbpp")

SHINGLE = 8  # words per shingle for the near-duplicate test
NEAR_DUPLICATE = 0.5  # share of a prompt's shingles found in the test prompts


@dataclass(frozen=True)
class OutcomeRow:
    """One prompt; `failure` is the share of the small models whose answer fell short (0..1)."""

    text: str
    failure: float
    source: str
    scores: dict[str, float] | None = None  # RouterBench: each model's 0/1 outcome


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def shingles(text: str) -> set[tuple[str, ...]]:
    words = _words(text)
    if len(words) < SHINGLE:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


class NearDuplicates:
    """Does a prompt repeat (nearly) one of the test prompts? Word 8-gram containment."""

    def __init__(self, test_prompts: Iterable[str]) -> None:
        self.grams: set[tuple[str, ...]] = set()
        for text in test_prompts:
            self.grams |= shingles(text)

    def __contains__(self, text: object) -> bool:
        grams = shingles(str(text))
        return bool(grams) and sum(g in self.grams for g in grams) / len(grams) >= NEAR_DUPLICATE


def routellm_prompts(routing: Path) -> Iterator[str]:
    """Every prompt RouteLLM's evaluation scores on (MMLU, GSM8K, MT-Bench)."""
    evals = routing / ROUTELLM_EVALS
    for path in sorted((evals / "mmlu" / "responses").glob("mmlu_*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            yield from (row["prompt"] for row in csv.DictReader(f))
    with (evals / "gsm8k" / "gsm8k_responses.csv").open(encoding="utf-8", newline="") as f:
        yield from (row["prompt"] for row in csv.DictReader(f))
    with (evals / "mt_bench" / "question.jsonl").open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield from json.loads(line)["turns"]


def routerbench_prompt(cell: str) -> str:
    """RouterBench stores a prompt as a Python list literal of strings."""
    try:
        parts = ast.literal_eval(cell)
    except (ValueError, SyntaxError):
        return cell
    return "\n".join(str(p) for p in parts) if isinstance(parts, list) else str(parts)


def _score(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return None if value != value else value  # NaN: a row RouterBench never scored


@dataclass(frozen=True)
class RouterBenchRow:
    sample_id: str
    text: str
    scores: dict[str, float]
    costs: dict[str, float]


def routerbench_rows(routing: Path, files: Sequence[str]) -> list[RouterBenchRow]:
    csv.field_size_limit(1 << 30)
    rows: dict[str, RouterBenchRow] = {}
    for name in files:
        with (routing / ROUTERBENCH / name).open(encoding="utf-8", newline="") as f:
            for raw in csv.DictReader(f):
                models = [k for k in raw if k.endswith("|total_cost")]
                scores = {m.split("|")[0]: _score(raw[m.split("|")[0]]) for m in models}
                if any(v is None for v in scores.values()):
                    continue  # the unscored copy of a duplicated id
                costs = {m.split("|")[0]: float(raw[m]) for m in models}
                rows[raw["sample_id"]] = RouterBenchRow(raw["sample_id"], routerbench_prompt(raw["prompt"]),
                                                        {k: float(v or 0.0) for k, v in scores.items()}, costs)
    return list(rows.values())


def review_rows(path: Path, small_tiers: Sequence[str]) -> list[OutcomeRow]:
    """Outcomes an operator stated in the console (its exported reviews, JSONL): a prompt whose
    right tier is a small one is one a small tier handles (0); a small tier's answer marked
    misrouted to a larger tier is one it fell short on (1). Other reviews say nothing about the
    small tiers and are left out."""
    rows = []
    small = set(small_tiers)
    for item in read_objects(path):  # a line that is not JSON: a ValueError naming the file and line
        prompt, right, answered = item.get("prompt"), item.get("correct_tier"), item.get("tier")
        if not prompt or not right:
            continue
        if right in small:
            rows.append(OutcomeRow(str(prompt), 0.0, "reviews"))
        elif item.get("verdict") == "misrouted" and answered in small:
            rows.append(OutcomeRow(str(prompt), 1.0, "reviews"))
    return rows


JUDGED = Path(__file__).parent / "labels" / "difficulty_written.tsv"
JUDGED_SOURCE = "team-judged"


def judged_rows(path: Path = JUDGED) -> list[OutcomeRow]:
    """The maintainers' own difficulty judgments (training/labels/difficulty_written.tsv: the
    estimated share of small models that fall short, then the prompt), for the kinds of prompt the
    benchmarks lack: system design, proofs, long analysis, chat, Japanese. Errors name the line."""
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line or line.startswith("#") or line.startswith("failure\t"):
            continue
        failure, sep, prompt = line.partition("\t")
        try:
            value = float(failure)
        except ValueError:
            value = -1.0
        if not sep or not prompt.strip() or not 0.0 <= value <= 1.0:
            raise ValueError(f"{path.name}: line {number}: expected a failure share in [0, 1], a tab and a prompt")
        rows.append(OutcomeRow(prompt, value, JUDGED_SOURCE))
    return rows


def outcome_rows(routing: Path, *, drop: NearDuplicates | None = None) -> tuple[list[OutcomeRow], dict[str, int]]:
    """The training rows and, per source file, how many were dropped as near-duplicates of the test."""
    rows: list[OutcomeRow] = []
    dropped: dict[str, int] = {}
    for row in routerbench_rows(routing, ROUTERBENCH_TRAIN):
        source = "routerbench/" + row.sample_id.split(".")[0]
        if drop is not None and row.text in drop:
            dropped[source] = dropped.get(source, 0) + 1
            continue
        failure = 1.0 - sum(row.scores[m] for m in ROUTERBENCH_SMALL) / len(ROUTERBENCH_SMALL)
        rows.append(OutcomeRow(row.text, failure, source, row.scores))
    for name in ROUTERDC_TRAIN:
        source = "routerdc/" + name.removesuffix(".json")
        for item in json.loads((routing / ROUTERDC / name).read_text(encoding="utf-8")):
            text, scores = str(item["question"]), [float(v) for v in item["scores"].values()]
            if drop is not None and text in drop:
                dropped[source] = dropped.get(source, 0) + 1
                continue
            rows.append(OutcomeRow(text, 1.0 - sum(scores) / len(scores), source))
    return rows, dropped
