"""Misroutes: a review queue (thumbs-down and low confidence first), one-decision review,
confusion matrices, misroute rate over time and export for retraining."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from pages._shared import db, decision_line, empty_state, engine, filters_bar, require_operator
from router.classifier import TASK_LABELS
from storage.analytics import misroute_rate, review_queue, task_confusion, tier_confusion
from storage.queries import get_decision
from storage.reviews import ReviewError, add_review, reviewed_rows, reviews_for, to_csv, to_jsonl

eng = engine()
require_operator()
database = db()
st.title("Misroutes")

f = filters_bar("mis", with_tier_task=True)
c1, c2 = st.columns(2)
low = c1.slider("Only confidence below", 0.0, 1.0, 1.0, 0.05, key="mis_conf")
unreviewed = c2.checkbox("Only decisions without a verdict", key="mis_unreviewed")
queue = review_queue(database, f, limit=200, max_confidence=low if low < 1.0 else None, unreviewed_only=unreviewed)

if not queue:
    empty_state("No decisions match. Chat in the Playground or send requests to the API, then review them here.")
else:
    table = pd.DataFrame(queue)
    table["created_at"] = pd.to_datetime(table["created_at"]).dt.strftime("%Y-%m-%d %H:%M:%S")
    table["prompt"] = table["prompt"].fillna("").str.slice(0, 80)
    st.dataframe(table[["created_at", "policy_name", "routed_tier", "tier", "task", "confidence", "difficulty",
                        "complexity", "status", "source", "verdict", "prompt"]],
                 hide_index=True, width="stretch",
                 column_config={"confidence": st.column_config.ProgressColumn(min_value=0, max_value=1, format="%.2f")})

    labels = {row["id"]: f"{row['created_at']:%m-%d %H:%M:%S} · {row['task']} · {row['routed_tier']} · "
                         f"{(row['prompt'] or '')[:50]}" for row in queue}
    decision_id = st.selectbox("Review a decision", list(labels), format_func=labels.get, key="review_pick")
    d = get_decision(database, decision_id)
    if d is not None:
        st.caption(decision_line(d))
        left, right = st.columns(2)
        with left:
            st.markdown("**Prompt (latest user turn)**")
            st.text(d.prompt or "(not stored)")
            st.markdown("**Answer**")
            st.text((d.response or "")[:2000])
        with right:
            if d.task_probs:
                probs = pd.DataFrame(sorted(d.task_probs.items(), key=lambda kv: kv[1]), columns=["task", "p"])
                probability_fig = px.bar(probs, x="p", y="task", orientation="h", height=360,
                                         title="Task probabilities")
                probability_fig.update_yaxes(dtick=1, automargin=True)  # a label on every bar
                st.plotly_chart(probability_fig, width="stretch")
            difficulty = "–" if d.difficulty is None else f"{d.difficulty:.2f}"
            st.markdown(f"Rule `{d.rule}` of {d.policy_name} v{d.policy_version}; difficulty {difficulty}, "
                        f"complexity {d.complexity:.2f} "
                        f"({', '.join(f'{k} {v:.2f}' for k, v in (d.complexity_dims or {}).items())})")
        previous = reviews_for(database, decision_id)
        if previous:
            st.caption("Earlier verdicts: " + "; ".join(f"{r.verdict} ({r.reviewer or 'anonymous'})" for r in previous))
        tiers = list(eng.runtime.registry.get(d.policy_name).policy.tiers) if d.policy_name in \
            eng.runtime.registry.names() else sorted({d.routed_tier or ""} - {""})
        with st.form("review_form", clear_on_submit=True):
            verdict = st.radio("Verdict", ["correct", "misrouted"], horizontal=True, key="review_verdict")
            c1, c2 = st.columns(2)
            task_options = ["(as predicted)", *TASK_LABELS]
            correct_task = c1.selectbox("Right task", task_options, key="review_task")
            tier_options = ["(as routed)", *tiers]
            correct_tier = c2.selectbox("Right tier", tier_options, key="review_tier")
            note = st.text_input("Note", key="review_note")
            reviewer = st.text_input("Reviewer", key="review_reviewer")
            if st.form_submit_button("Save review"):
                try:
                    add_review(database, decision_id, verdict,
                               correct_task=None if correct_task == task_options[0] else correct_task,
                               correct_tier=None if correct_tier == tier_options[0] else correct_tier,
                               note=note, reviewer=reviewer)
                    st.success("Review saved.")
                except ReviewError as exc:
                    st.error(str(exc))

st.header("Confusion")
tasks = task_confusion(database, f)
tiers_cm = tier_confusion(database, f)
if not tasks:
    empty_state("No reviewed decisions yet: mark decisions correct or misrouted above to fill these matrices.")
else:
    c1, c2 = st.columns(2)
    task_matrix = pd.DataFrame(tasks).pivot_table(index="actual", columns="predicted", values="n", fill_value=0)
    c1.plotly_chart(px.imshow(task_matrix, text_auto=True, title="Task: predicted vs reviewed",
                              labels={"x": "predicted", "y": "reviewed", "color": "decisions"}),
                    width="stretch")
    tier_matrix = pd.DataFrame(tiers_cm).pivot_table(index="should", columns="routed", values="n", fill_value=0)
    c2.plotly_chart(px.imshow(tier_matrix, text_auto=True, title="Tier: routed vs should have been",
                              labels={"x": "routed", "y": "should have been", "color": "decisions"}),
                    width="stretch")
    rate = pd.DataFrame(misroute_rate(database, f, unit="day"))
    st.plotly_chart(px.line(rate, x="bucket", y="rate", markers=True, title="Misroute rate per day",
                            hover_data=["reviewed", "misrouted"]), width="stretch")

st.header("Export reviewed decisions")
rows = reviewed_rows(database, since=f.since)
st.caption(f"{len(rows)} reviewed decisions (verdict and the right task and tier), for retraining the classifier.")
c1, c2 = st.columns(2)
c1.download_button("Download CSV", to_csv(rows), "reviewed_decisions.csv", "text/csv", disabled=not rows)
c2.download_button("Download JSONL", to_jsonl(rows), "reviewed_decisions.jsonl", "application/jsonl",
                   disabled=not rows)
