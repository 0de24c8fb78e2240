"""Build the difficulty head: the estimated chance that a small tier's answer falls short, learned
from public per-prompt outcomes (training/outcomes.py) on the shipped classifier's own pooled
embedding, and attached to its ONNX graph as the `difficulty` output.

    python -m training.difficulty --routing ../shared/data/routing --model models/prompt-classifier \
        --judged --judged-weight 1

The target of a prompt is the share of small models that fell short on it (a soft label), so the
logistic head is fitted by cross-entropy on that share and its output is calibrated in that sense.
Features are the pooled embedding (the same tensor the task head reads) standardized; the
standardization is folded into the head's weights. The L2 strength is picked on a held-out fifth
of the training rows (by prompt hash), never on RouteLLM's files, which are the test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from router.classifier.artifact import Preprocessor
from router.classifier.int8_kernels import unsigned_weights, use_exact
from training import difficulty_graph
from training.outcomes import (
    CODE_SOURCES,
    JUDGED,
    JUDGED_SOURCE,
    STAND_INS,
    NearDuplicates,
    OutcomeRow,
    judged_rows,
    outcome_rows,
    review_rows,
    routellm_prompts,
)

L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)
# The maintainers' judgments are few beside the benchmarks (about a hundred against thousands) but
# are the only rows on design, proofs and chat; each counts this many times its source weight.
JUDGED_WEIGHT = 5.0
HELD_OUT_SHARE = 0.2
CODE_TASK = "Code Generation"  # the task whose probability weighs the code head in
# The judgments the task head reads as code also train the code head, each counting this many times
# its source's share: the code benchmarks hold only short exercises, so without them a system design
# read as code ("Design a URL shortener…") sat with the exercises. Chosen by the held-out code
# benchmark rows' within-source AUC (0.654 without them; 0.654, 0.661, 0.673, 0.668 at 0.5, 1, 2, 4).
JUDGED_CODE_WEIGHT = 2.0


def held_out(text: str) -> bool:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 100 < HELD_OUT_SHARE * 100


class Embedder:
    """The artifact's own model, returning the pooled embedding beside its outputs."""

    def __init__(self, model_dir: Path) -> None:
        self.pre = Preprocessor(model_dir, allow_untrained=True)
        model = difficulty_graph.load(model_dir / "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 0  # every core: this is a build, not the server
        graph = difficulty_graph.with_pooled_output(model).SerializeToString()
        if use_exact("auto"):  # the features as serving computes them, not a saturated kernel's
            graph, _ = unsigned_weights(graph)
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def __call__(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """One row per text: the pooled embedding, then log(1 + unpadded token count)."""
        return self.read(texts, progress)[0]

    def read(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """The features (as __call__) and each text's Code Generation probability from the task head."""
        out, code = [], []
        code_index = self.pre.labels.tasks.index(CODE_TASK)
        # One prompt per run: an int8 model's dynamic activation scales span the batch, as in serving.
        for i, text in enumerate(texts):
            feeds = self.pre.encode([text])
            pooled, probs = self.session.run([difficulty_graph.POOLED_OUTPUT, "task_probs"], feeds)
            out.append(np.append(pooled[0], np.log1p(feeds["attention_mask"].sum())))
            code.append(probs[0, code_index])
            if progress is not None and (i + 1) % 500 == 0:
                progress(i + 1, len(texts))
        return np.asarray(out, dtype=np.float32), np.asarray(code, dtype=np.float32)


@dataclass(frozen=True)
class Head:
    """sigmoid(x @ weight + bias) on the raw features (standardization folded in): the pooled
    embedding, then log(1 + tokens), as the Embedder gives them."""

    weight: np.ndarray
    bias: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(1.0 / (1.0 + np.exp(-(x @ self.weight + self.bias))))


@dataclass(frozen=True)
class Mixture:
    """difficulty = (1 - p) * general + p * code, p being the task head's Code Generation
    probability: code prompts are judged by a head fitted on code outcomes alone, whose scale the
    other benchmarks (multiple choice, math) do not set."""

    general: Head
    code: Head

    def __call__(self, x: np.ndarray, p_code: np.ndarray) -> np.ndarray:
        return np.asarray(self.general(x) + p_code * (self.code(x) - self.general(x)))


def source_weights(sources: Sequence[str]) -> np.ndarray:
    """Each source counts as the square root of its size, so big sets do not drown small ones."""
    counts = Counter(sources)
    w = np.array([1.0 / np.sqrt(counts[s]) for s in sources])
    return w / w.mean()


def _loss(z: np.ndarray, y: np.ndarray, sw: np.ndarray, theta: np.ndarray, l2: float) -> float:
    logits = z @ theta
    # softplus(x) - y * x is the cross-entropy of sigmoid(x) against a soft target y
    ce = np.logaddexp(0.0, logits) - y * logits
    return float((ce * sw).mean() + l2 * (theta[:-1] ** 2).sum())


def fit_head(x: np.ndarray, target: np.ndarray, weights: np.ndarray, l2: float,
             groups: Sequence[str] | None = None, *, steps: int = 50) -> Head:
    """Soft-label logistic regression on standardized features, L2-penalized (not the bias),
    fitted by Newton's method with step halving (the loss is convex: it finds the one optimum).
    With `groups` (the source of each row) each source also gets an intercept while fitting,
    penalized like the weights: partial pooling, so the weights lean towards what makes a prompt
    harder than others of its benchmark, while differences between benchmarks the embedding
    explains stay in them. The head keeps the rows' mean source intercept."""
    names = sorted(set(groups)) if groups is not None else []
    onehot = np.array([[g == n for n in names] for g in groups], dtype=np.float64) if groups is not None else None
    full = np.asarray(x, dtype=np.float64) if onehot is None else np.concatenate([x, onehot], 1)
    mean, std = full.mean(0), full.std(0) + 1e-6
    z = np.concatenate([(full - mean) / std, np.ones((len(full), 1))], 1)  # the last column is the bias
    y = np.asarray(target, dtype=np.float64)
    sw = np.asarray(weights, dtype=np.float64)
    n, d = z.shape
    penalty = np.full(d, 2 * l2)
    penalty[-1] = 0.0
    theta = np.zeros(d)
    loss = _loss(z, y, sw, theta, l2)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ theta)))
        grad = z.T @ (sw * (p - y)) / n + penalty * theta
        hessian = (z * (sw * p * (1 - p))[:, None]).T @ z / n + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, grad)
        scale = 1.0
        while scale > 1e-4:
            candidate = theta - scale * step
            new_loss = _loss(z, y, sw, candidate, l2)
            if new_loss <= loss:
                break
            scale /= 2
        else:
            break
        theta, improved = candidate, loss - new_loss
        loss = new_loss
        if improved < 1e-12:
            break
    raw = theta[:-1] / std
    bias = float(theta[-1] - (raw * mean).sum())
    k = x.shape[1]
    if onehot is not None:  # the source columns leave the head: their weighted mean joins the bias
        share = (onehot * sw[:, None]).sum(0) / sw.sum()
        bias += float((raw[k:] * share).sum())
    return Head(raw[:k].astype(np.float32), bias)


