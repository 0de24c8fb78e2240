"""The labeling tools under training/: relabeling rewrites only the listed turns, the audit
flags a label that the rest of the data contradicts, and a blind second reading is scored
against the first."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

import training.audit_labels
import training.label_agreement
import training.label_turns

LABELS = ("# comment\nid\tturn\tsha1\ttask\tselection\n"
          "a1\t0\t111111111111\tCode Generation\trandom\n"
          "a1\t2\t222222222222\tOpen QA\tkeyword\n"
          "b2\t0\t333333333333\tOther\trandom\n")


def label_files(tmp_path: Path) -> tuple[Path, Path]:
    labels = tmp_path / "sharegpt.tsv"
    labels.write_text(LABELS, encoding="utf-8")
    return labels, tmp_path / "fixes.txt"


def test_relabel_changes_drops_and_keeps_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels, fixes = label_files(tmp_path)
    fixes.write_text("a1 0 CB\nb2 0 XX\n")
    assert training.label_turns.relabel(fixes, labels) == 0
    assert labels.read_text(encoding="utf-8") == (
        "# comment\nid\tturn\tsha1\ttask\tselection\n"
        "a1\t0\t111111111111\tChatbot\trandom\n"
        "a1\t2\t222222222222\tOpen QA\tkeyword\n")
    assert "relabeled 2 turns" in capsys.readouterr().out


def test_relabel_refuses_unknown_turns_and_codes_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels, fixes = label_files(tmp_path)
    fixes.write_text("a1 0 CB\nzz 9 OQ\n")
    assert training.label_turns.relabel(fixes, labels) == 2
    assert "not in sharegpt.tsv: zz 9" in capsys.readouterr().err
    fixes.write_text("a1 0 Poetry\n")
    assert training.label_turns.relabel(fixes, labels) == 2
    assert "fixes.txt:1: expected '<id> <turn> <code>'" in capsys.readouterr().err
    assert labels.read_text(encoding="utf-8") == LABELS


def test_out_of_fold_audit_flags_the_contradicted_label() -> None:
    audit = training.audit_labels
    rng = np.random.default_rng(0)
    centers = np.eye(3, 8) * 10
    y = np.repeat(np.arange(3), 40)
    x = centers[y] + rng.normal(0, 1, (len(y), 8))
    y_noisy = y.copy()
    y_noisy[5] = 2  # a class-0 point labeled 2
    probs = audit.out_of_fold(x, y_noisy, 3, folds=5, seed=1)
    assert probs.shape == (120, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0)
    flagged = audit.suspects(probs, y_noisy)
    assert flagged[0] == 5
    assert probs[5].argmax() == 0
    assert len(flagged) < 5  # the clean rows agree with their labels


def test_kappa_discounts_chance_agreement() -> None:
    kappa = training.label_agreement.kappa
    assert kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"]) == 1.0
    assert kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"]) == 0.0  # half agree, as chance would
    assert kappa(["a", "a", "a", "b"], ["a", "a", "a", "a"]) == 0.0  # 3/4 agree, all by chance


def reread_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A labeled set of three prompts and a draw of two of them for a second reading."""
    from training.dataset import text_sha

    rows = [{"prompt": "Write a Python function that sorts a list", "task": "Code Generation", "source": "sharegpt",
             "id": "a1", "turn": 0},
            {"prompt": "make it shorter", "task": "Rewrite", "context": "user: explain DNS\nassistant: DNS maps names",
             "source": "sharegpt", "id": "a1", "turn": 2},
            {"prompt": "What is the capital of France?", "task": "Open QA", "source": "sharegpt",
             "id": "b2", "turn": 0}]
    data = tmp_path / "labeled.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    draw = tmp_path / ".reread.json"
    draw.write_text(json.dumps([{"id": r["id"], "turn": r["turn"], "sha1": text_sha(r["prompt"])} for r in rows[1:]]))
    return data, draw, tmp_path / "reread.tsv"


def test_a_second_reading_is_scored_against_the_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agreement = training.label_agreement
    data, draw, reread = reread_files(tmp_path)
    codes = tmp_path / "codes.txt"
    codes.write_text("0 SU\n1 OQ\n")  # the follow-up read as Summarization this time
    assert agreement.apply(codes, draw, reread) == 0 and not draw.exists()
    assert [r["task"] for r in agreement.read_reread(reread)] == ["Summarization", "Open QA"]
    capsys.readouterr()
    assert agreement.score_command(data, reread) == 0
    out = capsys.readouterr().out
    assert "second reading vs first: n=2 kappa=0.333" in out and "accuracy=0.500" in out
    assert "tier agreement: 1.000" in out  # Summarization and Rewrite share the small tier


