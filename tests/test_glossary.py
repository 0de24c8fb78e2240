"""The Japanese glossary: built from a JMdict-shaped SQLite file made here, read back, used
to segment and gloss Japanese, and applied by the ONNX backend when an artifact ships it."""

from __future__ import annotations

import gzip
import shutil
import sqlite3
from pathlib import Path

import pytest

from router.classifier.artifact import GLOSSARY_FILE, ArtifactError
from router.classifier.glossary import Glossary, GlossaryError, has_japanese
from router.classifier.onnx import OnnxClassifier
from tests.tiny_artifact import build as build_artifact
from training.glossary_build import build, main, write

JMDICT_TABLES = """
CREATE TABLE Entry (idseq INTEGER);
CREATE TABLE Kanji (ID INTEGER PRIMARY KEY, idseq INTEGER, text TEXT);
CREATE TABLE Kana (ID INTEGER PRIMARY KEY, idseq INTEGER, text TEXT, nokanji BOOLEAN);
CREATE TABLE KJP (kid INTEGER, text TEXT);
CREATE TABLE KNP (kid INTEGER, text TEXT);
CREATE TABLE Sense (ID INTEGER PRIMARY KEY, idseq INTEGER);
CREATE TABLE SenseGloss (sid INTEGER, lang TEXT, gend TEXT, text TEXT);
CREATE TABLE pos (sid INTEGER, text TEXT);
CREATE TABLE misc (sid INTEGER, text TEXT);
CREATE TABLE character (ID INTEGER PRIMARY KEY, literal TEXT, stroke_count INTEGER, grade TEXT, freq TEXT, jlpt TEXT);
"""

# idseq, kanji forms, kana forms, common?, glosses, part of speech, misc
ENTRIES = [
    (1, ["実装"], ["じっそう"], False, ["implementation", "mounting"],
     ["noun or participle which takes the aux. verb suru"], []),
    (2, ["纏める"], ["まとめる"], True, ["to collect (into one)", "to summarize"], ["Ichidan verb"], []),
    (3, ["書く"], ["かく"], True, ["to write"], ["Godan verb with 'ku' ending"], []),
    (4, [], ["から"], True, ["from"], ["particle"], []),
    (5, [], ["ソート"], False, ["sort"], ["noun (common) (futsuumeishi)"], []),
    (6, ["猥褻"], ["わいせつ"], False, ["obscenity"], ["noun (common) (futsuumeishi)"], []),
    (7, ["古語"], ["こご"], False, ["archaic word"], ["noun (common) (futsuumeishi)"], ["archaism"]),
    (8, ["簡潔"], ["かんけつ"], True, ["concise"], ["adjectival nouns or quasi-adjectives (keiyodoshi)"], []),
    (9, ["実"], ["み"], True, ["fruit"], ["noun (common) (futsuumeishi)"], []),
    (10, ["装"], ["よそおい"], False, ["attire"], ["noun (common) (futsuumeishi)"], []),
]
JOYO = "実装書纏簡潔古語"  # 猥褻 stays out: not Jōyō, so the rare compound is dropped


