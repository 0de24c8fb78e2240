"""Build the Japanese glossary (router.classifier.glossary) from JMdict.

    pip install --no-deps -r requirements-train-data.txt   # jamdict-data: JMdict as SQLite
    python -m training.glossary_build --out glossary-ja.tsv.gz

Each dictionary form (kanji and kana writings) maps to the first English
gloss of its entry's first sense ("to " dropped, parentheses removed); a
verb also gets its second sense's first gloss, since requests often use a
verb's abstract sense (まとめる: "collect summarize"). Verbs and adjectives
also get the stems their inflected forms start with (実装し-, まとめ-,
書い-, 高く-), so a greedy reader finds "まとめて" without a morphological
analyser. Particles, auxiliaries and copulas map to an empty gloss: the
segmenter consumes them and emits nothing. Request nouns followed by
する-forms (説明して) read as English verbs (REQUEST_VERBS). Kept: every form JMdict marks
common, plus two rarer kinds that carry much of a technical prompt's
meaning: katakana words of three or more characters (loanwords: ソート,
デプロイ) and two- or three-kanji compounds written only with Jōyō kanji
(実装, 計算量), archaic and obscure senses excepted. The other 150k rare
forms are left out: they would double the glossary's memory.

JMdict is © the Electronic Dictionary Research and Development Group, CC BY-SA 3.0
(https://www.edrdg.org/edrdg/licence.html); the glossary is a derived file under the same
licence, which the model card states.
"""

from __future__ import annotations

import argparse
import gzip
import re
import sqlite3
import sys
from pathlib import Path

from training.dataset import DatasetError, package_file

MAX_FORM_CHARS = 10
MAX_GLOSS_CHARS = 40
COMMON_COST = 1.0
RARE_COST = 1.6
GRAMMAR_POS = ("particle", "copula", "auxiliary", "auxiliary verb", "auxiliary adjective", "conjunction")
# Inflected stems by dictionary ending: masu-stem and te/ta-form stem of godan verbs.
GODAN_STEMS = {"う": "いっ", "く": "きい", "ぐ": "ぎい", "す": "し", "つ": "ちっ", "ぬ": "にん", "ぶ": "びん",
               "む": "みん", "る": "りっ"}
ADJECTIVE_STEMS = "くかさ"
PARENS = re.compile(r"\s*\([^)]*\)")
# する-forms that JMdict lists as nouns ("して": doer) but are grammar in a request.
GRAMMAR_FORMS = ("して", "した", "します", "しました", "する", "され", "させ", "です", "でした", "ます",
                 "ました", "ください", "下さい", "なさい", "ある", "いる", "なる", "こと", "もの", "よう", "ため")
# Requests are mostly a する-noun plus して: JMdict glosses the noun ("explanation", and for some
# a sense no prompt means: 作成 "drawing up", 整形 "orthopedics"), so "説明して" would reach the
# encoder as a noun no English request reads like. Followed by し/して/する these nouns read as
# the English verb instead ("explain"), which is how the English prompts the model learns from ask.
REQUEST_VERBS = {
    "説明": "explain", "解説": "explain", "実装": "implement", "作成": "create", "生成": "generate",
    "要約": "summarize", "翻訳": "translate", "英訳": "translate into English", "和訳": "translate into Japanese",
    "分類": "classify", "判別": "classify", "識別": "identify", "抽出": "extract", "修正": "fix",
    "訂正": "correct", "添削": "correct", "校正": "proofread", "推敲": "polish", "変換": "convert",
    "比較": "compare", "分析": "analyze", "解析": "analyze", "評価": "evaluate", "提案": "suggest",
    "列挙": "list", "整理": "organize", "回答": "answer", "解答": "answer", "計算": "calculate",
    "記述": "describe", "描写": "describe", "改善": "improve", "短縮": "shorten", "簡略化": "simplify",
    "判定": "determine", "判断": "judge", "予測": "predict", "予想": "predict", "検索": "search",
    "紹介": "introduce", "解決": "solve", "証明": "prove", "設計": "design", "開発": "develop",
    "最適化": "optimize", "考察": "discuss", "議論": "discuss", "確認": "check", "検討": "consider",
    "作文": "write", "執筆": "write", "創作": "write", "定義": "define", "命名": "name", "採点": "grade",
    "診断": "diagnose", "推薦": "recommend", "選択": "choose", "整形": "format", "出力": "output",
    "表示": "display", "分割": "split", "統合": "merge", "削除": "delete", "追加": "add", "変更": "change",
    "更新": "update", "返信": "reply", "指摘": "point out", "デバッグ": "debug", "リファクタリング": "refactor",
    "レビュー": "review", "チェック": "check", "テスト": "test", "リスト": "list", "アドバイス": "advise",
}
REQUEST_ENDINGS = ("し", "して", "する")


def is_hiragana(text: str) -> bool:
    return all("\u3040" <= c <= "\u309f" for c in text)


def is_katakana(text: str) -> bool:
    return all("\u30a0" <= c <= "\u30ff" for c in text)


def is_kana(text: str) -> bool:
    return all("\u3040" <= c <= "\u30ff" for c in text)


def is_verb(kinds: list[str]) -> bool:
    return any(k.startswith(("Ichidan verb", "Godan verb")) or k in ("suru verb - included", "transitive verb")
               for k in kinds)


