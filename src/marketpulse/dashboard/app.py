"""The Streamlit entrypoint: reads the settings for the session, then routes to a page.

`marketpulse dashboard` runs `streamlit run` on this file. Each page has a URL named after its title
(`/daily-returns`, `/pipeline-health`, …), and its filters are in the URL's query, so a link opens
the same view.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import streamlit as st

from marketpulse.dashboard import ui

HERE = Path(__file__).parent


class PageEntry(NamedTuple):
    file: str  # in pages/
    title: str
    url_path: str  # "" for the landing page, served at /
    icon: str


PAGES = (
    PageEntry("ohlc.py", "OHLC", "", ":material/candlestick_chart:"),
    PageEntry("returns.py", "Daily returns", "daily-returns", ":material/bar_chart:"),
    PageEntry("cumulative.py", "Cumulative performance", "cumulative-performance", ":material/trending_up:"),
    PageEntry("comparison.py", "Comparison (base 100)", "comparison", ":material/stacked_line_chart:"),
    PageEntry("volatility.py", "Rolling volatility", "rolling-volatility", ":material/ssid_chart:"),
    PageEntry("correlation.py", "Correlation", "correlation", ":material/grid_on:"),
    PageEntry("live.py", "Live quotes", "live-quotes", ":material/bolt:"),
    PageEntry("health.py", "Pipeline health", "pipeline-health", ":material/monitor_heart:"),
)

st.set_page_config(page_title="MarketPulse", page_icon=":material/monitoring:", layout="wide")
settings = ui.install_settings()
navigation = st.navigation(
    [
        st.Page(
            HERE / "pages" / page.file,
            title=page.title,
            icon=page.icon,
            url_path=page.url_path or None,
            default=not page.url_path,
        )
        for page in PAGES
    ]
)
# The browser tab names the page, so a bookmark or a shared link says what it opens.
st.set_page_config(page_title=f"{navigation.title} · MarketPulse")
st.sidebar.caption(f"Pipeline **{settings.pipeline}** · warehouse **{settings.warehouse}**")
navigation.run()
