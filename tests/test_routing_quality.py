"""bench/routing_quality.py's arithmetic against small cases computed by hand."""

from __future__ import annotations

import pytest

from bench.routing_quality import Item, apgr, cpt, pgr, quality_curve

# Four prompts: the strong model is right on 0, 1, 2; the weak one on 2 and 3.
ITEMS = [Item("a", 1, 0), Item("b", 1, 0), Item("c", 1, 1), Item("d", 0, 1)]


def test_the_quality_curve_sends_the_highest_scored_prompts_to_the_strong_model() -> None:
    assert quality_curve(ITEMS, [4, 3, 2, 1]) == [0.5, 0.75, 1.0, 1.0, 0.75]
    assert quality_curve(ITEMS, [1, 2, 3, 4]) == [0.5, 0.25, 0.25, 0.5, 0.75]


def test_pgr_apgr_and_cpt_by_hand() -> None:
    best = quality_curve(ITEMS, [4, 3, 2, 1])  # weak 0.5, strong 0.75
    assert pgr(best) == [0.0, 1.0, 2.0, 2.0, 1.0]
    # trapezoids of width 1/4: (0+1)/2 + (1+2)/2 + (2+2)/2 + (2+1)/2 = 5.5, times 1/4
    assert apgr(best) == pytest.approx(1.375)
    assert cpt(best, 0.5) == 0.25 and cpt(best, 0.8) == 0.25
    worst = quality_curve(ITEMS, [1, 2, 3, 4])
    assert pgr(worst) == [0.0, -1.0, -1.0, 0.0, 1.0]
    assert apgr(worst) == pytest.approx((-0.5 - 1 - 0.5 + 0.5) / 4)
    assert cpt(worst, 0.5) == 1.0


def test_a_router_that_ignores_the_prompt_averages_half_the_gap() -> None:
    items = [Item(str(i), float(i % 3 == 0), float(i % 5 == 0)) for i in range(60)]
    # every ordering averaged is the random router; all prompts scored the same keeps the input order,
    # so average over rotations of one ordering: the mean curve is the straight line from weak to strong
    total = 0.0
    for shift in range(60):
        scores = [float((i + shift) % 60) for i in range(60)]
        total += apgr(quality_curve(items, scores))
    assert total / 60 == pytest.approx(0.5, abs=0.02)


def test_quality_kept_cost_saved_and_the_oracle_by_hand() -> None:
    from bench.routing_quality import kept, oracle
    from training.outcomes import ROUTERBENCH_STRONG as GPT4
    from training.outcomes import RouterBenchRow

    rows = [RouterBenchRow("a", "a", {GPT4: 1, "small": 1}, {GPT4: 1.0, "small": 0.1}),
            RouterBenchRow("b", "b", {GPT4: 1, "small": 0}, {GPT4: 3.0, "small": 0.1}),
            RouterBenchRow("c", "c", {GPT4: 0, "small": 0}, {GPT4: 1.0, "small": 0.2})]
    # small, GPT-4, small: score 1 + 1 + 0 = 2 of GPT-4's 2; cost 0.1 + 3 + 0.2 = 3.3 of 5
    routed = kept(rows, ["small", GPT4, "small"])
    assert routed.quality == pytest.approx(1.0) and routed.saved == pytest.approx(1 - 3.3 / 5)
    always = kept(rows, [GPT4] * 3)
    assert (always.quality, always.saved) == (1.0, 0.0)
    assert [oracle(r, [GPT4, "small"]) for r in rows] == ["small", GPT4, "small"]  # none right: the cheapest


def test_the_curve_points_round_trip_and_draw(tmp_path) -> None:
    from bench.routing_curve import Point, figure, read, write

    points = [Point("seed", "seed policy", 0.9, 0.6), Point("t 0.1", "tolerance rule", 0.95, 0.3),
              Point("t 0.3", "tolerance rule", 0.85, 0.8), Point("always GPT-4", "reference", 1.0, 0.0)]
    path = tmp_path / "curve.json"
    assert read(path) is None  # not measured yet
    write(points, "python -m bench.routing_quality", path)
    assert read(path) == ("python -m bench.routing_quality", points)
    fig = figure(points)
    by_name = {trace.name: trace for trace in fig.data}
    assert set(by_name) == {"seed policy", "tolerance rule", "reference"}
    assert list(by_name["tolerance rule"].x) == [0.3, 0.8]  # a line ordered by cost saved
    path.write_text("{not json")
    assert read(path) is None
