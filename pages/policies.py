"""Policies: versions, editing (form or YAML), dry run, activation, rollback and diff."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from pages._shared import db, empty_state, engine, require_operator, usd
from router import policy_admin
from router.classifier import TASK_LABELS
from router.classifier.prediction import QUALITY_CLASSES
from router.dry_run import replay
from router.policy import Policy, PolicyError, parse_policy, parse_policy_yaml
from router.policy_table import RULE_COLUMNS, TIER_COLUMNS, from_tables, rules_to_rows, tiers_to_rows
from storage import policies as store
from storage.analytics import replay_rows
from storage.policies import PolicyNotFound

eng = engine()
require_operator()
database = db()
st.title("Policies")

names = store.policy_names(database)
if not names:
    empty_state("No policies in the database yet. They are seeded from ROUTER_CONFIG when the engine starts.")
    st.stop()

active_versions = store.active_versions(database)
name = st.selectbox("Policy", names, index=names.index(eng.runtime.registry.default_policy)
                    if eng.runtime.registry.default_policy in names else 0, key="policy_name")
versions = store.list_versions(database, name)
active_version = active_versions.get(name)
st.caption(f"Active: v{active_version}" if active_version else "Not active")
st.dataframe(pd.DataFrame([{"version": v.version, "active": "✅" if v.version == active_version else "",
                            "created": f"{v.created_at:%Y-%m-%d %H:%M}", "by": v.created_by or "",
                            "comment": v.comment or ""} for v in reversed(versions)]),
             hide_index=True, width="stretch")

numbers = [v.version for v in reversed(versions)]  # newest first
base_key = f"base_version_{name}"
if "show_version" in st.session_state:  # after a save, edit from the version just saved
    st.session_state[base_key] = st.session_state.pop("show_version")
elif base_key not in st.session_state:  # first visit: start from the active version
    st.session_state[base_key] = active_version if active_version in numbers else numbers[0]
base_version = st.selectbox("Start from version", numbers, key=base_key)
base = parse_policy(store.get_version(database, name, base_version).document)

flash = st.session_state.pop("policy_flash", None)
if flash:
    st.success(flash)


def dry_run(draft: Policy, limit: int) -> None:
    rows = replay_rows(database, policy=name, limit=limit)
    if not rows:
        empty_state(f"No logged decisions for policy {name!r} yet: nothing to replay.")
        return
    current = eng.runtime.registry.get(name).policy if name in eng.runtime.registry.names() else None
    report = replay(rows, draft, current)
    c = st.columns(5)
    c[0].metric("Replayed", report.replayed, help=f"{report.skipped} pinned or unroutable turns skipped")
    c[1].metric("Would change tier", f"{report.changed} ({report.changed_share:.0%})")
    c[2].metric("Cost before", usd(report.cost_before_usd))
    c[3].metric("Cost after", usd(report.cost_after_usd), delta=usd(report.cost_delta_usd), delta_color="inverse")
    c[4].metric("Misroutes fixed / introduced", f"{report.misroutes_fixed} / {report.misroutes_introduced}",
                help=f"among {report.reviewed} reviewed decisions")
    if report.moves:
        st.dataframe(pd.DataFrame([{"from": a, "to": b, "decisions": n} for (a, b), n in report.moves.most_common()]),
                     hide_index=True)


def actions(key: str, build: Callable[[], Policy]) -> None:
    """Dry run and save buttons for one editor; nothing invalid is saved."""
    left, mid, right = st.columns([1, 2, 2])
    limit = left.number_input("Replay last N decisions", 10, 100_000, 1000, step=100, key=f"{key}_n")
    comment = mid.text_input("Comment for the new version", key=f"{key}_comment")
    activate_now = right.checkbox("Activate after saving", key=f"{key}_activate")
    b1, b2 = st.columns(2)
    run_dry, save = b1.button("Dry run", key=f"{key}_dry"), b2.button("Save as new version", key=f"{key}_save",
                                                                     type="primary")
    if not (run_dry or save):
        return
    try:
        draft = build()
        if draft.name != name:
            raise PolicyError(f"name: the draft is named {draft.name!r}; edit policy {name!r} here", field="name")
    except PolicyError as exc:
        st.error(f"Not saved: {exc}" if save else f"Invalid draft: {exc}")
        return
    if run_dry:
        dry_run(draft, int(limit))
        return
    stored = policy_admin.save(database, draft, created_by="console", comment=comment or None,
                               activate=activate_now)
    eng.refresh_policies()
    st.session_state["show_version"] = stored.version
    st.session_state["policy_flash"] = (f"Saved {name} v{stored.version}" +
                                        (" and activated it." if activate_now else "."))
    st.rerun()


form_tab, yaml_tab, versions_tab = st.tabs(["Edit as form", "Edit as YAML", "Activate, roll back, diff"])

with form_tab:
    tiers = list(base.tiers)
    description = st.text_input("Description", base.description, key="form_description")
    c1, c2, c3 = st.columns(3)
    default_tier = c1.selectbox("Default tier", tiers, index=tiers.index(base.default_tier), key="form_default")
    baseline_options = ["(priciest tier)", *tiers]
    baseline = c2.selectbox("Baseline tier", baseline_options,
                            index=baseline_options.index(base.baseline_tier) if base.baseline_tier else 0,
                            key="form_baseline")
    floor = c3.number_input("Confidence floor", 0.0, 1.0, float(base.confidence_floor), 0.05, key="form_floor")
    fallback = st.multiselect("Fallback order", tiers, default=list(base.fallback_order), key="form_fallback")
    st.markdown("**Rules** (first match wins; tasks are comma-separated labels: " + ", ".join(TASK_LABELS) + "; "
                "a rule with a tolerance instead of a tier picks the cheapest tier whose estimated success is "
                "within that much of the best tier's, among tiers with a quality class)")
    rules = st.data_editor(pd.DataFrame(rules_to_rows(base), columns=list(RULE_COLUMNS)), num_rows="dynamic",
                           width="stretch", key="rules_editor",
                           # Sized so every column, tier and tolerance included, fits without scrolling.
                           column_config={
                               "name": st.column_config.TextColumn(width="small"),
                               "tasks": st.column_config.TextColumn(width="medium"),
                               **{column: st.column_config.NumberColumn(
                                   column.replace("difficulty", "diff.").replace("complexity", "cplx.")
                                   .replace("_", " "), width="small", min_value=0.0, max_value=1.0)
                                  for column in RULE_COLUMNS if column.endswith(("_min", "_max"))},
                               "tier": st.column_config.TextColumn(width="small"),
                               "tolerance": st.column_config.NumberColumn(width="small", min_value=0.0,
                                                                          max_value=1.0)})
    st.markdown("**Tiers** (prices in USD per 1M tokens)")
    tier_rows = st.data_editor(
        pd.DataFrame(tiers_to_rows(base), columns=list(TIER_COLUMNS)), num_rows="dynamic", width="stretch",
        key="tiers_editor",
        # Sized so every column, timeout and retries included, fits without scrolling sideways.
        column_config={"name": st.column_config.TextColumn(width="small"),
                       "model": st.column_config.TextColumn(width="medium"),
                       "base_url": st.column_config.TextColumn(width="small"),
                       "api_key_env": st.column_config.TextColumn("key variable", width="small"),
                       "price_in": st.column_config.NumberColumn("$ in/1M", width="small", min_value=0.0),
                       "price_out": st.column_config.NumberColumn("$ out/1M", width="small", min_value=0.0),
                       "timeout_s": st.column_config.NumberColumn("timeout s", width="small", min_value=0.1),
                       "max_retries": st.column_config.NumberColumn("retries", width="small", min_value=0,
                                                                    max_value=5, step=1),
                       "quality_class": st.column_config.SelectboxColumn("quality", width="small",
                                                                         options=list(QUALITY_CLASSES))})
    actions("form", lambda: from_tables(
        base, rules=rules.to_dict("records"), tiers=tier_rows.to_dict("records"), default_tier=default_tier,
        baseline_tier=None if baseline == baseline_options[0] else baseline, confidence_floor=float(floor),
        fallback_order=fallback, description=description))

with yaml_tab:
    text = st.text_area("Policy YAML", base.to_yaml(), height=480, key=f"yaml_{name}_{base_version}")
    actions("yaml", lambda: parse_policy_yaml(text))

with versions_tab:
    c1, c2 = st.columns(2)
    target = c1.selectbox("Version to activate", numbers, key="activate_version")
    if c1.button("Activate", key="activate_button"):
        try:
            policy_admin.activate(database, name, int(target), by="console")
            eng.refresh_policies()
            st.session_state["policy_flash"] = f"Activated {name} v{target}."
            st.rerun()
        except (PolicyError, PolicyNotFound) as exc:
            st.error(str(exc))
    if c2.button("Roll back to the previous active version", key="rollback_button"):
        try:
            stored = policy_admin.rollback(database, name, by="console")
            eng.refresh_policies()
            st.session_state["policy_flash"] = f"Rolled back {name} to v{stored.version}."
            st.rerun()
        except PolicyNotFound as exc:
            st.error(str(exc))
    st.markdown("**Diff**")
    d1, d2 = st.columns(2)
    old = d1.selectbox("From", numbers, index=min(1, len(numbers) - 1), key="diff_old")
    new = d2.selectbox("To", numbers, index=0, key="diff_new")
    diff = policy_admin.diff(database, name, int(old), int(new))
    st.code(diff or "(no differences)", language="diff")
    history = store.activation_history(database, name)
    if history:
        st.markdown("**Activations**")
        st.dataframe(pd.DataFrame([{"version": h.version, "when": f"{h.activated_at:%Y-%m-%d %H:%M:%S}",
                                    "by": h.activated_by or "", "comment": h.comment or ""} for h in history]),
                     hide_index=True)