def within_source_auc(p: np.ndarray, target: np.ndarray, sources: Sequence[str]) -> float:
    """Mean over sources of the AUC for 'most small models fail': how well the head ranks prompts
    of one benchmark, which is what routing a stream of similar prompts needs."""
    arr = np.asarray(sources)
    values = [auc(p[arr == s], target[arr == s] > 0.5) for s in sorted(set(sources))]
    values = [v for v in values if v == v]
    return float(np.mean(values)) if values else float("nan")


def cross_entropy(p: np.ndarray, target: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-(target * np.log(p) + (1 - target) * np.log(1 - p)).mean())


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive outranks a negative (ties count half)."""
    pos, neg = score[positive], score[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    _, inverse, counts = np.unique(np.concatenate([pos, neg]), return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # 1-based, tied values share their mean rank
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def calibration_error(p: np.ndarray, target: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: |mean predicted - mean observed| over equal-width bins."""
    edges = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(p[edges == k].mean() - target[edges == k].mean()) * (edges == k).mean()
                     for k in range(bins) if (edges == k).any()))


@dataclass(frozen=True)
class BuildReport:
    rows: int
    dropped: dict[str, int]
    per_source: dict[str, int]
    l2: float
    held_out: dict[str, float]
    tier_success: dict[str, tuple[float, float]]
    calibration_rows: int
    judged_weight: float = JUDGED_WEIGHT
    code: dict[str, float] | None = None  # the code head: its rows, L2, and held-out code-row figures