def clean_gloss(gloss: str) -> str:
    gloss = PARENS.sub("", gloss).strip()
    return gloss[3:] if gloss.startswith("to ") else gloss


def build(db_path: Path) -> dict[str, tuple[str, float]]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    senses: dict[int, list[int]] = {}
    for sid, idseq in db.execute("SELECT ID, idseq FROM Sense ORDER BY ID"):
        senses.setdefault(idseq, []).append(sid)
    glosses: dict[int, str] = {}
    for sid, text in db.execute("SELECT sid, text FROM SenseGloss WHERE lang = 'eng' ORDER BY rowid"):
        glosses.setdefault(sid, text)
    pos: dict[int, list[str]] = {}
    for sid, text in db.execute("SELECT sid, text FROM pos"):
        pos.setdefault(sid, []).append(text)
    common = {("k", kid) for (kid,) in db.execute("SELECT DISTINCT kid FROM KJP")}
    common |= {("r", kid) for (kid,) in db.execute("SELECT DISTINCT kid FROM KNP")}
    forms = [(text, idseq, (kind, kid) in common)
             for kind, table in (("k", "Kanji"), ("r", "Kana"))
             for kid, idseq, text in db.execute(f"SELECT ID, idseq, text FROM {table}")]
    joyo = {c for (c,) in db.execute("SELECT literal FROM character WHERE grade IN ('1','2','3','4','5','6','8')")}
    misc: dict[int, set[str]] = {}
    for sid, text in db.execute("SELECT sid, text FROM misc"):
        misc.setdefault(sid, set()).add(text)
    odd = {"archaism", "obsolete term", "obscure term", "rare term"}
    db.close()

    ranked: dict[str, tuple[tuple[int, int, int], str, float]] = {}

    def put(form: str, gloss: str, cost: float, rank: tuple[int, int, int]) -> None:
        if len(form) <= MAX_FORM_CHARS and (form not in ranked or rank < ranked[form][0]):
            ranked[form] = (rank, gloss, cost)

    for form, idseq, is_common in forms:
        sid = senses.get(idseq, [None])[0]
        if sid is None or sid not in glosses:
            continue
        if not is_common and not (len(form) >= 3 and is_katakana(form)) and not (
                2 <= len(form) <= 3 and all(c in joyo for c in form) and not odd.intersection(misc.get(sid, ()))):
            continue
        if is_hiragana(form) and len(form) < 2:
            continue
        kinds = pos.get(sid, [])
        grammar = bool(kinds) and all(k in GRAMMAR_POS for k in kinds)
        gloss = "" if grammar else clean_gloss(glosses[sid])
        if is_verb(kinds) and len(senses[idseq]) > 1 and senses[idseq][1] in glosses:
            # A verb's first sense is often its literal one (まとめる: "collect"); requests use the
            # abstract second as often ("summarize"), so a verb reads as both.
            second = clean_gloss(glosses[senses[idseq][1]])
            if second and second != gloss and len(gloss) + len(second) < MAX_GLOSS_CHARS:
                gloss = f"{gloss} {second}"
        if not grammar and (not gloss or len(gloss) > MAX_GLOSS_CHARS):
            continue
        cost = COMMON_COST if is_common else RARE_COST
        rank = (0 if is_common else 1, 1, idseq)
        put(form, gloss, cost, rank)
        # Stems: a verb's stem outranks a noun of the same spelling (出し: "take out", not "soup stock").
        if grammar or not ((not is_kana(form) and len(form) >= 2) or len(form) >= 4):
            continue
        stem_rank = (rank[0], 0, idseq)
        if any(k.startswith("Ichidan verb") for k in kinds) and form.endswith("る"):
            put(form[:-1], gloss, cost, stem_rank)
        elif any(k.startswith("Godan verb") for k in kinds) and form[-1] in GODAN_STEMS:
            for ending in GODAN_STEMS[form[-1]]:
                put(form[:-1] + ending, gloss, cost, stem_rank)
        elif any(k.startswith("adjective (keiyoushi)") for k in kinds) and form.endswith("い"):
            for ending in ADJECTIVE_STEMS:
                put(form[:-1] + ending, gloss, cost, stem_rank)
    entries = {form: (gloss, cost) for form, (_, gloss, cost) in ranked.items()}
    for form in GRAMMAR_FORMS:
        entries[form] = ("", COMMON_COST)
    for noun, verb in REQUEST_VERBS.items():
        for ending in REQUEST_ENDINGS:
            entries[noun + ending] = (verb, COMMON_COST)
    return entries


def write(entries: dict[str, tuple[str, float]], out: Path) -> None:
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as f:
        for form in sorted(entries):
            gloss, cost = entries[form]
            f.write(f"{form}\t{gloss}\t{cost:g}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--db", type=Path, help="a JMdict SQLite file in jamdict's layout "
                        "(default: the one the jamdict-data package installs)")
    args = parser.parse_args(argv)
    try:
        db_path = args.db or package_file("jamdict_data", "jamdict.db")
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not db_path.is_file():
        print(f"error: {db_path} is missing (jamdict-data unpacks it when installed)", file=sys.stderr)
        return 2
    try:
        entries = build(db_path)
    except sqlite3.Error as exc:
        print(f"error: {db_path} is not a readable JMdict database: {exc}", file=sys.stderr)
        return 2
    write(entries, args.out)
    print(f"wrote {len(entries)} forms to {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