def jmdict_db(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript(JMDICT_TABLES)
    sense_id = 0
    for idseq, kanji, kana, common, glosses, pos, misc in ENTRIES:
        db.execute("INSERT INTO Entry VALUES (?)", (idseq,))
        for text in kanji:
            kid = db.execute("INSERT INTO Kanji (idseq, text) VALUES (?, ?)", (idseq, text)).lastrowid
            if common:
                db.execute("INSERT INTO KJP VALUES (?, 'ichi1')", (kid,))
        for text in kana:
            kid = db.execute("INSERT INTO Kana (idseq, text, nokanji) VALUES (?, ?, 0)", (idseq, text)).lastrowid
            if common:
                db.execute("INSERT INTO KNP VALUES (?, 'ichi1')", (kid,))
        for number, gloss in enumerate(glosses):
            sense_id += 1
            db.execute("INSERT INTO Sense VALUES (?, ?)", (sense_id, idseq))
            db.execute("INSERT INTO SenseGloss VALUES (?, 'eng', '', ?)", (sense_id, gloss))
            if number == 0:
                db.executemany("INSERT INTO pos VALUES (?, ?)", [(sense_id, p) for p in pos])
                db.executemany("INSERT INTO misc VALUES (?, ?)", [(sense_id, m) for m in misc])
    db.executemany("INSERT INTO character (literal, grade) VALUES (?, '8')", [(c,) for c in JOYO])
    db.commit()
    db.close()
    return path


@pytest.fixture(scope="module")
def glossary_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("glossary")
    entries = build(jmdict_db(folder / "jmdict.db"))
    write(entries, folder / GLOSSARY_FILE)
    return folder / GLOSSARY_FILE


def test_builder_keeps_first_glosses_stems_and_grammar_and_drops_rare_oddities(glossary_file: Path) -> None:
    g = Glossary.load(glossary_file)
    # "to " and parentheses dropped; a verb reads as its first two senses
    assert g.glosses["纏める"] == "collect summarize" and g.glosses["まとめる"] == "collect summarize"
    assert g.glosses["まとめ"] == "collect summarize"  # ichidan stem: まとめて, まとめた
    assert g.glosses["実装"] == "implementation"  # not a verb: first sense only
    assert g.glosses["書き"] == "write" and g.glosses["書い"] == "write"  # godan masu- and te-stems
    assert g.glosses["から"] == ""  # a particle is consumed silently
    assert "が" not in g.glosses  # one-kana words are left to the segmenter's cheap skip
    assert g.glosses["ソート"] == "sort"  # rare but kept
    assert "猥褻" not in g.glosses and "古語" not in g.glosses  # non-Jōyō compound, archaism
    assert g.costs["実装"] > 1.0 and "簡潔" not in g.costs  # rare words cost more than common ones


def test_segmentation_prefers_the_dictionary_word_over_single_characters(glossary_file: Path) -> None:
    g = Glossary.load(glossary_file)
    # 実装 (one rare word) beats 実 (a common word) plus a character no word covers; particles emit nothing.
    assert g.gloss("Pythonでソートの実装を") == "Python sort implementation"
    assert g.gloss("簡潔にまとめて。") == "concise collect summarize ."
    assert g.gloss("コードから書いて") == "write"  # unknown katakana and endings are dropped, not guessed


def test_a_request_noun_with_suru_reads_as_an_english_verb(glossary_file: Path) -> None:
    g = Glossary.load(glossary_file)
    # the noun alone keeps its dictionary gloss; as a request (して, してください, しなさい) it is the verb
    assert g.gloss("実装") == "implementation"
    assert g.gloss("Pythonでソートを実装して") == "Python sort implement"
    assert g.gloss("実装してください") == g.gloss("実装しなさい") == g.gloss("実装する") == "implement"


def test_text_without_japanese_passes_through_unchanged(glossary_file: Path) -> None:
    g = Glossary.load(glossary_file)
    text = "Summarize  this:\n\n### context\nuser: hi"
    assert not has_japanese(text) and g.gloss(text) == text
    assert has_japanese("まとめて") and has_japanese("実装")


def test_a_malformed_or_corrupt_glossary_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv.gz"
    with gzip.open(bad, "wt", encoding="utf-8") as f:
        f.write("実装\timplementation\t1\n纏める\tcollect\n")
    with pytest.raises(GlossaryError, match="line 2"):
        Glossary.load(bad)
    corrupt = tmp_path / "corrupt.tsv.gz"
    corrupt.write_bytes(b"not gzip at all")
    with pytest.raises(GlossaryError, match="cannot be read"):
        Glossary.load(corrupt)
    with pytest.raises(GlossaryError, match="cannot be read"):
        Glossary.load(tmp_path / "missing.tsv.gz")


def test_onnx_backend_reads_japanese_through_the_artifacts_glossary(tmp_path: Path, glossary_file: Path) -> None:
    # The tiny model knows the English cue "function" (Code Generation) and not a word of Japanese.
    plain = build_artifact(tmp_path / "plain")
    assert OnnxClassifier(plain).classify(["ソートを実装して"])[0].task == "Other"
    glossed = build_artifact(tmp_path / "glossed")
    entries = {"実装": ("function", 1.0), "ソート": ("sort", 1.6)}
    write(entries, glossed / GLOSSARY_FILE)
    classifier = OnnxClassifier(glossed)
    assert classifier.classify(["ソートを実装して"])[0].task == "Code Generation"
    assert classifier.info()["japanese_glossary"] is True  # /health and the console sidebar show it


def test_a_corrupt_glossary_fails_the_artifact_load(tmp_path: Path, glossary_file: Path) -> None:
    folder = build_artifact(tmp_path / "artifact")
    shutil.copy(glossary_file, folder / GLOSSARY_FILE)
    assert OnnxClassifier(folder).pre.glossary is not None
    (folder / GLOSSARY_FILE).write_bytes(b"\x1f\x8b broken")
    with pytest.raises(ArtifactError, match=GLOSSARY_FILE):
        OnnxClassifier(folder)


def test_the_build_command_writes_a_glossary_and_names_a_bad_database(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = jmdict_db(tmp_path / "jmdict.db")
    assert main(["--db", str(db), "--out", str(tmp_path / "g.tsv.gz")]) == 0
    assert Glossary.load(tmp_path / "g.tsv.gz").glosses["実装"] == "implementation"
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    assert main(["--db", str(tmp_path / "junk.db"), "--out", str(tmp_path / "x.tsv.gz")]) == 2
    assert "junk.db is not a readable JMdict database" in capsys.readouterr().err
    assert main(["--db", str(tmp_path / "absent.db"), "--out", str(tmp_path / "x.tsv.gz")]) == 2
    assert "absent.db is missing" in capsys.readouterr().err
