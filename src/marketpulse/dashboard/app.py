"""The Streamlit entrypoint: reads the settings for the session, then routes to a page.

`marketpulse dashboard` runs `streamlit run` on this file.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from marketpulse.dashboard import ui

HERE = Path(__file__).parent
# (file in pages/, title, icon); the first page is the landing page.
PAGES = [
    ("ohlc.py", "OHLC", ":material/candlestick_chart:"),
    ("returns.py", "Daily returns", ":material/bar_chart:"),
    ("cumulative.py", "Cumulative performance", ":material/trending_up:"),
    ("comparison.py", "Comparison (base 100)", ":material/stacked_line_chart:"),
    ("volatility.py", "Rolling volatility", ":material/ssid_chart:"),
    ("live.py", "Live quotes", ":material/bolt:"),
    ("health.py", "Pipeline health", ":material/monitor_heart:"),
]

st.set_page_config(page_title="MarketPulse", page_icon=":material/monitoring:", layout="wide")
settings = ui.install_settings()
navigation = st.navigation(
    [
        st.Page(HERE / "pages" / name, title=title, icon=icon, default=index == 0)
        for index, (name, title, icon) in enumerate(PAGES)
    ]
)
st.sidebar.caption(f"Pipeline **{settings.pipeline}** · warehouse **{settings.warehouse}**")
navigation.run()
