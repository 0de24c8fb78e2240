"""The difficulty head: its graph surgery against the build's own arithmetic, the backends that
serve it (ONNX Runtime, Triton over HTTP and gRPC), its fitting and metrics on hand-made data, the
outcome readers and the near-duplicate filter on small files written here."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from router.classifier.artifact import ArtifactError
from router.classifier.keyword import KeywordClassifier
from router.classifier.onnx import OnnxClassifier
from router.classifier.prediction import complexity_as_difficulty
from router.classifier.triton import TritonClassifier
from tests.kserve_peer import Model, grpc_peer, http_peer
from tests.tiny_artifact import DIFFICULTY_BIAS, DIFFICULTY_LENGTH_WEIGHT, build, difficulty_weight
from training import difficulty_graph
from training.difficulty import (
    Embedder,
    Head,
    Mixture,
    auc,
    calibration_error,
    fit_head,
    install,
    within_source_auc,
)
from training.outcomes import NearDuplicates, outcome_rows

TEXTS = ["prove the story", "hello", "prove prove prove the list", "Write a Python function please", ""]


@pytest.fixture(scope="module")
def hard_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("difficulty") / "prompt-classifier", difficulty=True)


def test_the_served_difficulty_is_the_heads_formula_on_the_pooled_embedding(hard_artifact: Path) -> None:
    c = OnnxClassifier(hard_artifact)
    assert c.info()["difficulty"] == "learned head"
    got = [p.difficulty for p in c.classify(TEXTS)]
    features = Embedder(hard_artifact)(TEXTS)  # pooled embedding, then log(1 + tokens)
    head = Head(np.append(difficulty_weight(), DIFFICULTY_LENGTH_WEIGHT), DIFFICULTY_BIAS)
    assert got == pytest.approx(list(head(features)), abs=1e-5)
    assert all(0.0 <= d <= 1.0 for d in got)
    assert got[0] > 0.5 > got[1]  # "prove" fills the slot the head reads


def test_a_model_without_the_head_uses_the_complexity_and_says_so(tmp_path: Path) -> None:
    plain = build(tmp_path / "plain")
    for p in OnnxClassifier(plain).classify(TEXTS):
        assert p.difficulty == complexity_as_difficulty(p.complexity)
    easy, hard = KeywordClassifier().classify(["PythonでFizzBuzzを書いて", "Prove step by step why the bound is "
                                               "optimal, analyze the trade-offs and derive the probability bound"])
    for p in (easy, hard):
        assert p.difficulty == complexity_as_difficulty(p.complexity) and 0.0 <= p.difficulty <= 1.0
        assert p.to_dict()["difficulty"] == round(p.difficulty, 6)
    assert easy.difficulty < hard.difficulty


def test_the_stand_in_maps_the_old_thresholds_onto_the_new_ones() -> None:
    assert [complexity_as_difficulty(c) for c in (0.0, 0.2, 0.4, 1.0)] == pytest.approx([0.2, 0.45, 0.55, 0.85])
    assert complexity_as_difficulty(0.1) == pytest.approx(0.325) and complexity_as_difficulty(0.7) == pytest.approx(0.7)
    assert complexity_as_difficulty(-1) == 0.2 and complexity_as_difficulty(2) == 0.85
    values = [complexity_as_difficulty(i / 100) for i in range(101)]
    assert values == sorted(values)


def test_labels_and_graph_must_agree_on_the_head(tmp_path: Path, hard_artifact: Path) -> None:
    plain = build(tmp_path / "plain")
    labels = json.loads((plain / "labels.json").read_text())
    (plain / "labels.json").write_text(json.dumps(labels | {"difficulty": True}))
    with pytest.raises(ArtifactError, match="difficulty=True but the model lacks"):
        OnnxClassifier(plain)


def test_installing_a_head_again_replaces_it(tmp_path: Path) -> None:
    folder = build(tmp_path / "rebuilt", difficulty=True)
    before = [p.difficulty for p in OnnxClassifier(folder).classify(TEXTS)]
    width = len(difficulty_weight())
    install(Head(np.zeros(width + 1, dtype=np.float32), 0.0), folder)  # a head that says 0.5 everywhere
    model = difficulty_graph.load(folder / "model.onnx")
    assert [o.name for o in model.graph.output].count("difficulty") == 1
    after = [p.difficulty for p in OnnxClassifier(folder).classify(TEXTS)]
    assert after == pytest.approx([0.5] * len(TEXTS), abs=1e-6) and after != before
    assert json.loads((folder / "labels.json").read_text())["difficulty"] is True


def test_triton_serves_the_same_difficulty_over_http_and_grpc(hard_artifact: Path) -> None:
    expected = [p.difficulty for p in OnnxClassifier(hard_artifact).classify(TEXTS)]
    model = Model(hard_artifact / "model.onnx", "prompt_classifier")
    http = http_peer(model)
    grpc_server, grpc_port = grpc_peer(model)
    try:
        for protocol, url in (("http", http.url), ("grpc", f"127.0.0.1:{grpc_port}")):
            got = TritonClassifier(url, hard_artifact, protocol=protocol).classify(TEXTS)
            assert [p.difficulty for p in got] == pytest.approx(expected, abs=1e-6)
    finally:
        http.stop()
        grpc_server.stop(0)


def test_source_intercepts_keep_the_weights_on_what_varies_within_a_source() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    group = rng.integers(0, 2, n)
    within = rng.normal(size=n)
    which_source = group + rng.normal(scale=0.1, size=n)  # a feature that only names the source
    target = 1 / (1 + np.exp(-(2 * within + 3 * group - 1.5)))
    x = np.stack([within, which_source], 1)
    weights = np.ones(n)
    pooled = fit_head(x, target, weights, 1e-4)
    separate = fit_head(x, target, weights, 1e-4, [f"s{g}" for g in group])
    assert pooled.weight[1] > 2.0  # without intercepts the source feature carries the offset
    assert abs(separate.weight[1]) < 0.5 < separate.weight[0]
    assert separate.weight[0] == pytest.approx(2.0, rel=0.15)


def test_auc_and_calibration_error_on_hand_cases() -> None:
    assert auc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([True, True, False, False])) == 1.0
    assert auc(np.array([0.1, 0.9]), np.array([True, False])) == 0.0
    assert auc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5
    assert math.isnan(auc(np.array([0.5]), np.array([True])))
    # two bins: predicted 0.1 vs observed 0.0 (half the rows), 0.9 vs 1.0 (half): error 0.1
    assert calibration_error(np.array([0.1, 0.1, 0.9, 0.9]), np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(0.1)
    p, y = np.array([0.9, 0.1, 0.2, 0.8]), np.array([1.0, 0.0, 1.0, 0.0])
    assert within_source_auc(p, y, ["a", "a", "b", "b"]) == pytest.approx(0.5)  # a: 1.0, b: 0.0


def test_near_duplicates_of_the_test_prompts_are_caught() -> None:
    test = ["Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins."]
    drop = NearDuplicates(test)
    assert "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning!" in drop
    assert "A train leaves the station at noon and travels at sixty miles per hour towards the city." not in drop
    assert "" not in drop


def _write_routing(root: Path) -> Path:
    bench = root / "routerbench-subset" / "routerbench_zs"
    bench.mkdir(parents=True)
    small = ["mistralai/mistral-7b-chat", "WizardLM/WizardLM-13B-V1.2", "meta/code-llama-instruct-34b-chat",
             "zero-one-ai/Yi-34B-Chat", "mistralai/mixtral-8x7b-chat", "meta/llama-2-70b-chat"]
    models = ["gpt-4-1106-preview", *small]
    header = ["sample_id", "prompt", "eval_name", *models, *(f"{m}|total_cost" for m in models)]
    rows = [["arc.1", "['Which gas do plants take in?']", "arc", "1", "1", "1", "0", "0", "0", "0", *["0.001"] * 7],
            ["arc.2", "['Which gas do plants take in?']", "arc", *[""] * 7, *["0.001"] * 7],  # the unscored copy
            ["arc.3", "['Janet’s ducks lay 16 eggs per day and she eats three for breakfast']", "arc",
             *["1"] * 7, *["0.001"] * 7]]
    for name in ("arc_challenge_train.csv", "mbpp_train.csv", "winograde_train.csv"):
        with (bench / name).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows if name.startswith("arc") else [])
    dc = root / "routerdc" / "split2_model7"
    dc.mkdir(parents=True)
    for name in ("arc_challenge_train.json", "arc_easy_train.json", "gsm8k-train.json", "humaneval_train.json",
                 "mbpp.json", "MATH_prealgebra.json", "mmlu_train.json"):
        items = [{"question": "What is 2 + 3 * 4?", "scores": {"a": 1.0, "b": 0.5, "c": 0.0, "d": 0.5}}]
        (dc / name).write_text(json.dumps(items if name == "gsm8k-train.json" else []))
    return root


def test_outcome_rows_read_both_formats_and_drop_test_duplicates(tmp_path: Path) -> None:
    root = _write_routing(tmp_path)
    drop = NearDuplicates(["Janet’s ducks lay 16 eggs per day and she eats three for breakfast every day"])
    rows, dropped = outcome_rows(root, drop=drop)
    by_text = {r.text: r for r in rows}
    assert by_text["Which gas do plants take in?"].failure == pytest.approx(4 / 6)  # 4 of 6 small models failed
    assert by_text["What is 2 + 3 * 4?"].failure == pytest.approx(0.5) and len(rows) == 2
    assert dropped == {"routerbench/arc": 1}


def test_reviews_become_small_tier_outcomes(tmp_path: Path) -> None:
    from training.outcomes import review_rows

    export = tmp_path / "reviewed_decisions.jsonl"
    rows = [{"prompt": "fix this typo", "verdict": "correct", "tier": "llama-3-8b", "correct_tier": "llama-3-8b"},
            {"prompt": "prove the lemma", "verdict": "misrouted", "tier": "llama-3-8b",
             "correct_tier": "nemotron-super-49b"},
            {"prompt": "a haiku", "verdict": "misrouted", "tier": "llama-3-70b", "correct_tier": "llama-3-8b"},
            {"prompt": "plan a trip", "verdict": "correct", "tier": "llama-3-70b", "correct_tier": "llama-3-70b"},
            {"prompt": None, "verdict": "correct", "tier": "llama-3-8b", "correct_tier": "llama-3-8b"}]
    export.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    got = {(r.text, r.failure, r.source) for r in review_rows(export, ["llama-3-8b"])}
    assert got == {("fix this typo", 0.0, "reviews"), ("prove the lemma", 1.0, "reviews"), ("a haiku", 0.0, "reviews")}
    export.write_text("{broken\n")
    with pytest.raises(ValueError, match=r"reviewed_decisions\.jsonl:1: not JSON"):
        review_rows(export, ["llama-3-8b"])


def test_the_artifacts_calibration_gives_each_quality_class_its_success(tmp_path: Path) -> None:
    from router.classifier.prediction import tier_success

    folder = build(tmp_path / "classes", difficulty=True)
    labels = json.loads((folder / "labels.json").read_text())
    calibration = {"small": {"intercept": 0.0, "slope": -1.0}, "large": {"intercept": 2.0, "slope": -0.5}}
    (folder / "labels.json").write_text(json.dumps(labels | {"tier_success": calibration}))
    for p in OnnxClassifier(folder).classify(TEXTS):
        logit = math.log(p.difficulty / (1 - p.difficulty))
        assert p.tier_success == pytest.approx({"small": 1 / (1 + math.exp(logit)),
                                                "large": 1 / (1 + math.exp(-(2.0 - 0.5 * logit)))})
    assert tier_success(0.5, {"small": (0.0, -1.0)}) == {"small": 0.5}
    (folder / "labels.json").write_text(json.dumps(labels | {"tier_success": {"huge": calibration["small"]}}))
    with pytest.raises(ArtifactError, match="tier_success classes must be among"):
        OnnxClassifier(folder)
    plain = build(tmp_path / "plain")
    labels = json.loads((plain / "labels.json").read_text())
    (plain / "labels.json").write_text(json.dumps(labels | {"tier_success": calibration}))
    with pytest.raises(ArtifactError, match="tier_success needs the difficulty output"):
        OnnxClassifier(plain)


def test_class_calibration_follows_each_stand_ins_outcomes() -> None:
    from training.difficulty import calibrate_classes
    from training.outcomes import STAND_INS, OutcomeRow

    rng = np.random.default_rng(1)
    difficulty = rng.uniform(0.05, 0.95, 4000)
    rows = [OutcomeRow("p", d, "routerbench/x", {STAND_INS["small"]: float(rng.random() > d),
                                                 STAND_INS["medium"]: float(rng.random() > d * 0.8),
                                                 STAND_INS["large"]: float(rng.random() > d * 0.3)})
            for d in difficulty]
    classes = calibrate_classes(difficulty, rows)
    assert classes["small"][1] < 0 and classes["large"][1] < 0  # harder prompts, less success
    easy, hard = np.log(0.2 / 0.8), np.log(0.8 / 0.2)

    def success(name: str, logit: float) -> float:
        return 1 / (1 + math.exp(-(classes[name][0] + classes[name][1] * logit)))

    assert success("small", hard) < success("medium", hard) < success("large", hard)
    assert success("small", easy) == pytest.approx(0.8, abs=0.05) and success("small", hard) == pytest.approx(
        0.2, abs=0.05)


def test_the_maintainers_judgments_parse_and_a_bad_line_is_named(tmp_path: Path) -> None:
    from training.outcomes import judged_rows

    shipped = judged_rows()
    assert len(shipped) >= 100 and {r.source for r in shipped} == {"team-judged"}
    # Both ends of the scale, in both languages: the judgments are there to teach the contrast.
    assert any(r.failure >= 0.8 for r in shipped) and any(r.failure <= 0.15 for r in shipped)
    assert any("設計" in r.text for r in shipped if r.failure >= 0.8)
    path = tmp_path / "judged.tsv"
    path.write_text("# comment\nfailure\tprompt\n0.9\tDesign a CDN.\n1.5\tToo sure.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"judged.tsv: line 4"):
        judged_rows(path)
    path.write_text("0.2\tWrite hello world.\n", encoding="utf-8")
    assert [(r.text, r.failure) for r in judged_rows(path)] == [("Write hello world.", 0.2)]


def test_a_code_head_is_mixed_in_by_the_code_probability(tmp_path: Path) -> None:
    folder = build(tmp_path / "mixed", difficulty=True)
    width = len(difficulty_weight()) + 1
    rng = np.random.default_rng(3)
    mixture = Mixture(Head(rng.normal(0, 0.5, width).astype(np.float32), -0.2),
                      Head(rng.normal(0, 0.5, width).astype(np.float32), 0.4))
    install(mixture, folder)
    predictions = OnnxClassifier(folder).classify(TEXTS)
    features, p_code = Embedder(folder).read(TEXTS)
    assert list(p_code) == pytest.approx([p.probabilities["Code Generation"] for p in predictions], abs=1e-6)
    expected = mixture(features, p_code)
    assert [p.difficulty for p in predictions] == pytest.approx(list(expected), abs=1e-5)
    # Neither head alone: the mix sits between them, weighted by each prompt's code probability.
    general, code = mixture.general(features), mixture.code(features)
    assert all(min(g, c) - 1e-6 <= d <= max(g, c) + 1e-6 for g, c, d in zip(general, code, expected, strict=True))
    install(mixture.general, folder)  # back to one head: the code head's nodes leave with the old one
    assert [p.difficulty for p in OnnxClassifier(folder).classify(TEXTS)] == pytest.approx(list(general), abs=1e-5)
    with pytest.raises(ValueError, match="code head needs its task column"):
        difficulty_graph.attach_difficulty(difficulty_graph.load(folder / "model.onnx"), np.zeros(width - 1), 0.0,
                                           code_index=4)


def test_the_difficulty_dev_set_is_never_trained_on(tmp_path: Path) -> None:
    from bench.difficulty_dev import read_dev
    from training.outcomes import judged_rows

    rows = read_dev()
    kinds = [kind for kind, _ in rows]
    assert kinds.count("hard") >= 15 and kinds.count("everyday") >= 10
    assert any("\u3040" <= ch <= "\u30ff" for _, prompt in rows for ch in prompt)  # Japanese too
    assert not {prompt for _, prompt in rows} & {r.text for r in judged_rows()}
    bad = tmp_path / "dev.tsv"
    bad.write_text("kind\tprompt\nhard\tok\nmedium\tnot a kind\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected 'hard' or 'everyday'"):
        read_dev(bad)


def test_judgments_read_as_code_train_the_code_head_and_not_the_general_one(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """build() with hand-made rows and features: the judgments the task head reads as code join the
    code head's rows (weighted), and leave the general head as if they were not there."""
    import training.difficulty as build_module
    from training.outcomes import JUDGED_SOURCE, STAND_INS, OutcomeRow

    rng = np.random.default_rng(0)
    rows = [OutcomeRow(f"mcq {i}", float(rng.uniform()), "routerbench/arc_challenge",
                       {m: float(rng.integers(0, 2)) for m in STAND_INS.values()}) for i in range(300)]
    rows += [OutcomeRow(f"code {i}", float(rng.uniform()), "routerbench/mbpp") for i in range(200)]
    judged = [OutcomeRow(f"judged code {i}", 0.9 if i % 2 else 0.1, JUDGED_SOURCE) for i in range(20)]
    judged += [OutcomeRow(f"judged prose {i}", 0.5, JUDGED_SOURCE) for i in range(10)]
    features = {r.text: rng.normal(size=4).astype(np.float32) for r in rows + judged}

    class Features:
        def __init__(self, _: Path) -> None: ...

        def read(self, texts: list[str], progress: object = None) -> tuple[np.ndarray, np.ndarray]:
            return (np.stack([features[t] for t in texts]),
                    np.array([0.9 if "code" in t else 0.05 for t in texts], dtype=np.float32))

    monkeypatch.setattr(build_module, "Embedder", Features)
    monkeypatch.setattr(build_module, "routellm_prompts", lambda _: [])
    monkeypatch.setattr(build_module, "outcome_rows", lambda *_, **__: (list(rows), {}))
    monkeypatch.setattr(build_module, "judged_rows", lambda _: list(judged))
    quiet = {"log": lambda _: None, "judged": tmp_path / "judged.tsv", "judged_weight": 1.0}

    head, report = build_module.build(tmp_path, tmp_path, **quiet)  # type: ignore[arg-type]
    assert isinstance(head, Mixture) and report.code is not None
    assert report.code["judged_rows"] == 20 and report.code["rows"] == 220 and report.code["judged_weight"] == 2.0
    # The general head: the same as a build that never saw the judgments read as code.
    monkeypatch.setattr(build_module, "judged_rows", lambda _: [r for r in judged if "prose" in r.text])
    without, _ = build_module.build(tmp_path, tmp_path, **quiet)  # type: ignore[arg-type]
    assert isinstance(without, Mixture)
    assert np.allclose(head.general.weight, without.general.weight) and head.general.bias == pytest.approx(
        without.general.bias)
    assert not np.allclose(head.code.weight, without.code.weight)  # the code head learned from them
    # --judged-code-weight 0: the code head from the benchmarks alone, the judgments in the general head.
    monkeypatch.setattr(build_module, "judged_rows", lambda _: list(judged))
    alone, report = build_module.build(tmp_path, tmp_path, judged_code_weight=0.0, **quiet)  # type: ignore[arg-type]
    assert isinstance(alone, Mixture) and report.code is not None and report.code["judged_rows"] == 0
    assert np.allclose(alone.code.weight, without.code.weight)
    assert not np.allclose(alone.general.weight, without.general.weight)


def test_a_negative_code_judgment_weight_is_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from training.difficulty import main

    with pytest.raises(SystemExit) as exited:
        main(["--routing", str(tmp_path), "--model", str(tmp_path), "--judged-code-weight", "-1"])
    assert exited.value.code == 2
    assert "--judged-code-weight must be 0 or more, got -1" in capsys.readouterr().err
