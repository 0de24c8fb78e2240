"""Public labeled prompt sets (../shared/data, read by path, never copied into the project) as
Examples in the 11 task labels, for scoring any classifier backend.

The mappings follow the data README's suggestions: dolly's categories map one to one (it has
no code, chat or rewrite rows); MT-Bench's and Vicuna's categories are abilities, so only
their first turns are labeled (writing -> Text Generation, roleplay -> Chatbot, coding -> Code
Generation, extraction -> Extraction, math/reasoning/fermi -> Other, the knowledge categories
-> Open QA); MBPP is all Code Generation.

dolly-15k-ja's test split is the rows whose `index` % 10 == 0: never train or tune on them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from training.evaluate import Example, jsonl_rows

DOLLY = {"open_qa": "Open QA", "general_qa": "Open QA", "closed_qa": "Closed QA",
         "information_extraction": "Extraction", "summarization": "Summarization",
         "classification": "Classification", "brainstorming": "Brainstorming",
         "creative_writing": "Text Generation"}
ABILITIES = {"writing": "Text Generation", "roleplay": "Chatbot", "coding": "Code Generation",
             "extraction": "Extraction", "math": "Other", "reasoning": "Other", "fermi": "Other",
             "stem": "Open QA", "humanities": "Open QA", "knowledge": "Open QA", "generic": "Open QA",
             "common-sense": "Open QA", "counterfactual": "Open QA"}


class BenchmarkError(ValueError):
    pass


def read_objects(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file (lines split as training.evaluate.jsonl_rows splits them);
    a missing file or a line that is not JSON is a named error."""
    try:
        lines = jsonl_rows(path)
    except OSError as exc:
        raise BenchmarkError(f"{path}: {exc.strerror or exc}") from None
    for number, line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BenchmarkError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if isinstance(row, dict):
            yield row


def is_dolly_test(row: dict[str, Any]) -> bool:
    return int(row["index"]) % 10 == 0


def dolly_prompt(row: dict[str, Any]) -> str:
    """What a user would send: the instruction, then the pasted material."""
    instruction, material = str(row.get("instruction") or "").strip(), str(row.get("input") or "").strip()
    return f"{instruction}\n\n{material}" if material else instruction


def dolly_ja(path: Path, *, test: bool) -> list[Example]:
    """dolly-15k-ja's test split (test=True) or the rest."""
    return [Example(dolly_prompt(row), DOLLY[row["category"]]) for row in read_objects(path)
            if row.get("category") in DOLLY and is_dolly_test(row) == test and dolly_prompt(row)]


def first_turns(path: Path) -> list[Example]:
    """MT-Bench / Vicuna style files: each question's first turn, labeled by its category."""
    out = []
    for row in read_objects(path):
        turns = row.get("turns") or []
        task = ABILITIES.get(str(row.get("category")))
        if task and turns and str(turns[0]).strip():
            out.append(Example(str(turns[0]).strip(), task))
    return out


def mbpp(path: Path) -> list[Example]:
    return [Example(str(row["text"]).strip(), "Code Generation") for row in read_objects(path) if row.get("text")]


SUITE: dict[str, tuple[str, Callable[[Path], list[Example]]]] = {
    "dolly-15k-ja test": ("databricks-dolly-15k-ja/databricks-dolly-15k-ja.jsonl",
                          lambda p: dolly_ja(p, test=True)),
    "mt-bench (en)": ("mt_bench/question.jsonl", first_turns),
    "mt-bench (ja)": ("japanese_mt_bench/question.jsonl", first_turns),
    "vicuna (en)": ("vicuna_bench/question.jsonl", first_turns),
    "vicuna (ja)": ("ja-vicuna-qa-benchmark/question.jsonl", first_turns),
    "mbpp test": ("mbpp-test/mbpp.test.jsonl", mbpp),
}


def suite(data_dir: Path) -> dict[str, list[Example]]:
    """Every evaluation set of the suite that is present under data_dir (../shared/data)."""
    found = {name: load(data_dir / relative) for name, (relative, load) in SUITE.items()
             if (data_dir / relative).is_file()}
    if not found:
        wanted = ", ".join(relative for relative, _ in SUITE.values())
        raise BenchmarkError(f"{data_dir}: none of the suite's files are there ({wanted})")
    return found
