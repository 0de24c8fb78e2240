"""Train the classifier on a labeled set and write the artifact.

    python -m training.dataset --out labeled.jsonl
    python -m training.glossary_build --out glossary-ja.tsv.gz
    python -m training.train --data labeled.jsonl --encoder DIR --glossary glossary-ja.tsv.gz \
        [--out models/prompt-classifier]

The MiniLM encoder is fine-tuned together with a task head (softmax over the 11 labels) and
a dimensions head (sigmoid, six complexity dimensions). The dimensions are not labeled in
the data: their targets are the keyword classifier's cue-based estimates, distilled into
the model (the model card says so). A stratified held-out split that training never sees
is scored with the exported int8 model itself, so the card's figures are the shipped
artifact's.

Data: JSONL lines {"prompt", "task", optional "context", "source", "license", "selection"}.
Needs the train extra (pip install -e ".[train]").
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from router.classifier.artifact import GLOSSARY_FILE, ArtifactError, input_text, load_tokenizer
from router.classifier.glossary import Glossary, GlossaryError
from router.classifier.keyword import KeywordClassifier
from router.classifier.prediction import COMPLEXITY_WEIGHTS, TASK_LABELS
from router.classifier.text import join_turn_and_context
from training.dataset import DOLLY_QUESTIONS_DROPPED
from training.encoder import PromptClassifier, load_encoder
from training.evaluate import (
    Example,
    evaluate,
    format_report,
    format_seed_routing,
    format_targets,
    load_rows,
    seed_routing,
    split,
    target_checks,
)
from training.export import export
from training.model_card import MINILM, encoder_description, model_card, portable, statically_quantized
from training.provenance import mismatch, record
from training.recipe import DEFAULTS


def fine_tune(model, tokenizer, texts: list[str], tasks: torch.Tensor, dims: torch.Tensor,  # type: ignore[no-untyped-def]
              *, epochs: int, lr: float, batch: int, seed: int, class_weight_power: float = 0.5,
              device: str = "cpu", freeze_layers: int = 0) -> None:
    """Fine-tuning; the task loss is weighted so that rare labels count: each label's weight is
    (its share under a uniform spread / its share in the data) ** class_weight_power, 0 for
    unweighted, 1 for fully balanced. With freeze_layers N the embeddings and the lowest N layers
    keep their weights (no gradients flow below them: faster, and a large multilingual vocabulary
    keeps what it knows). The model is back on the CPU when it returns."""
    torch.manual_seed(seed)
    if freeze_layers:
        frozen = [model.word, model.position, model.token_type, model.emb_norm, *model.layers[:freeze_layers]]
        for module in frozen:
            for parameter in module.parameters():
                parameter.requires_grad_(False)
    model.to(device)
    tasks, dims = tasks.to(device), dims.to(device)
    rng = random.Random(seed)
    counts = torch.bincount(tasks, minlength=len(TASK_LABELS)).float()
    weights = torch.where(counts > 0,
                          (counts.sum() / (counts.clamp(min=1) * len(TASK_LABELS))) ** class_weight_power,
                          torch.zeros_like(counts)).to(device)
    encoded = tokenizer.encode_batch(texts)
    optimizer = torch.optim.AdamW([
        {"params": [p for n, p in model.named_parameters()
                    if p.requires_grad and not n.startswith(("task_head", "dims_head"))], "lr": lr},
        {"params": list(model.task_head.parameters()) + list(model.dims_head.parameters()), "lr": lr * 20},
    ], weight_decay=0.01)
    steps = epochs * ((len(texts) + batch - 1) // batch)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[lr, lr * 20], total_steps=steps,
                                                    pct_start=0.1)
    order = list(range(len(texts)))
    model.train()
    started, done_steps = time.monotonic(), 0
    for epoch in range(epochs):
        rng.shuffle(order)
        total = 0.0
        for start in range(0, len(order), batch):
            done_steps += 1
            if done_steps % 50 == 0:
                elapsed = time.monotonic() - started
                print(f"  step {done_steps}/{steps}, {elapsed / 60:.1f} min so far, about "
                      f"{elapsed / done_steps * (steps - done_steps) / 60:.1f} min left", flush=True)
            idx = order[start:start + batch]
            width = max(sum(encoded[i].attention_mask) for i in idx)
            ids = torch.tensor([encoded[i].ids[:width] for i in idx], device=device)
            mask = torch.tensor([encoded[i].attention_mask[:width] for i in idx], device=device)
            pooled = torch.nn.functional.dropout(model.embed(ids, mask), model.dropout, model.training)
            task_loss = torch.nn.functional.cross_entropy(model.task_head(pooled), tasks[idx], weight=weights,
                                                          label_smoothing=0.05)
            dims_loss = torch.nn.functional.mse_loss(torch.sigmoid(model.dims_head(pooled)), dims[idx])
            loss = task_loss + dims_loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(order):.4f}", flush=True)
    model.to("cpu")
    model.eval()


def fine_tuned(encoder: Path, train: list[Example], glossary: Glossary | None, *, max_length: int,
               dropout: float, epochs: int, lr: float, batch: int, seed: int, class_weight_power: float,
               device: str, freeze_layers: int = 0) -> PromptClassifier:
    """The encoder in `encoder` with both heads, fine-tuned on `train` as the model reads it
    (glossed, truncated to max_length); the dimension targets are the keyword classifier's.
    Returned on the CPU, in eval mode."""
    tokenizer = load_tokenizer(encoder, max_length)
    texts = [join_turn_and_context(e.prompt, e.context) for e in train]
    tasks = torch.tensor([TASK_LABELS.index(e.task) for e in train])
    keyword = KeywordClassifier().classify(texts)
    dims = torch.tensor([[p.dimensions[d] for d in COMPLEXITY_WEIGHTS] for p in keyword])
    # The heads' starting weights come from torch's generator too, which each process seeds at random.
    torch.manual_seed(seed)
    model = load_encoder(encoder, len(TASK_LABELS), len(COMPLEXITY_WEIGHTS), dropout)
    fine_tune(model, tokenizer, [input_text(t, glossary) for t in texts], tasks, dims, epochs=epochs, lr=lr,
              batch=batch, seed=seed, class_weight_power=class_weight_power, device=device,
              freeze_layers=freeze_layers)
    return model


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this torch build sees no CUDA device")
    return name


def build_commands(args: argparse.Namespace, parser: argparse.ArgumentParser,
                   rows: list[dict] | None = None) -> str:  # type: ignore[type-arg]
    """The commands that rebuild this artifact, indented as a Markdown code block."""
    options = [f"--data {args.data.name}", f"--encoder {portable(args.encoder)}"]
    if args.glossary:
        options.append(f"--glossary {args.glossary.name}")
    options.append(f"--out {portable(args.out)}")
    options += [f"--{name.replace('_', '-')} {value}" for name, value in vars(args).items()
                if name not in ("data", "encoder", "glossary", "out", "card_only")
                and not (name == "device" and args.card_only)  # a rescored card did not train here
                and value != parser.get_default(name)]
    sources = {r.get("source") for r in rows or ()}
    dataset = f"python -m training.dataset --out {args.data.name}"
    if "databricks-dolly-15k-ja" in sources:
        dataset += " --dolly ../shared/data/databricks-dolly-15k-ja/databricks-dolly-15k-ja.jsonl"
        if any(r.get("selection") == DOLLY_QUESTIONS_DROPPED for r in rows or ()):
            dataset += " --dolly-drop-questions"
    if "team-written" in sources:
        dataset += " --written"
    lines = [dataset]
    if encoder_description(args.encoder) != MINILM:
        data = "../shared/data"
        lines.append(f"python -m training.e5_convert --out {portable(args.encoder)} --check --keep-corpus "
                     f"{args.data.name} {data}/databricks-dolly-15k-ja/databricks-dolly-15k-ja.jsonl "
                     f"{data}/mt_bench/question.jsonl {data}/japanese_mt_bench/question.jsonl "
                     f"{data}/vicuna_bench/question.jsonl {data}/ja-vicuna-qa-benchmark/question.jsonl "
                     f"{data}/mbpp-test/mbpp.test.jsonl")
    if args.glossary:
        lines.append(f"python -m training.glossary_build --out {args.glossary.name}")
    lines.append("python -m training.train " + " ".join(options))
    if statically_quantized(args.out):
        lines.append(f"python -m training.quantize --model {portable(args.out)} --data {args.data.name}")
    return "\n".join("    " + line for line in lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--encoder", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("models/prompt-classifier"))
    parser.add_argument("--held-out", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=int(DEFAULTS["epochs"]))
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"],
                        help="peak encoder learning rate (the heads take 20x); 5e-5 and 2e-4 scored lower on the "
                        "same split")
    parser.add_argument("--batch", type=int, default=int(DEFAULTS["batch"]))
    parser.add_argument("--seed", type=int, default=int(DEFAULTS["seed"]), help="the held-out split's seed, and "
                        "training's unless --train-seed says otherwise")
    parser.add_argument("--train-seed", type=int, help="the seed of training alone (heads' starting weights, "
                        "shuffling), so that two builds of one recipe can be compared on the same held-out split")
    parser.add_argument("--max-length", type=int, default=int(DEFAULTS["max_length"]))
    parser.add_argument("--dropout", type=float, default=DEFAULTS["dropout"],
                        help="dropout in the encoder while fine-tuning (embeddings, attention, hidden states); "
                        "none at inference")
    parser.add_argument("--class-weight-power", type=float, default=DEFAULTS["class_weight_power"],
                        help="how far the task loss evens out label frequencies: 0 unweighted, 1 fully balanced")
    parser.add_argument("--device", default="auto", help="where to fine-tune: auto (CUDA when torch sees a GPU), "
                        "cpu, cuda, cuda:N; the export and the scoring run on the CPU either way")
    parser.add_argument("--card-only", action="store_true", help="score the artifact already in --out and "
                        "rewrite its model card, without training (same --data, --held-out and --seed as its build)")
    parser.add_argument("--freeze-layers", type=int, default=0, help="keep the embeddings and the lowest N "
                        "encoder layers as they are (faster; a multilingual encoder keeps its vocabulary)")
    parser.add_argument("--glossary", type=Path, help="Japanese glossary (training.glossary_build); "
                        "shipped in the artifact so serving reads Japanese the way training did")
    args = parser.parse_args()
    try:
        args.device = resolve_device(args.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        glossary = Glossary.load(args.glossary) if args.glossary else None
    except GlossaryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    try:
        pairs = load_rows(args.data)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = [row for row, _ in pairs]
    examples = [example for _, example in pairs]
    train, test = split(examples, args.held_out, args.seed)
    print(f"{len(examples)} examples: {len(train)} train, {len(test)} held out")

    if not args.card_only:
        train_and_export(args, train, test, glossary)
    elif reason := mismatch(args.out, train, test):
        print(f"error: {reason}", file=sys.stderr)
        return 2
    try:
        write_card(args, parser, rows, train, test, glossary)
    except ArtifactError as exc:  # --card-only on a folder that holds no (complete) artifact
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


def train_and_export(args: argparse.Namespace, train: list[Example], test: list[Example],
                     glossary: Glossary | None) -> None:
    model = fine_tuned(args.encoder, train, glossary, max_length=args.max_length, dropout=args.dropout,
                       epochs=args.epochs, lr=args.lr, batch=args.batch,
                       seed=args.seed if args.train_seed is None else args.train_seed,
                       class_weight_power=args.class_weight_power, device=args.device,
                       freeze_layers=args.freeze_layers)

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.pt"
        torch.save(model.state_dict(), weights)
        export(args.encoder, args.out, weights=weights, max_length=args.max_length)
    record(args.out, train, test)
    if args.glossary:
        shutil.copy(args.glossary, args.out / GLOSSARY_FILE)
    else:
        (args.out / GLOSSARY_FILE).unlink(missing_ok=True)


def write_card(args: argparse.Namespace, parser: argparse.ArgumentParser, rows: list[dict],  # type: ignore[type-arg]
               train: list[Example], test: list[Example], glossary: Glossary | None) -> None:
    """Score the artifact in args.out on the held-out split and write its model card."""
    from router.classifier.onnx import OnnxClassifier
    from router.config import DEFAULT_CONFIG, load_seed

    seed = load_seed(DEFAULT_CONFIG)
    policy = seed.policies[seed.default_policy]
    shipped = OnnxClassifier(args.out)
    report = evaluate(shipped, test, policy)
    report_text = format_report(report)
    keyword_text = format_report(evaluate(KeywordClassifier(), test, policy))
    seeds = seed_routing(shipped, policy)
    seed_text = format_seed_routing(seeds)
    targets_text = format_targets(target_checks(report, seeds))
    print(report_text)
    print(seed_text)
    command = build_commands(args, parser, rows)
    print(targets_text)
    model_card(args.out, rows, train, test, report_text, keyword_text, seed_text, targets_text, command, glossary,
               encoder_description(args.encoder))


if __name__ == "__main__":
    sys.exit(main())
