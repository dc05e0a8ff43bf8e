"""How daily returns are distributed: histogram and summary statistics per symbol."""

from __future__ import annotations

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not a dependency yet
import streamlit as st

from marketpulse.dashboard import charts, data, ui
from marketpulse.dashboard.analytics import DAILY_RETURNS, return_summary

settings = ui.settings()
st.title("Daily returns")

with ui.explain_data_errors():
    symbols = data.symbols(settings)
if not symbols:
    ui.stop_with_info(ui.empty_table("returns_daily"))
chosen = ui.pick_symbols(symbols, default_count=3)
kind = ui.pick_option("Return", list(DAILY_RETURNS), key="kind")
column = DAILY_RETURNS[kind]

with ui.explain_data_errors():
    returns = data.load(settings, "returns_daily", tuple(chosen))
missing = sorted(set(chosen) - set(returns["symbol"]))
if returns.empty:
    ui.stop_with_warning(ui.no_rows_for(chosen, "returns_daily"))
if missing:
    st.warning(ui.no_rows_for(missing, "returns_daily"), icon=":material/warning:")

first, last = ui.first_last_dates(returns)
start, end = ui.pick_date_range(first, last)
shown = ui.in_range(returns, "trade_date", start, end)[["symbol", "trade_date", column]]

st.plotly_chart(
    charts.returns_histogram(shown, column, f"{kind} returns, {start} to {end}"),
    width="stretch",
    key="returns_chart",
)
ui.download_csv(shown, f"returns-{column}-{start}-{end}", key="returns_csv")
summary = pd.DataFrame(
    [{"symbol": symbol, **return_summary(group[column])} for symbol, group in shown.groupby("symbol")]
)
st.subheader("Summary")
st.dataframe(
    summary,
    hide_index=True,
    key="returns_summary",
    column_config={
        "days": st.column_config.NumberColumn("Days", format="%d"),
        "mean_pct": st.column_config.NumberColumn("Mean %", format="%.3f"),
        "median_pct": st.column_config.NumberColumn("Median %", format="%.3f"),
        "stdev_pct": st.column_config.NumberColumn("Std dev %", format="%.3f"),
        "min_pct": st.column_config.NumberColumn("Worst %", format="%.3f"),
        "max_pct": st.column_config.NumberColumn("Best %", format="%.3f"),
        "up_days_pct": st.column_config.NumberColumn("Up days %", format="%.1f"),
    },
)