def calibrate_classes(difficulty: np.ndarray, rows: Sequence[OutcomeRow]) -> dict[str, tuple[float, float]]:
    """Per quality class, (intercept, slope) of its stand-in's success on logit(difficulty)."""
    d = np.clip(difficulty, 1e-6, 1 - 1e-6)
    logit = np.log(d / (1 - d))[:, None]
    out = {}
    for name, model in STAND_INS.items():
        target = np.array([r.scores[model] if r.scores else 0.0 for r in rows])
        head = fit_head(logit, target, np.ones(len(rows)), 1e-3)
        out[name] = (head.bias, float(head.weight[0]))
    return out


def _say(message: str) -> None:
    print(message, flush=True)


def choose_l2(x: np.ndarray, target: np.ndarray, weights: np.ndarray, sources: Sequence[str], test: np.ndarray,
              log: Callable[[str], None], what: str) -> tuple[float, Head]:
    """The L2 strength of L2_GRID with the lowest cross-entropy on the held-out rows, and the head
    fitted with it on the other rows."""
    arr = np.asarray(sources)
    scores: dict[float, tuple[float, Head]] = {}
    for l2 in L2_GRID:
        head = fit_head(x[~test], target[~test], weights[~test], l2, list(arr[~test]))
        p = head(x[test])
        scores[l2] = (cross_entropy(p, target[test]), head)
        log(f"  {what}, l2 {l2:g}: held-out cross-entropy {scores[l2][0]:.4f}, AUC {auc(p, target[test] > 0.5):.3f}, "
            f"within-source AUC {within_source_auc(p, target[test], list(arr[test])):.3f}")
    best = min(scores, key=lambda l2: scores[l2][0])
    return best, scores[best][1]


