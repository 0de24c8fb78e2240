"""The labeled-set builder: label rows pin real text, a cut-off source file still reads, and
anything that does not match fails with a message naming the row."""

from __future__ import annotations

import json
import re
from difflib import SequenceMatcher
from pathlib import Path

import pytest

from router.classifier.prediction import TASK_LABELS
from router.classifier.text import MODEL_TURN_HEAD_CHARS, MODEL_TURN_TAIL_CHARS, model_text
from training.dataset import (
    LABELS_DIR,
    WRITTEN_FILES,
    DatasetError,
    fill_template,
    iter_json_array,
    read_label_rows,
    read_written_rows,
    sharegpt_examples,
    sharegpt_label_rows,
    text_sha,
)

CONVERSATIONS = [
    {"id": "a1", "conversations": [{"from": "human", "value": "Summarize this: the cat sat."},
                                   {"from": "gpt", "value": "A cat sat."},
                                   {"from": "human", "value": "Is it positive or negative?"}]},
    {"id": "b2", "conversations": [{"from": "human", "value": "write a haiku about rain"}]},
]


def write_labels(path: Path, rows: list[tuple[str, int, str, str]]) -> Path:
    lines = ["# comment", "id\tturn\tsha1\ttask\tselection"]
    lines += [f"{cid}\t{turn}\t{sha}\t{task}\trandom" for cid, turn, sha, task in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_cut_off_array_yields_the_whole_records_before_the_cut() -> None:
    text = json.dumps(CONVERSATIONS)
    assert [c["id"] for c in iter_json_array(text)] == ["a1", "b2"]
    cut = text[: text.index('"b2"') + 10]
    assert [c["id"] for c in iter_json_array(cut)] == ["a1"]


def test_labeled_turns_come_back_with_their_context(tmp_path: Path) -> None:
    rows = read_label_rows(write_labels(tmp_path / "l.tsv", [
        ("a1", 2, text_sha("Is it positive or negative?"), "Classification"),
        ("b2", 0, text_sha("write a haiku about rain"), "Text Generation")]))
    examples = sharegpt_examples(json.dumps(CONVERSATIONS), rows)
    assert [(e["prompt"], e["task"]) for e in examples] == [
        ("Is it positive or negative?", "Classification"), ("write a haiku about rain", "Text Generation")]
    assert examples[0]["context"] == "Summarize this: the cat sat.\nA cat sat."
    assert examples[1]["context"] == ""
    assert [(e["id"], e["turn"]) for e in examples] == [("a1", 2), ("b2", 0)]  # found again for relabeling


def test_changed_text_unknown_rows_and_unknown_tasks_fail_by_name(tmp_path: Path) -> None:
    rows = read_label_rows(write_labels(tmp_path / "l.tsv", [("b2", 0, "000000000000", "Text Generation")]))
    with pytest.raises(DatasetError, match="b2 turn 0: text differs"):
        sharegpt_examples(json.dumps(CONVERSATIONS), rows)
    rows = read_label_rows(write_labels(tmp_path / "l.tsv", [("zz", 0, "000000000000", "Text Generation")]))
    with pytest.raises(DatasetError, match="not in the package"):
        sharegpt_examples(json.dumps(CONVERSATIONS), rows)
    with pytest.raises(DatasetError, match="row 2: unknown task 'Poetry'"):
        read_label_rows(write_labels(tmp_path / "l.tsv", [("b2", 0, "x", "Poetry")]))


def test_turns_drawn_by_a_models_ranking_come_only_when_asked_for(tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "l.tsv", [("a1", 0, "x", "Summarization"), ("b2", 0, "y", "Text Generation")])
    labels.write_text(labels.read_text().replace("b2\t0\ty\tText Generation\trandom",
                                                 "b2\t0\ty\tText Generation\tmodel"))
    assert [r["id"] for r in sharegpt_label_rows(labels, ranked=False)] == ["a1"]
    assert [r["id"] for r in sharegpt_label_rows(labels, ranked=True)] == ["a1", "b2"]


def test_templates_are_filled_from_defaults_then_descriptions() -> None:
    template = {"prompt": "トピック: {topic}\n文体: {tone}\n書いてください。",
                "variables": {"topic": {"description": "記事のトピック", "required": True},
                              "tone": {"description": "文体", "default": "親しみやすい"}}}
    assert fill_template(template) == "トピック: 記事のトピック\n文体: 親しみやすい\n書いてください。"


def test_the_shipped_label_files_parse() -> None:
    labels = Path(__file__).resolve().parent.parent / "training" / "labels"
    sharegpt = read_label_rows(labels / "sharegpt.tsv")
    assert len(sharegpt) > 1000 and len({(r["id"], r["turn"]) for r in sharegpt}) == len(sharegpt)
    assert len(read_label_rows(labels / "jp_prompt.tsv")) == 50


def test_a_long_turn_keeps_its_head_and_its_instruction_at_the_end() -> None:
    pasted = "word " * 400
    text = model_text("Here is an email: " + pasted + "Summarize this email")
    assert text.startswith("Here is an email: ")
    assert text.endswith("Summarize this email")
    assert len(text) <= MODEL_TURN_HEAD_CHARS + MODEL_TURN_TAIL_CHARS + 3
    assert model_text("short turn") == "short turn"


def test_exported_reviews_join_with_their_right_task(tmp_path: Path) -> None:
    from training.dataset import DatasetError, reviewed_examples

    export = tmp_path / "reviewed_decisions.jsonl"
    rows = [{"decision_id": "d1", "prompt": "もっと短くして", "correct_task": "Rewrite"},
            {"decision_id": "d2", "prompt": "hello", "correct_task": None},  # no task named: nothing to learn
            {"decision_id": "d3", "prompt": None, "correct_task": "Chatbot"},  # redacted
            {"decision_id": "d4", "prompt": "x", "correct_task": "Poetry"}]
    export.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    got = reviewed_examples(export)
    assert [(e["prompt"], e["task"], e["id"], e["train_only"]) for e in got] == [
        ("もっと短くして", "Rewrite", "review-d1", True)]
    export.write_text("not json\n")
    with pytest.raises(DatasetError, match=r"reviewed_decisions\.jsonl:1"):
        reviewed_examples(export)


def test_written_prompts_keep_their_quotes_lines_and_context(tmp_path: Path) -> None:
    from training.dataset import written_examples

    (tmp_path / "ja_written.tsv").write_text("# c\ntask\tprompt\tcontext\n"
                                             "Rewrite\tもっと短くして\tuser: a\\nassistant: b\n", encoding="utf-8")
    (tmp_path / "written.tsv").write_text('task\tprompt\tcontext\nChatbot\t"Captain, the storm!" she said\t\n'
                                          "Summarization\tTL;DR:\\n\\nline one\\nline two\t\n", encoding="utf-8")
    for name in WRITTEN_FILES[2:]:
        (tmp_path / name).write_text("task\tprompt\tcontext\n", encoding="utf-8")
    got = written_examples(tmp_path)
    assert [(e["task"], e["prompt"], e["context"]) for e in got] == [
        ("Rewrite", "もっと短くして", "user: a\nassistant: b"),
        ("Chatbot", '"Captain, the storm!" she said', ""),  # a leading quotation mark is text, not CSV quoting
        ("Summarization", "TL;DR:\n\nline one\nline two", "")]
    assert len({e["id"] for e in got}) == 3 and all(e["train_only"] and e["source"] == "team-written" for e in got)


def test_the_shipped_written_prompts_cover_every_label_in_both_languages() -> None:
    from router.classifier.prediction import TASK_LABELS
    from training.dataset import LABELS_DIR, written_examples

    got = written_examples(LABELS_DIR)
    japanese = {e["task"] for e in got if any("\u3040" <= ch <= "\u9fff" for ch in e["prompt"])}
    english = {e["task"] for e in got if e["prompt"].isascii()}
    assert japanese == english == set(TASK_LABELS)


def test_the_later_written_prompts_parse_and_repeat_none_of_the_first() -> None:
    from training.dataset import LABELS_DIR, read_label_rows

    def keys(name: str) -> set[tuple[str, str]]:
        rows = read_label_rows(LABELS_DIR / name)  # an unknown label would raise, naming the row
        return {(row["prompt"], row.get("context") or "") for row in rows}

    more = keys("written_more.tsv")
    assert len(more) >= 180 and not more & (keys("written.tsv") | keys("ja_written.tsv"))


def test_dolly_plain_questions_filed_as_creative_writing_can_stay_out_of_training(tmp_path: Path) -> None:
    from training.dataset import dolly_convention_conflict, dolly_examples

    assert dolly_convention_conflict("creative_writing", "カナダの国技は何ですか？")
    assert dolly_convention_conflict("creative_writing", "なぜバリ島は家族旅行に最適なのか？")
    assert not dolly_convention_conflict("creative_writing", "カリフォルニアの山火事について、ショートエッセイを書く")
    assert not dolly_convention_conflict("creative_writing", "雨の日の短い物語はどんなものになるでしょうか？")
    assert not dolly_convention_conflict("open_qa", "カナダの国技は何ですか？")

    rows = [{"index": i, "category": category, "instruction": text, "input": ""} for i, category, text in (
        (1, "creative_writing", "カナダの国技は何ですか？"), (2, "creative_writing", "猫の詩を書いて。"),
        (3, "open_qa", "カナダの国技は何ですか？"), (10, "creative_writing", "秋の詩を書いて"))]  # 10: the test split
    path = tmp_path / "dolly.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    got = {(e["task"], e["prompt"]) for e in dolly_examples(path, per_label=10, seed=0, drop_questions=True)}
    assert got == {("Text Generation", "猫の詩を書いて。"), ("Open QA", "カナダの国技は何ですか？")}
    kept = {(e["task"], e["prompt"]) for e in dolly_examples(path, per_label=10, seed=0)}  # the shipped build's data
    assert kept == got | {("Text Generation", "カナダの国技は何ですか？")}


def trained_prompts() -> set[str]:
    """Every prompt of the team-written files the build reads."""
    return {row["prompt"] for name in WRITTEN_FILES for row in read_written_rows(LABELS_DIR / name)}


def closest_wording(rows: list[dict[str, str]], others: list[str]) -> float:
    """How alike the most alike pair is (SequenceMatcher ratio, lower-cased); others are lower-cased already."""
    return max(SequenceMatcher(None, row["prompt"].lower(), other).ratio() for row in rows for other in others)


def test_followup_dev_set_is_labeled_and_never_trained_on() -> None:
    rows = read_written_rows(LABELS_DIR / "followups_dev.tsv")
    assert "followups_dev.tsv" not in WRITTEN_FILES
    assert len(rows) >= 80 and all("\n" in row["context"] for row in rows)
    assert {row["task"] for row in rows} == set(TASK_LABELS)
    assert not trained_prompts() & {row["prompt"] for row in rows}


def test_training_followups_are_worded_apart_from_the_dev_set() -> None:
    # written_followups.tsv was written against the dev set's error kinds; in other words, so that
    # bench/followups.py still measures the kinds rather than recall of these sentences.
    dev = [row["prompt"].lower() for row in read_written_rows(LABELS_DIR / "followups_dev.tsv")]
    rows = read_written_rows(LABELS_DIR / "written_followups.tsv")
    assert "written_followups.tsv" in WRITTEN_FILES and len(rows) >= 100
    code = read_written_rows(LABELS_DIR / "written_code_followups.tsv")
    assert "written_code_followups.tsv" in WRITTEN_FILES and len(code) >= 20
    rows += code
    assert all("\n" in row["context"] for row in rows)
    assert closest_wording(rows, dev) < 0.7


def test_the_casual_dev_set_is_never_trained_on_and_its_training_kin_is_worded_apart() -> None:
    dev = read_written_rows(LABELS_DIR / "casual_dev.tsv")
    assert "casual_dev.tsv" not in WRITTEN_FILES and len(dev) >= 100
    assert {row["task"] for row in dev} == set(TASK_LABELS)
    assert not trained_prompts() & {row["prompt"] for row in dev}
    casual = read_written_rows(LABELS_DIR / "written_casual.tsv")  # tried, not in the shipped build's data
    assert len(casual) >= 100 and all(row["task"] in TASK_LABELS for row in casual)
    others = [row["prompt"].lower() for row in dev] + [
        row["prompt"].lower() for row in read_written_rows(LABELS_DIR / "followups_dev.tsv")]
    assert closest_wording(casual, others) < 0.7


def test_the_named_code_dev_set_is_never_trained_on_and_its_training_kin_is_worded_apart() -> None:
    dev = read_written_rows(LABELS_DIR / "code_dev.tsv")
    assert "code_dev.tsv" not in WRITTEN_FILES and len(dev) >= 70
    assert sum(row["task"] == "Code Generation" for row in dev) >= 50
    assert sum(row["task"] != "Code Generation" for row in dev) >= 15  # prose about games and software
    assert not trained_prompts() & {row["prompt"] for row in dev}
    named = read_written_rows(LABELS_DIR / "written_code_named.tsv")  # tried, not in the shipped build's data
    assert len(named) >= 100
    assert all(row["task"] in TASK_LABELS for row in named)
    # FizzBuzz stays out of training: the seed's "FizzBuzz goes to the small tier" checks stay unseen.
    assert not any("fizzbuzz" in row["prompt"].lower() for row in named)
    others = [row["prompt"].lower() for name in ("code_dev.tsv", "casual_dev.tsv", "followups_dev.tsv")
              for row in read_written_rows(LABELS_DIR / name)]
    assert closest_wording(named, others) < 0.7


def test_a_file_kept_out_of_the_build_can_be_tried_by_name() -> None:
    from training.dataset import DatasetError, also_written_examples, written_examples

    tried = also_written_examples(LABELS_DIR, ["written_code_named.tsv"], with_written=True)
    named = read_written_rows(LABELS_DIR / "written_code_named.tsv")
    assert [e["prompt"] for e in tried] == [r["prompt"] for r in named]
    assert all(e["train_only"] and e["source"] == "team-written" for e in tried)
    assert not {e["id"] for e in tried} & {e["id"] for e in written_examples(LABELS_DIR)}
    with pytest.raises(DatasetError, match=re.escape("written.tsv already joins with --written")):
        also_written_examples(LABELS_DIR, ["written.tsv"], with_written=True)
    assert also_written_examples(LABELS_DIR, ["written.tsv"], with_written=False)  # alone, it may be named
    with pytest.raises(DatasetError, match=re.escape("no no_such_file.tsv in")):
        also_written_examples(LABELS_DIR, ["no_such_file.tsv"], with_written=False)
