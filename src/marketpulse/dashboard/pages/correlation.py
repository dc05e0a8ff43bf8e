"""How the watchlist moves together: the correlation of daily returns between each pair of symbols."""

from __future__ import annotations

import streamlit as st

from marketpulse.dashboard import charts, data, ui
from marketpulse.dashboard.analytics import DAILY_RETURNS, return_correlations

settings = ui.settings()
st.title("Correlation")

with ui.explain_data_errors():
    symbols = data.symbols(settings)
if not symbols:
    ui.stop_with_info(ui.empty_table("returns_daily"))
chosen = ui.pick_symbols(symbols, default_count=len(symbols))
kind = ui.pick_option("Return", list(DAILY_RETURNS), key="kind")
column = DAILY_RETURNS[kind]

with ui.explain_data_errors():
    returns = data.load(settings, "returns_daily", tuple(chosen))
if returns.empty:
    ui.stop_with_warning(ui.no_rows_for(chosen, "returns_daily"))
missing = sorted(set(chosen) - set(returns["symbol"]))
if missing:
    st.warning(ui.no_rows_for(missing, "returns_daily"), icon=":material/warning:")
first, last = ui.first_last_dates(returns)
start, end = ui.pick_date_range(first, last)
returns = ui.in_range(returns, "trade_date", start, end)
present = sorted(set(returns["symbol"]))
if len(present) < 2:
    ui.stop_with_info("A correlation needs daily returns of at least two symbols in the range.")

matrix = return_correlations(returns, column)
days = int(returns.dropna(subset=[column])["trade_date"].nunique())
st.plotly_chart(
    charts.correlation_heatmap(matrix, f"Correlation of {kind.lower()} returns, {start} to {end}"),
    width="stretch",
    key="correlation_chart",
)
st.caption(
    f"Pearson correlation of daily returns over the {days} trading days in the range (each pair over "
    "the days both symbols have)."
)
ui.download_csv(matrix.reset_index(), f"correlation-{column}-{start}-{end}", key="correlation_csv")
