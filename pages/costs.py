"""Costs and latency: requests and dollars per tier over time, routing by task, savings
against the baseline tier, latency percentiles, error and fallback rates. Every figure
comes from a SQL aggregate."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from bench import routing_curve
from pages._shared import db, empty_state, engine, filters_bar, usd
from storage.analytics import (
    by_policy_version,
    by_task,
    latency_percentiles,
    rates_by_tier,
    summary,
    sums_sealed_until,
    tier_over_time,
)

engine()
database = db()
st.title("Costs and latency")

# Drawn on request: a fresh tab's first plotly chart costs the most, and this one is reference material.
if st.toggle("Cost-quality curve on public outcome data (RouterBench, offline benchmark)", key="costs_curve"):
    measured = routing_curve.read()
    if measured is None:
        st.caption("Not measured yet: `python -m bench.routing_quality --data ../shared/data/routing` writes it.")
    else:
        command, points = measured
        st.plotly_chart(routing_curve.figure(points), width="stretch", key="routing_curve")
        st.caption(f"`{command}` · the seed tiers played by RouterBench models (8B by Mistral-7B, 70B by "
                   "Llama-2-70B, 49B by GPT-4); quality and cost are shares of always using GPT-4.")

f = filters_bar("costs")
unit = st.radio("Bucket", ["hour", "day"], horizontal=True, key="costs_unit")
totals = summary(database, f)
if not totals["requests"]:
    empty_state("No decisions in this range yet. Chat in the Playground or send requests to the API.")
    st.stop()

c = st.columns(5)
c[0].metric("Requests", f"{totals['requests']:,}")
c[1].metric("Cost", usd(totals["cost_usd"]))
c[2].metric("All-to-baseline cost", usd(totals["baseline_cost_usd"]))
c[3].metric("Saved", usd(totals["savings_usd"]), f"{totals['savings_pct']:.1f}%")
c[4].metric("Errors / fallbacks", f"{totals['errors']:,} / {totals['fallbacks']:,}")
sealed = sums_sealed_until(database)
st.caption(f"Read from the hourly sums up to {sealed:%Y-%m-%d %H:%M} UTC and from the decisions after it."
           if sealed else "Read from the decisions: no hour has been summed yet (that runs in the background).")

versions = pd.DataFrame(by_policy_version(database, f))
if not versions.empty:
    st.subheader("By policy version")
    versions["policy version"] = versions["policy"] + " v" + versions["version"].astype(str)
    st.dataframe(versions[["policy version", "requests", "cost_usd", "baseline_cost_usd", "saved_pct", "first", "last"]]
                 .round({"saved_pct": 1}), hide_index=True, width="stretch",
                 column_config={"cost_usd": st.column_config.NumberColumn("cost (USD)", format="%.6f"),
                                "baseline_cost_usd": st.column_config.NumberColumn("baseline (USD)", format="%.6f"),
                                "saved_pct": st.column_config.NumberColumn("saved %", format="%.1f")})

over_time = pd.DataFrame(tier_over_time(database, f, unit))
left, right = st.columns(2)
left.plotly_chart(px.bar(over_time, x="bucket", y="requests", color="tier", title=f"Requests per tier per {unit}"),
                  width="stretch", key="requests_chart")
right.plotly_chart(px.bar(over_time, x="bucket", y="cost_usd", color="tier", title=f"Cost (USD) per tier per {unit}"),
                   width="stretch", key="cost_chart")

per_bucket = over_time.groupby("bucket", as_index=False)[["cost_usd", "baseline_cost_usd"]].sum()
if len(per_bucket) > 1:
    savings = go.Figure([
        go.Scatter(x=per_bucket["bucket"], y=per_bucket["cost_usd"].cumsum(), name="actual", mode="lines+markers"),
        go.Scatter(x=per_bucket["bucket"], y=per_bucket["baseline_cost_usd"].cumsum(), name="all to baseline tier",
                   mode="lines+markers"),
    ])
    savings.update_layout(title="Cumulative cost: actual vs baseline (USD)", yaxis_rangemode="tozero")
else:  # one bucket has no curve (two dots on a sub-millisecond axis): compare the two totals as bars
    savings = go.Figure([go.Bar(x=[name], y=[per_bucket[column].sum()], name=name, text=[usd(per_bucket[column].sum())])
                         for name, column in (("actual", "cost_usd"), ("all to baseline tier", "baseline_cost_usd"))])
    savings.update_layout(title="Cumulative cost: actual vs baseline (USD)", showlegend=False)
left, right = st.columns(2)
left.plotly_chart(savings, width="stretch", key="savings_chart")
tasks = pd.DataFrame(by_task(database, f))
if not tasks.empty:
    right.plotly_chart(px.bar(tasks, x="requests", y="task", color="tier", orientation="h",
                              title="Routing by task"), width="stretch", key="task_chart")

st.subheader("Latency per tier")
frames = []
for metric, label in (("classify_ms", "classify"), ("ttft_ms", "TTFT"), ("total_ms", "total")):
    for row in latency_percentiles(database, metric, f):
        frames.append({"tier": row["tier"], "metric": label, "n": row["n"], "p50": row["p50"], "p95": row["p95"],
                       "p99": row["p99"]})
latency = pd.DataFrame(frames)
if latency.empty:
    empty_state("No completed requests in this range.")
else:
    long = latency.melt(id_vars=["tier", "metric"], value_vars=["p50", "p95", "p99"], var_name="percentile",
                        value_name="ms")
    latency_fig = px.bar(long, x="tier", y="ms", color="percentile", barmode="group", facet_col="metric",
                         title="Latency percentiles (ms)", facet_col_spacing=0.06)
    # Classify takes well under a millisecond, TTFT and total hundreds: each panel gets its own scale.
    latency_fig.update_yaxes(matches=None, showticklabels=True, rangemode="tozero")
    st.plotly_chart(latency_fig, width="stretch", key="latency_chart")
    st.dataframe(latency.round(2), hide_index=True, width="stretch")

rates = pd.DataFrame(rates_by_tier(database, f))
if not rates.empty:
    long_rates = rates.melt(id_vars=["tier", "requests"], value_vars=["error_rate", "fallback_rate"],
                            var_name="rate", value_name="share")
    st.plotly_chart(px.bar(long_rates, x="tier", y="share", color="rate", barmode="group",
                           title="Error and fallback rates by routed tier"), width="stretch",
                    key="rates_chart")