def test_a_second_reading_refuses_bad_codes_and_moved_prompts(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    agreement = training.label_agreement
    data, draw, reread = reread_files(tmp_path)
    codes = tmp_path / "codes.txt"
    codes.write_text("0 SU\n1 Poetry\n")
    assert agreement.apply(codes, draw, reread) == 2 and not reread.exists()
    assert "codes.txt:2: expected '<number> <code>'" in capsys.readouterr().err
    codes.write_text("0 SU\n")
    assert agreement.apply(codes, draw, reread) == 2 and "no code for prompts 1" in capsys.readouterr().err
    assert agreement.apply(tmp_path / "absent.txt", draw, reread) == 2
    assert "absent.txt: No such file or directory" in capsys.readouterr().err
    codes.write_text("0 SU\n1 XX\n")  # a second reading cannot leave a prompt out
    assert agreement.apply(codes, draw, reread) == 2 and "codes.txt:2: expected" in capsys.readouterr().err
    codes.write_text("0 RW\n1 OQ\n")
    assert agreement.apply(codes, draw, reread) == 0
    data.write_text(data.read_text().replace("capital of France", "capital of Spain"), encoding="utf-8")
    assert agreement.score_command(data, reread) == 2
    assert "b2 turn 0 is not in" in capsys.readouterr().err
    data.write_text("not json\n", encoding="utf-8")
    assert agreement.score_command(data, reread) == 2
    assert "labeled.jsonl:1: expected a JSON object with prompt and task" in capsys.readouterr().err


def test_a_reading_file_is_read_line_by_line_with_named_errors(tmp_path: Path) -> None:
    read_codes = training.label_turns.read_codes
    codes = tmp_path / "codes.txt"
    codes.write_text("0 CG\n\n1 XX\n")
    assert read_codes(codes, skip=True) == {"0": "CG", "1": "XX"}
    with pytest.raises(ValueError, match=r"codes\.txt:3: expected '<number> <code>'"):
        read_codes(codes, skip=False)
    codes.write_text("0 CG extra\n")
    with pytest.raises(ValueError, match=r"codes\.txt:1: expected"):
        read_codes(codes, skip=True)
    with pytest.raises(ValueError, match=r"missing\.txt: No such file or directory"):
        read_codes(tmp_path / "missing.txt", skip=True)


def test_ranking_puts_the_turns_likeliest_to_be_the_task_first(tmp_path: Path) -> None:
    from router.classifier.onnx import OnnxClassifier
    from tests.tiny_artifact import build

    model = build(tmp_path / "model")
    follow_up = [{"value": "extract the names"}, {"value": "here they are"}, {"value": "please"}]
    turns = [("c1", 0, "what is the capital of france", "", []),
             ("c2", 0, "extract the list", "", []),
             ("c3", 2, "please", "here they are", follow_up),
             ("c4", 0, "write a python function", "", [])]
    order = [cid for cid, *_ in training.label_turns.ranked(turns, "Extraction", OnnxClassifier(model))]
    # the bare extraction request first, the follow-up whose context asks for extraction next
    assert order[:2] == ["c2", "c3"]
    assert set(order) == {"c1", "c2", "c3", "c4"}


@pytest.mark.parametrize(("drawn", "selection"), [({"pool": "any"}, "random"), ({"pool": "extraction"}, "keyword"),
                                                  ({"pool": "any", "ranked": "Extraction"}, "model")])
def test_applied_labels_record_how_their_turns_were_drawn(tmp_path: Path, drawn: dict[str, str],
                                                          selection: str) -> None:
    labels, codes = label_files(tmp_path)
    candidates = tmp_path / "candidates.json"
    candidates.write_text(json.dumps({**drawn, "candidates": [["c3", 1, "extract the dates", ""],
                                                              ["c4", 0, "hm", ""]]}))
    codes.write_text("0 EX\n1 XX\n")
    assert training.label_turns.apply(codes, labels, candidates) == 0
    added = labels.read_text().splitlines()[len(LABELS.splitlines()):]
    assert added == [f"c3\t1\t{training.label_turns.text_sha('extract the dates')}\tExtraction\t{selection}"]


def test_a_bad_ranking_model_or_count_is_a_named_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    label_turns = training.label_turns
    # the model loads before the long read of the conversations, so this needs no data package
    assert label_turns.sample("extraction", 3, 1, "Extraction", tmp_path / "none") == 2
    assert "error: --model:" in capsys.readouterr().err
    assert label_turns.positive("5") == 5
    for bad in ("0", "-1", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="whole number above zero"):
            label_turns.positive(bad)
