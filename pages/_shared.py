"""What the console's pages share: the engine (one per process), the sidebar, filters
and formatting. Everything here is presentation; the work happens in router/ and storage/."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from router.blocking import BlockingEngine
from router.config import Settings
from router.runtime import build_runtime
from storage.analytics import Filters, distinct_values

RANGES = {"Last hour": timedelta(hours=1), "Last 24 hours": timedelta(days=1), "Last 7 days": timedelta(days=7),
          "Last 30 days": timedelta(days=30), "All time": None}


@st.cache_resource(show_spinner="Starting the routing engine…")
def _engine(database_url: str | None, config_path: str, classifier: str) -> BlockingEngine:
    # Keyed by the settings that pick the database and policies, so one process can serve
    # several configurations (tests do) and each gets its own engine.
    return BlockingEngine(build_runtime(Settings.from_env()))


def warm_engine() -> None:
    """Build the process's engine before any page asks (the `router console` launcher)."""
    settings = Settings.from_env()
    _engine(settings.database_url, str(settings.config_path), settings.classifier)


def engine() -> BlockingEngine:
    """The process's engine, with policies refreshed so activations elsewhere show up."""
    settings = Settings.from_env()
    try:
        eng = _engine(settings.database_url, str(settings.config_path), settings.classifier)
    except Exception as exc:  # a bad config or an unreachable database: say so, do not crash
        st.error(f"The routing engine could not start: {exc}")
        st.stop()
    try:
        eng.refresh_policies()
    except Exception as exc:
        st.warning(f"Could not refresh policies from the database: {exc}")
    return eng


def db() -> Any:
    return engine().runtime.db


def sidebar_health(eng: BlockingEngine) -> None:
    report = eng.health()
    with st.sidebar:
        st.subheader("Health")
        c = report["classifier"]
        backend = f"{c['backend']} · {c['provider']}"
        if c.get("japanese_glossary"):
            backend += " · Japanese via glossary"
        if c.get("failures"):
            backend += f" · {c['failures']} failures, using keyword fallback"
        st.markdown(f"**Classifier:** {backend}")
        database = report["database"]
        state = "ok" if database["healthy"] else f"unreachable, {database['queued']} decisions buffered"
        st.markdown(f"**Database:** {database['location']} ({state})")
        default = report["default_policy"]
        st.markdown(f"**Active policy:** {default['name']} v{default['version']}")
        lines = []
        for name, tier in report["tiers"].items():
            icon = "🟢" if tier.get("reachable") else "🔴"
            where = "simulator" if tier.get("simulated") else (tier.get("endpoint") or tier.get("error", ""))
            lines.append(f"{icon} {name} ({where})")
        st.markdown("**Tiers:**  \n" + "  \n".join(lines))


def filters_bar(key: str, *, with_tier_task: bool = False) -> Filters:
    """Time range and policy (and optionally tier, task, status, source) filters."""
    database = db()
    cols = st.columns(6 if with_tier_task else 2)
    label = cols[0].selectbox("Time range", list(RANGES), index=2, key=f"{key}_range")
    policy = cols[1].selectbox("Policy", ["All", *distinct_values(database, "policy_name")], key=f"{key}_policy")
    since = datetime.now(UTC) - RANGES[label] if RANGES[label] else None
    f = Filters(since=since, policy=None if policy == "All" else policy)
    if with_tier_task:
        tier = cols[2].selectbox("Tier", ["All", *distinct_values(database, "routed_tier")], key=f"{key}_tier")
        task = cols[3].selectbox("Task", ["All", *distinct_values(database, "task")], key=f"{key}_task")
        status = cols[4].selectbox("Status", ["All", "ok", "error"], key=f"{key}_status")
        source = cols[5].selectbox("Source", ["All", "playground", "api"], key=f"{key}_source")
        f = Filters(since=since, policy=f.policy, tier=None if tier == "All" else tier,
                    task=None if task == "All" else task, status=None if status == "All" else status,
                    source=None if source == "All" else source)
    return f


def usd(value: float | None) -> str:
    if value is None:
        return "–"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.6f}"


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f} ms" if value < 1000 else f"{value / 1000:,.2f} s"


def decision_line(d: Any) -> str:
    """One compact line under an answer: why it went where it went and what it cost."""
    parts = [f"**{d.task}** {d.confidence:.0%}" if d.task else "not classified"]
    if getattr(d, "difficulty", None) is not None:
        parts.append(f"difficulty {d.difficulty:.2f}")
    if d.complexity is not None:
        parts.append(f"complexity {d.complexity:.2f}")
    if d.rule:
        reason = getattr(d, "reason", None)
        parts.append(f"rule `{d.rule}`" + (f" ({reason})" if reason else ""))
    if d.tier:
        parts.append(f"→ **{d.tier}** ({d.model})")
    if d.fallback:
        parts.append(f"fallback from {d.routed_tier}")
    parts.append(f"classify {ms(d.classify_ms)}")
    if d.ttft_ms is not None:
        parts.append(f"TTFT {ms(d.ttft_ms)}")
    parts.append(f"total {ms(d.total_ms)}")
    if d.prompt_tokens is not None:
        est = "≈" if d.usage_estimated else ""
        parts.append(f"{est}{d.prompt_tokens}→{d.completion_tokens} tokens")
    if d.cost_usd is not None:
        parts.append(f"{usd(d.cost_usd)} (baseline {d.baseline_tier} {usd(d.baseline_cost_usd)})")
    if d.status != "ok":
        parts.append(f"⚠ {d.error}")
    return " · ".join(parts)


def empty_state(message: str) -> None:
    st.info(message, icon="ℹ️")


def require_operator() -> None:
    """Guard a page that changes routing or records verdicts. With ROUTER_CONSOLE_PASSWORD
    unset (the local-dev default) the page is open and says so."""
    password = Settings.from_env().console_password
    if password is None:
        st.caption("Operator pages are open: the local-dev default. Set ROUTER_CONSOLE_PASSWORD to guard them.")
        return
    if st.session_state.get("operator"):
        return
    with st.form("operator_login"):
        st.markdown("**Operator sign-in** is required for this page.")
        entered = st.text_input("Operator password", type="password", key="operator_password")
        if st.form_submit_button("Sign in"):
            if hmac.compare_digest(entered.encode(), password.encode()):
                st.session_state["operator"] = True
                st.rerun()
            st.error("Wrong password.")
    st.stop()
