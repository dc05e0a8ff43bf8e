"""Cross-symbol comparison on gold's base-100 index (100 = each symbol's first close in the range)."""

from __future__ import annotations

import streamlit as st

from marketpulse.dashboard import charts, data, ui

settings = ui.settings()
st.title("Comparison (base 100)")

with ui.explain_data_errors():
    symbols = data.symbols(settings)
if not symbols:
    ui.stop_with_info(ui.empty_table("index_base100"))
chosen = ui.pick_symbols(symbols, default_count=8)

with ui.explain_data_errors():
    frame = data.load(settings, "index_base100", tuple(chosen))
if frame.empty:
    ui.stop_with_warning(ui.no_rows_for(chosen, "index_base100"))
missing = sorted(set(chosen) - set(frame["symbol"]))
if missing:
    st.warning(ui.no_rows_for(missing, "index_base100"), icon=":material/warning:")

first, last = ui.first_last_dates(frame)
start, end = ui.pick_date_range(first, last)
frame = ui.in_range(frame, "trade_date", start, end).sort_values(["symbol", "trade_date"]).copy()
if start > first:
    # Gold's base is each symbol's first close; re-based, every line starts the range at 100.
    base = frame.groupby("symbol")["index_value"].transform("first")
    frame["index_value"] = 100 * frame["index_value"] / base
    st.caption(f"Re-based to {start}: 100 is each symbol's first close in the range.")
shown = frame[["symbol", "trade_date", "index_value"]]

st.plotly_chart(
    charts.lines(shown, "index_value", "Index, base 100", "Index", 100.0),
    width="stretch",
    key="comparison_chart",
)
ui.download_csv(shown, f"comparison-{start}-{end}", key="comparison_csv")
latest = shown.groupby("symbol").tail(1)
ranking = latest.sort_values("index_value", ascending=False).reset_index(drop=True)
ranking.insert(0, "rank", range(1, len(ranking) + 1))
st.subheader("Latest index")
st.dataframe(
    ranking,
    hide_index=True,
    key="comparison_ranking",
    column_config={
        "trade_date": st.column_config.DateColumn("As of"),
        "index_value": st.column_config.NumberColumn("Index", format="%.2f"),
    },
)
