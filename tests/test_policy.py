"""Policy schema, validation messages that name the field, and pure rule evaluation."""

from __future__ import annotations

import copy

import pytest

from router.classifier.prediction import TASK_LABELS, Prediction
from router.config import DEFAULT_CONFIG, load_seed
from router.policy import CONFIDENCE_FLOOR, DEFAULT, PolicyError, decide, diff_policies, parse_policy, parse_policy_yaml

SEED = load_seed(DEFAULT_CONFIG)
POLICY = SEED.policies["task-complexity"]
DOC = POLICY.to_document()


def prediction(task: str, complexity: float = 0.1, confidence: float = 0.9) -> Prediction:
    rest = (1 - confidence) / (len(TASK_LABELS) - 1)
    probs = {label: (confidence if label == task else rest) for label in TASK_LABELS}
    return Prediction(task, probs, complexity, {}, "test")


def test_seed_reproduces_the_blueprint_tiers() -> None:
    assert SEED.default_policy == "task-complexity"
    assert set(POLICY.tiers) == {"nemotron-super-49b", "llama-3-70b", "llama-3-8b"}
    assert POLICY.tiers["nemotron-super-49b"].model == "nvidia/llama-3.3-nemotron-super-49b-v1"
    assert all(t.price_in > 0 and t.price_out > 0 for t in POLICY.tiers.values())
    assert POLICY.baseline == "llama-3-70b"


def scored(task: str, difficulty: float, confidence: float = 0.9) -> Prediction:
    base = prediction(task, complexity=0.0, confidence=confidence)
    return Prediction(task, base.probabilities, 0.0, {}, "test", difficulty=difficulty)


@pytest.mark.parametrize(("task", "difficulty", "tier", "rule"), [
    ("Code Generation", 0.3, "llama-3-8b", "easy-code"),
    ("Code Generation", 0.34, "llama-3-8b", "easy-code"),
    ("Code Generation", 0.35, "nemotron-super-49b", "code-reasoning"),
    ("Open QA", 0.4, "llama-3-70b", "qa-creative"),
    ("Open QA", 0.55, "nemotron-super-49b", "hard-questions"),
    ("Text Generation", 0.2, "llama-3-70b", "qa-creative"),
    ("Rewrite", 0.1, "llama-3-8b", "light-edits"),
    ("Summarization", 0.9, "llama-3-8b", "light-edits"),  # light edits stay small however long the text
    ("Other", 0.1, "llama-3-70b", DEFAULT),
    ("Other", 0.6, "nemotron-super-49b", "hard-questions"),
    ("Closed QA", 0.7, "llama-3-70b", "qa-creative"),  # a passage's length is not a hard question
])
def test_first_matching_rule_wins(task: str, difficulty: float, tier: str, rule: str) -> None:
    decision = decide(scored(task, difficulty), POLICY)
    assert (decision.tier, decision.rule) == (tier, rule)


def test_confidence_floor_keeps_the_previous_tier_or_uses_the_default() -> None:
    unsure = prediction("Code Generation", 0.1, confidence=0.2)
    assert decide(unsure, POLICY, previous_tier="nemotron-super-49b").tier == "nemotron-super-49b"
    d = decide(unsure, POLICY)
    assert (d.tier, d.rule) == ("llama-3-70b", CONFIDENCE_FLOOR)
    assert decide(unsure, POLICY, previous_tier="retired-tier").tier == "llama-3-70b"
    assert decide(prediction("Code Generation", 0.1, confidence=0.35), POLICY).rule == "easy-code"


def test_decide_is_pure() -> None:
    p = prediction("Rewrite")
    assert decide(p, POLICY) == decide(p, POLICY)
    assert POLICY.to_document() == DOC


def test_tier_chain_and_lookup() -> None:
    assert POLICY.tier_chain("llama-3-8b") == ["llama-3-8b", "llama-3-70b", "nemotron-super-49b"]
    assert POLICY.tier_chain("llama-3-70b") == ["llama-3-70b", "nemotron-super-49b", "llama-3-8b"]
    assert POLICY.find_tier("meta/llama3-8b-instruct") == "llama-3-8b"
    assert POLICY.find_tier("llama-3-8b") == "llama-3-8b"
    assert POLICY.find_tier("gpt-4") is None


