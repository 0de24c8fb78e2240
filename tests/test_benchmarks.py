"""training/benchmarks.py: public sets become labeled examples with the documented mappings,
dolly-15k-ja's test split is exactly the rows whose index % 10 == 0, and `evaluate --suite`
scores each set it finds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.benchmarks import BenchmarkError, dolly_ja, first_turns, suite


def write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


DOLLY = [{"index": "0", "instruction": "要約して", "input": "長い文章。", "category": "summarization"},
         {"index": "1", "instruction": "日本の首都は？", "input": "", "category": "open_qa"},
         {"index": "10", "instruction": "分類して", "input": "", "category": "classification"},
         {"index": "11", "instruction": "名前を抜き出して", "input": "田中さんと鈴木さん",
          "category": "information_extraction"}]


def test_dolly_test_split_is_index_mod_10_and_pasted_material_follows_the_instruction(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", DOLLY)
    test = dolly_ja(path, test=True)
    train = dolly_ja(path, test=False)
    assert [(e.prompt, e.task) for e in test] == [("要約して\n\n長い文章。", "Summarization"),
                                                  ("分類して", "Classification")]
    assert [e.task for e in train] == ["Open QA", "Extraction"]
    assert all(e.japanese for e in test + train)


def test_first_turns_are_labeled_by_ability(tmp_path: Path) -> None:
    path = write(tmp_path / "q.jsonl", [
        {"question_id": 1, "category": "coding", "turns": ["Write a C++ program", "Now in Rust"]},
        {"question_id": 2, "category": "roleplay", "turns": ["Pretend to be Sheldon"]},
        {"question_id": 3, "category": "unknown", "turns": ["?"]}])
    assert [(e.prompt, e.task) for e in first_turns(path)] == [("Write a C++ program", "Code Generation"),
                                                               ("Pretend to be Sheldon", "Chatbot")]


def test_the_suite_scores_what_it_finds_and_names_what_is_missing(tmp_path: Path) -> None:
    write(tmp_path / "databricks-dolly-15k-ja" / "databricks-dolly-15k-ja.jsonl", DOLLY)
    assert set(suite(tmp_path)) == {"dolly-15k-ja test"}
    out = subprocess.run([sys.executable, "-m", "training.evaluate", "--suite", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "dolly-15k-ja test" in out.stdout and "macro-F1" in out.stdout
    with pytest.raises(BenchmarkError, match="none of the suite's files are there"):
        suite(tmp_path / "empty")
    missing = subprocess.run([sys.executable, "-m", "training.evaluate", "--suite", str(tmp_path / "empty")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "none of the suite's files" in missing.stderr
