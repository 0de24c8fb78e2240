"""The operator console: `streamlit run app.py`.

Runs offline on the defaults: a SQLite file, the built-in classifier and, for tiers
without an API key, the built-in tier simulator.
"""

import streamlit as st

from pages._shared import engine, sidebar_health

st.set_page_config(page_title="LLM router console", page_icon="🔀", layout="wide")

pages = [
    st.Page("pages/playground.py", title="Playground", icon="💬", default=True),
    st.Page("pages/policies.py", title="Policies", icon="📜"),
    st.Page("pages/misroutes.py", title="Misroutes", icon="🔎"),
    st.Page("pages/costs.py", title="Costs and latency", icon="📈"),
]
page = st.navigation(pages)
sidebar_health(engine())
page.run()