def build(routing: Path, model_dir: Path, *, reviews: Sequence[Path] = (), judged: Path | None = None,
          judged_weight: float = JUDGED_WEIGHT, small_tiers: Sequence[str] = ("llama-3-8b",), code_head: bool = True,
          judged_code_weight: float = JUDGED_CODE_WEIGHT, log: Callable[[str], None] = _say
          ) -> tuple[Head | Mixture, BuildReport]:
    drop = NearDuplicates(routellm_prompts(routing))
    rows, dropped = outcome_rows(routing, drop=drop)
    if judged is not None:
        rows += judged_rows(judged)
    for path in reviews:
        rows += review_rows(path, small_tiers)
    if not rows:
        raise ValueError(f"no outcome rows under {routing}")
    log(f"{len(rows)} training prompts; dropped as near-duplicates of RouteLLM's test prompts: {dropped}")
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        spent = time.perf_counter() - started
        log(f"  embedded {done}/{total} ({spent:.0f} s, about {spent / done * (total - done):.0f} s left)")

    x, p_code = Embedder(model_dir).read([r.text for r in rows], progress)
    target = np.array([r.failure for r in rows])
    sources = [r.source for r in rows]
    test = np.array([held_out(r.text) for r in rows])
    by_source = np.asarray(sources)
    benchmark_code = np.isin(by_source, CODE_SOURCES)
    with_code_head = code_head and bool(benchmark_code[~test].any() and benchmark_code[test].any())
    judged_code = ((by_source == JUDGED_SOURCE) & (p_code > 0.5) if with_code_head and judged_code_weight > 0
                   else np.zeros(len(rows), dtype=bool))
    code = benchmark_code | judged_code
    # Judgments read as code train the code head only: the general head's output barely counts for
    # them (weighed by 1 - p), and in it they lifted every "write ..." request, poems included.
    kept = ~judged_code
    kept_sources = list(by_source[kept])
    weights = source_weights(kept_sources) * np.where(by_source[kept] == JUDGED_SOURCE, judged_weight, 1.0)
    l2, general = choose_l2(x[kept], target[kept], weights, kept_sources, test[kept], log, "general head")
    test_sources = [s for s, t in zip(sources, test, strict=True) if t]

    def code_weights(mask: np.ndarray) -> np.ndarray:
        return source_weights(list(by_source[mask])) * np.where(judged_code[mask], judged_code_weight, 1.0)

    mixture: Mixture | None = None
    code_report = None
    if with_code_head:
        code_l2, _ = choose_l2(x[code], target[code], code_weights(code), list(by_source[code]), test[code], log,
                               "code head")
        # Refitted with the train part's own source weights (the choice above weighs by all code rows).
        held = code & ~test
        mixture = Mixture(general, fit_head(x[held], target[held], code_weights(held), code_l2,
                                            list(by_source[held])))
        code_test = benchmark_code & test  # scored on the benchmarks' outcomes alone, as before
        code_report = {"rows": int(code.sum()), "judged_rows": int(judged_code.sum()),
                       "judged_weight": judged_code_weight, "l2": code_l2,
                       "within_source_auc": within_source_auc(mixture(x[code_test], p_code[code_test]),
                                                              target[code_test], list(by_source[code_test])),
                       "general_within_source_auc": within_source_auc(general(x[code_test]), target[code_test],
                                                                      list(by_source[code_test]))}

    def predict(rows_x: np.ndarray, rows_p: np.ndarray) -> np.ndarray:
        return mixture(rows_x, rows_p) if mixture is not None else general(rows_x)

    p = predict(x[test], p_code[test])
    report = {"within_source_auc": within_source_auc(p, target[test], test_sources),
              "auc_majority_fail": auc(p, target[test] > 0.5),
              "cross_entropy": cross_entropy(p, target[test]),
              "constant_cross_entropy": cross_entropy(np.full_like(target[test], target[~test].mean()), target[test]),
              "calibration_error": calibration_error(p, target[test]), "prompts": int(test.sum())}
    # Per-class success, calibrated out of sample: the held-out fifth's RouterBench rows, scored by
    # the head that did not see them.
    scored = [i for i, r in enumerate(rows) if test[i] and r.scores]
    classes = calibrate_classes(predict(x[scored], p_code[scored]), [rows[i] for i in scored])
    final: Head | Mixture = fit_head(x[kept], target[kept], weights, l2, kept_sources)
    if code_report is not None:
        final = Mixture(final, fit_head(x[code], target[code], code_weights(code), code_report["l2"],
                                        list(by_source[code])))
    return final, BuildReport(len(rows), dropped, dict(Counter(sources)), l2, report, classes, len(scored),
                              judged_weight, code_report)


