"""The labeling tools under training/: relabeling rewrites only the listed turns, and the audit
flags a label that the rest of the data contradicts."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

TRAINING = Path(__file__).resolve().parent.parent / "training"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, TRAINING / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    assert load("label_turns").relabel(fixes, labels) == 0
    assert labels.read_text(encoding="utf-8") == (
        "# comment\nid\tturn\tsha1\ttask\tselection\n"
        "a1\t0\t111111111111\tChatbot\trandom\n"
        "a1\t2\t222222222222\tOpen QA\tkeyword\n")
    assert "relabeled 2 turns" in capsys.readouterr().out


def test_relabel_refuses_unknown_turns_and_codes_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels, fixes = label_files(tmp_path)
    fixes.write_text("a1 0 CB\nzz 9 OQ\n")
    assert load("label_turns").relabel(fixes, labels) == 2
    assert "not in sharegpt.tsv: zz 9" in capsys.readouterr().err
    fixes.write_text("a1 0 Poetry\n")
    assert load("label_turns").relabel(fixes, labels) == 2
    assert "fixes.txt:1: expected '<id> <turn> <code>'" in capsys.readouterr().err
    assert labels.read_text(encoding="utf-8") == LABELS


def test_out_of_fold_audit_flags_the_contradicted_label() -> None:
    audit = load("audit_labels")
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