def broken(path: list, value: object) -> dict:
    doc = copy.deepcopy(DOC)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(("doc", "field", "message"), [
    (broken(["rules", 1, "tier"], "llama-9"), "rules.1.tier", "unknown tier 'llama-9'"),
    (broken(["default_tier"], "nope"), "default_tier", "unknown tier 'nope'"),
    (broken(["default_tier"], KeyError), "default_tier", "field required"),
    (broken(["rules", 0, "complexity"], {"min": 0.8, "max": 0.2}), "rules.0.complexity",
     "min (0.8) is greater than max (0.2)"),
    (broken(["rules", 0, "complexity"], {"min": 1.5}), "rules.0.complexity.min", "less than or equal to 1"),
    (broken(["rules", 3, "tasks"], ["Open QA", "Poetry"]), "rules.3", "unknown task label(s) ['Poetry']"),
    (broken(["rules", 0], {"name": "empty", "tier": "llama-3-8b"}), "rules.0",
     "needs tasks, a difficulty or complexity range"),
    (broken(["tiers", "llama-3-8b", "price_in"], -1), "tiers.llama-3-8b.price_in", "greater than or equal to 0"),
    (broken(["tiers", "llama-3-8b", "base_url"], "ftp://x"), "tiers.llama-3-8b", "http:// or https://"),
    (broken(["tiers", "llama-3-8b", "colour"], "red"), "tiers.llama-3-8b.colour", "unknown field"),
    (broken(["confidence_floor"], 2), "confidence_floor", "less than or equal to 1"),
    (broken(["fallback_order"], ["llama-3-8b", "llama-3-8b"]), "fallback_order", "listed twice"),
    (broken(["fallback_order"], ["gpt"]), "fallback_order.0", "unknown tier 'gpt'"),
    (broken(["name"], "has spaces"), "name", "String should match pattern"),
    (broken(["tiers"], {}), "tiers", "at least one tier"),
])
def test_validation_names_the_bad_field(doc: dict, field: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(doc)
    assert info.value.field == field
    assert message in str(info.value)
    assert str(info.value).startswith(field)


def test_yaml_errors_say_where() -> None:
    with pytest.raises(PolicyError, match=r"invalid YAML at line 2"):
        parse_policy_yaml("name: x\ntiers: {a: [1}\nrules: []\n")
    with pytest.raises(PolicyError, match="a policy must be a mapping"):
        parse_policy_yaml("- just\n- a list\n")
    assert parse_policy_yaml(POLICY.to_yaml()) == POLICY


def test_diff_shows_changed_lines_only() -> None:
    changed = parse_policy(broken(["default_tier"], "llama-3-8b"))
    diff = diff_policies(POLICY, changed, old_label="v1", new_label="v2")
    assert "-default_tier: llama-3-70b" in diff and "+default_tier: llama-3-8b" in diff
    assert diff_policies(POLICY, POLICY) == ""


def test_seed_file_errors_name_file_and_field(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULT_CONFIG.read_text().replace("default_tier: llama-3-70b", "default_tier: llama-2", 1))
    with pytest.raises(PolicyError, match=r"bad.yaml: policies\[0\]\.default_tier: unknown tier 'llama-2'"):
        load_seed(bad)
    with pytest.raises(PolicyError, match="config file not found"):
        load_seed(tmp_path / "missing.yaml")


def test_a_difficulty_rule_validates_routes_and_names_a_bad_range() -> None:
    doc = copy.deepcopy(DOC)
    doc["rules"] = [{"name": "hard", "difficulty": {"min": 0.6}, "tier": "nemotron-super-49b"},
                    {"name": "code", "tasks": ["Code Generation"], "difficulty": {"max": 0.3}, "tier": "llama-3-8b"}]
    policy = parse_policy(doc)
    hard = Prediction("Open QA", prediction("Open QA").probabilities, 0.0, {}, "test", difficulty=0.7)
    easy_code = Prediction("Code Generation", prediction("Code Generation").probabilities, 0.9, {}, "test",
                           difficulty=0.2)
    assert decide(hard, policy).rule == "hard"
    assert decide(easy_code, policy).rule == "code"  # the rule reads difficulty, not the 0.9 complexity
    assert decide(Prediction("Code Generation", easy_code.probabilities, 0.0, {}, "test", difficulty=0.31),
                  policy).rule == DEFAULT
    doc["rules"][0]["difficulty"] = {"min": 0.8, "max": 0.2}
    with pytest.raises(PolicyError, match=r"rules\.0\.difficulty") as err:
        parse_policy(doc)
    assert "greater than max" in str(err.value)


def test_a_prediction_without_a_head_reads_its_complexity_as_difficulty() -> None:
    assert prediction("Open QA", complexity=0.4).difficulty == pytest.approx(0.55)
    assert Prediction("Open QA", {}, 0.1, {}, "x", difficulty=1.7).difficulty == 1.0  # clipped into [0, 1]


def test_the_choice_says_why_in_words() -> None:
    assert decide(scored("Code Generation", 0.31), POLICY).reason == "task Code Generation, difficulty 0.31 ≤ 0.34"
    assert decide(scored("Open QA", 0.6), POLICY).reason == "task Open QA, difficulty 0.60 ≥ 0.55"
    assert decide(scored("Other", 0.2), POLICY).reason == "no rule matched (task Other, difficulty 0.20)"
    assert decide(scored("Open QA", 0.2, confidence=0.2), POLICY).reason == (
        "Open QA at 0.20, below the floor 0.35; default tier")


def with_success(small: float, medium: float, large: float, task: str = "Open QA") -> Prediction:
    base = prediction(task)
    return Prediction(task, base.probabilities, 0.0, {}, "test", difficulty=0.5,
                      tier_success={"small": small, "medium": medium, "large": large})


def test_a_tolerance_rule_picks_the_cheapest_tier_within_reach_of_the_best() -> None:
    policy = SEED.policies["quality-tolerance"]
    assert policy.classed_tiers == {"nemotron-super-49b": "large", "llama-3-70b": "medium", "llama-3-8b": "small"}
    assert decide(with_success(0.90, 0.91, 0.93), policy).tier == "llama-3-8b"  # 0.90 >= 0.93 - 0.05
    assert decide(with_success(0.80, 0.91, 0.93), policy).tier == "nemotron-super-49b"  # cheaper than 70B
    choice = decide(with_success(0.80, 0.95, 0.93), policy)
    assert choice.tier == "nemotron-super-49b"  # 0.93 is within 0.05 of 70B's 0.95 and 49B costs less
    assert choice.reason == ("estimated success llama-3-8b 0.80, nemotron-super-49b 0.93, llama-3-70b 0.95; "
                             "cheapest within 0.05 of the best")
    # Without a calibration (keyword backend) the rule cannot compare tiers: it does not match.
    assert decide(prediction("Open QA"), policy).rule == DEFAULT


EITHER = "rules.0: a rule needs either a tier or a tolerance (not both)"


@pytest.mark.parametrize(("rule", "message"), [
    ({"name": "r", "tasks": ["Chatbot"]}, EITHER),
    ({"name": "r", "tier": "llama-3-8b", "tolerance": 0.1}, EITHER),
    ({"name": "r", "tolerance": 1.5}, "rules.0.tolerance: Input should be less than or equal to 1"),
])
def test_tolerance_rules_are_validated_by_field(rule: dict[str, object], message: str) -> None:
    doc = copy.deepcopy(SEED.policies["quality-tolerance"].to_document())
    doc["rules"] = [rule]
    with pytest.raises(PolicyError) as err:
        parse_policy(doc)
    assert str(err.value) == message


def test_a_tolerance_rule_needs_two_tiers_with_a_quality_class() -> None:
    doc = copy.deepcopy(SEED.policies["quality-tolerance"].to_document())
    for name in ("llama-3-70b", "llama-3-8b"):
        del doc["tiers"][name]["quality_class"]
    with pytest.raises(PolicyError, match=r"rules\.0\.tolerance: needs at least two tiers with a quality_class"):
        parse_policy(doc)
    doc["tiers"]["llama-3-8b"]["quality_class"] = "tiny"
    with pytest.raises(PolicyError, match=r"tiers\.llama-3-8b\.quality_class"):
        parse_policy(doc)


def spread(top: dict[str, float], difficulty: float = 0.2) -> Prediction:
    """A prediction with the given probabilities and the rest spread evenly over the other tasks."""
    rest = (1 - sum(top.values())) / (len(TASK_LABELS) - len(top))
    probs = {t: top.get(t, rest) for t in TASK_LABELS}
    return Prediction(max(probs, key=probs.__getitem__), probs, 0.0, {}, "test", difficulty=difficulty)


def test_below_the_floor_two_likeliest_tasks_with_one_tier_still_route() -> None:
    shorter = spread({"Summarization": 0.34, "Rewrite": 0.29})  # both light edits
    d = decide(shorter, POLICY, previous_tier="llama-3-70b")
    assert (d.tier, d.rule) == ("llama-3-8b", "light-edits")
    assert "Summarization at 0.34, below the floor 0.35, but Rewrite at 0.29 goes to the same tier" in d.reason
    # Two likeliest tasks bound for different tiers: the floor holds.
    torn = spread({"Summarization": 0.34, "Open QA": 0.29})
    assert decide(torn, POLICY, previous_tier="nemotron-super-49b").rule == CONFIDENCE_FLOOR
    # Together under the floor: it holds too, and a flat reading never passes.
    assert decide(spread({"Summarization": 0.2, "Rewrite": 0.1}), POLICY).rule == CONFIDENCE_FLOOR
    flat = Prediction("Rewrite", {t: 1 / len(TASK_LABELS) for t in TASK_LABELS}, 0.0, {}, "test")
    assert decide(flat, POLICY).rule == CONFIDENCE_FLOOR
