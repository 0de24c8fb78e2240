"""Playground: multi-turn chat through the router, with the decision under every answer."""

from __future__ import annotations

import uuid

import pandas as pd
import streamlit as st

from pages._shared import db, decision_line, engine, usd
from router.chat_request import ROUTER_MODEL, ChatRequest
from router.errors import APIError
from storage.queries import get_decision, list_decisions
from storage.reviews import add_review

AUTO = "auto (route)"

eng = engine()
registry = eng.runtime.registry
state = st.session_state
state.setdefault("conversation_id", uuid.uuid4().hex[:24])
state.setdefault("messages", [])  # {"role", "content", "decision_id"}
if state.pop("reset_pin", False):
    state["pin"] = AUTO

st.title("Playground")
names = registry.names()
c1, c2, c3 = st.columns([2, 2, 1])
policy_name = c1.selectbox("Policy", names, index=names.index(registry.default_policy), key="policy")
active = registry.get(policy_name)
c2.selectbox("Tier for the next turn", [AUTO, *active.policy.tiers], key="pin",
             help="Pin one turn to a tier; the router decides again after it.")
if c3.button("New conversation", width="stretch"):
    state["conversation_id"] = uuid.uuid4().hex[:24]
    state["messages"] = []
    st.rerun()


def record_feedback(decision_id: str, key: str) -> None:
    value = st.session_state.get(key)
    if value is None:
        return
    add_review(db(), decision_id, "thumbs_up" if value == 1 else "thumbs_down", reviewer="playground")
    st.toast("Thanks, recorded on the decision.")


def show_decision(decision_id: str) -> None:
    d = get_decision(db(), decision_id)
    if d is None:
        st.caption("decision not found")
        return
    st.caption(decision_line(d))
    if d.task_probs:
        with st.expander("Classifier output"):
            probs = pd.DataFrame(sorted(d.task_probs.items(), key=lambda kv: -kv[1]), columns=["task", "p"])
            left, right = st.columns(2)
            left.dataframe(probs, hide_index=True, width="stretch")
            dims = pd.DataFrame(sorted((d.complexity_dims or {}).items()), columns=["dimension", "score"])
            right.dataframe(dims, hide_index=True, width="stretch")
            difficulty = "–" if d.difficulty is None else f"{d.difficulty:.2f}"
            right.caption(f"difficulty (chance a small tier falls short) {difficulty} · backend: "
                          f"{d.classifier_backend} · policy {d.policy_name} v{d.policy_version}")
    key = f"feedback_{decision_id}"
    st.feedback("thumbs", key=key, on_change=record_feedback, args=(decision_id, key))


simulated = [name for name, tier in eng.runtime.health()["tiers"].items() if tier.get("simulated")]
if simulated:
    st.info(f"Tiers {', '.join(simulated)} are answered by the built-in simulator (canned text, real routing, "
            "timings and costs) because their API key variable is not set. Set `NVIDIA_API_KEY`, or point the "
            "tiers at your own OpenAI-compatible endpoint (README: Tiers, retries and fallback).", icon="🧪")

if not state["messages"]:
    st.markdown("**Try a prompt.** Each answer shows where the router sent it and why: the task it read, the rule "
                "that matched, the tier, the time and the cost against the baseline tier.")
    st.markdown("- `Pythonでソートアルゴリズムを実装して` (code)\n"
                "- then `このアルゴリズムの計算量を説明して` (a follow-up question)\n"
                "- then `もっと簡潔にまとめて` (a rewrite of the last answer)\n"
                "- `Summarize the plot of Hamlet in three sentences` · `Write a haiku about autumn`")

for message in state["messages"]:
    with st.chat_message(message["role"]):
        st.markdown(message["content"])
        if message.get("error"):
            st.error(message["error"])
        if message.get("decision_id") and message["role"] == "assistant":
            show_decision(message["decision_id"])

prompt = st.chat_input("Send a prompt through the router")
if prompt:
    state["messages"].append({"role": "user", "content": prompt})
    with st.chat_message("user"):
        st.markdown(prompt)
    pin = state.get("pin", AUTO)
    req = ChatRequest(messages=[{"role": m["role"], "content": m["content"]} for m in state["messages"]
                                if m["content"]],
                      model=ROUTER_MODEL if pin == AUTO else pin, policy=policy_name,
                      conversation_id=state["conversation_id"], source="playground")
    with st.chat_message("assistant"):
        entry: dict = {"role": "assistant", "content": ""}
        try:
            turn = eng.chat(req)
        except APIError as err:
            entry["error"] = err.message
            entry["decision_id"] = err.headers.get("x-router-decision-id")
            st.error(err.message)
        else:
            entry["decision_id"] = turn.decision_id
            st.write_stream(turn.text())
            entry["content"] = turn.answer
            if turn.error:
                entry["error"] = turn.error
                st.error(turn.error)
        if entry.get("decision_id"):
            show_decision(entry["decision_id"])
    state["messages"].append(entry)
    if pin != AUTO:  # a pin holds for one turn: show the selector back on auto
        state["reset_pin"] = True
        st.rerun()

turns = list_decisions(db(), conversation_id=state["conversation_id"], limit=1000)
if turns:
    cost = sum(d.cost_usd or 0 for d in turns)
    baseline = sum(d.baseline_cost_usd or 0 for d in turns if d.cost_usd is not None)
    saved = baseline - cost
    pct = f" ({saved / baseline:.0%})" if baseline else ""
    st.sidebar.subheader("This conversation")
    st.sidebar.markdown(f"{len(turns)} turns · cost **{usd(cost)}** · baseline {usd(baseline)} · "
                        f"saved **{usd(saved)}**{pct}")