def install(head: Head | Mixture, model_dir: Path, tier_success: dict[str, tuple[float, float]] | None = None
            ) -> None:
    """Write the head (or both heads of a mixture) into model.onnx (replacing one already there),
    flag it in labels.json and store the per-class success calibration there."""
    path = model_dir / "model.onnx"
    model = difficulty_graph.load(path)
    model = difficulty_graph.without_difficulty(model)
    labels_path = model_dir / "labels.json"
    labels = json.loads(labels_path.read_text(encoding="utf-8"))
    general = head.general if isinstance(head, Mixture) else head
    extra: dict[str, Any] = {}
    if isinstance(head, Mixture):
        extra = {"code": (head.code.weight[:-1], head.code.bias, float(head.code.weight[-1])),
                 "code_index": list(labels["tasks"]).index(CODE_TASK)}
    attached = difficulty_graph.attach_difficulty(model, general.weight[:-1], general.bias, float(general.weight[-1]),
                                                  **extra)
    difficulty_graph.save(attached, path)
    labels["difficulty"] = True
    if tier_success is not None:
        labels["tier_success"] = {name: {"intercept": round(a, 6), "slope": round(b, 6), "stand_in": STAND_INS[name]}
                                  for name, (a, b) in tier_success.items()}
    labels_path.write_text(json.dumps(labels, indent=2) + "\n", encoding="utf-8")


def card_section(report: BuildReport) -> str:
    sources = ", ".join(f"{name} {n}" for name, n in sorted(report.per_source.items()))
    dropped = ", ".join(f"{name} {n}" for name, n in sorted(report.dropped.items())) or "none"
    h = report.held_out
    judged = report.per_source.get(JUDGED_SOURCE, 0)
    own_labels = ("with only the maintainers' judgments as labels of their own" if judged
                  else "with no outcome labels of their own")
    return (
        "## Difficulty head\n\n"
        "Output `difficulty` in [0, 1]: the estimated chance that a small tier's answer falls short. A logistic "
        "head on the pooled embedding the task head reads (no second encoder pass), fitted by cross-entropy to the "
        "share of small models that failed each prompt in public outcome data (`python -m training.difficulty`):\n\n"
        "- RouterBench 0-shot train files (RouterDC's split of github.com/shuhao02/RouterDC, commit 0e63989; "
        "no license declared, used inside the project only): small models = its six open-weight models, "
        "Mistral-7B to Llama-2-70B;\n"
        "- RouterDC's split2_model7 files (same commit; seven 7-8B open models; scores are pass rates, 0/1 or "
        "the gold option's probability): ARC-Challenge and ARC-Easy train, GSM8K train, HumanEval train, MBPP, "
        "MATH prealgebra, MMLU train. CMMLU and C-Eval are left out (non-commercial licenses).\n"
        f"- Rows used, per source: {sources} ({report.rows} in all; reviews from the console's export: "
        f"{report.per_source.get('reviews', 0)}; the maintainers' own judgments, "
        f"`training/labels/difficulty_written.tsv`: {judged}"
        + (f", each weighted {report.judged_weight:g} times its source's share" if judged else "")
        + "). Dropped as near-duplicates of RouteLLM's "
        f"test prompts (word 8-gram containment >= 0.5): {dropped}.\n"
        "- Features: the pooled embedding and log(1 + token count). Each source has an intercept of its own "
        "while fitting, penalized like the weights (partial pooling; the head keeps their mean), so the weights "
        "lean towards what makes a prompt harder than others of its kind. Sources weighted by 1/sqrt(size); L2 "
        f"chosen by cross-entropy on a held-out fifth of these rows (by prompt hash): {report.l2:g}.\n\n"
        + (code_note(report.code) if report.code else "")
        + f"Held-out fifth ({h['prompts']} prompts): AUC for 'most small models fail' {h['auc_majority_fail']:.3f} "
        f"(within a source, mean {h['within_source_auc']:.3f}), cross-entropy {h['cross_entropy']:.4f} (a "
        f"constant: {h['constant_cross_entropy']:.4f}), calibration error {h['calibration_error']:.3f}. "
        "What it is worth for routing is measured on RouteLLM's data, which it never saw: "
        "`python -m bench.routing_quality --data ../shared/data/routing` (README, Benchmarks).\n\n"
        "Per-class success (`tier_success` in labels.json; what tolerance rules compare tiers by): "
        "sigmoid(intercept + slope * logit(difficulty)) fitted to each stand-in's 0/1 outcomes on the "
        f"{report.calibration_rows} RouterBench prompts of the held-out fifth, scored by the head fitted "
        "without them: " + "; ".join(f"{name} ({STAND_INS[name]}) {a:+.3f} {b:+.3f}"
                                     for name, (a, b) in report.tier_success.items()) + ".\n\n"
        "Limits: the outcome data are English benchmark prompts (multiple choice, grade-school math, short "
        "Python tasks) answered by 2023-2024 models; chat, writing and Japanese prompts are read through the "
        f"multilingual encoder, {own_labels}.\n"
    )


