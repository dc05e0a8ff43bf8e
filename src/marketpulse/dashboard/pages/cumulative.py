"""Cumulative performance: growth of each symbol's close since the start of the chosen range."""

from __future__ import annotations

import streamlit as st

from marketpulse.dashboard import charts, data, ui

settings = ui.settings()
st.title("Cumulative performance")

with ui.explain_data_errors():
    symbols = data.symbols(settings)
if not symbols:
    ui.stop_with_info(ui.empty_table("returns_cumulative"))
chosen = ui.pick_symbols(symbols)

with ui.explain_data_errors():
    frame = data.load(settings, "returns_cumulative", tuple(chosen))
if frame.empty:
    ui.stop_with_warning(ui.no_rows_for(chosen, "returns_cumulative"))
missing = sorted(set(chosen) - set(frame["symbol"]))
if missing:
    st.warning(ui.no_rows_for(missing, "returns_cumulative"), icon=":material/warning:")

first, last = ui.first_last_dates(frame)
start, end = ui.pick_date_range(first, last)
frame = ui.in_range(frame, "trade_date", start, end).copy()
if start > first:
    # Gold measures growth since each symbol's first date; re-base it so the range starts at 0 %.
    growth = 1 + frame["cumulative_return_pct"] / 100
    base = growth.groupby(frame["symbol"]).transform("first")
    frame["cumulative_return_pct"] = (growth / base - 1) * 100
    st.caption(f"Re-based to {start}: growth since the first trading date in the range.")
shown = frame[["symbol", "trade_date", "cumulative_return_pct"]]

latest = shown.sort_values("trade_date").groupby("symbol").tail(1).sort_values("symbol")
cols = st.columns(min(len(latest), 6) or 1)
for i, row in enumerate(latest.itertuples()):
    cols[i % len(cols)].metric(str(row.symbol), ui.signed_pct(float(row.cumulative_return_pct)))
st.plotly_chart(
    charts.lines(shown, "cumulative_return_pct", "Cumulative return", "Return since start (%)", 0.0),
    width="stretch",
    key="cumulative_chart",
)
ui.download_csv(shown, f"cumulative-{start}-{end}", key="cumulative_csv")