def code_note(code: dict[str, float]) -> str:
    judged = (f" and the {code['judged_rows']:.0f} judgments the task head reads as code, each weighted "
              f"{code['judged_weight']:g} times its source's share (the benchmarks hold only short exercises; "
              "without the judgments a system design read as code sat with them)" if code.get("judged_rows") else "")
    return ("- Code: a second head of the same form, fitted on the code benchmarks (" + ", ".join(CODE_SOURCES)
            + f"){judged}; {code['rows']:.0f} rows, L2 {code['l2']:g}; the output is (1 - p) * general + p * code, p "
            "being the task head's Code Generation probability: the general head puts code on the scale of "
            "multiple-choice and math questions, where one short exercise lands above another by chance. On the "
            f"held-out fifth's code benchmark rows, within-source AUC {code['within_source_auc']:.3f} (the general "
            f"head alone: {code['general_within_source_auc']:.3f}).\n\n")


def write_card(model_dir: Path, section: str) -> None:
    path = model_dir / "MODEL_CARD.md"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start = text.find("## Difficulty head")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + (text[end + 1:] if end >= 0 else "")
    path.write_text(text.rstrip("\n") + "\n\n" + section, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routing", type=Path, required=True, help="the routing data folder (../shared/data/routing)")
    parser.add_argument("--model", type=Path, required=True, help="the classifier artifact to add the head to")
    parser.add_argument("--reviews", type=Path, action="append", default=[], help="the console's exported reviews "
                        "(reviewed_decisions.jsonl; repeatable): outcomes operators stated on the small tiers")
    parser.add_argument("--judged", nargs="?", type=Path, const=JUDGED, default=None, help="also the maintainers' "
                        "difficulty judgments (default file: training/labels/difficulty_written.tsv)")
    parser.add_argument("--judged-weight", type=float, default=JUDGED_WEIGHT, help="how many times its source's "
                        f"share each judgment counts (default {JUDGED_WEIGHT:g})")
    parser.add_argument("--judged-code-weight", type=float, default=JUDGED_CODE_WEIGHT, help="how many times its "
                        "source's share each judgment read as code counts in the code head (0: the code head learns "
                        f"from the code benchmarks alone; default {JUDGED_CODE_WEIGHT:g})")
    parser.add_argument("--small-tiers", nargs="+", default=["llama-3-8b"], help="the tiers the reviews' "
                        "small-tier outcomes are about (default: llama-3-8b)")
    parser.add_argument("--no-code-head", action="store_true", help="one head for every prompt (by default code "
                        "prompts are judged by a second head fitted on the code benchmarks alone)")
    args = parser.parse_args(argv)
    if args.judged_code_weight < 0:
        parser.error(f"--judged-code-weight must be 0 or more, got {args.judged_code_weight:g}")
    try:
        head, report = build(args.routing, args.model, reviews=args.reviews, judged=args.judged,
                             judged_weight=args.judged_weight, small_tiers=args.small_tiers,
                             code_head=not args.no_code_head, judged_code_weight=args.judged_code_weight)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    install(head, args.model, report.tier_success)
    write_card(args.model, card_section(report))
    print(f"wrote the difficulty head into {args.model / 'model.onnx'}; held-out: {report.held_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
