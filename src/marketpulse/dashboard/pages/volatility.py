"""Rolling annualised volatility with a window slider, several symbols overlaid."""

from __future__ import annotations

import streamlit as st

from marketpulse.dashboard import charts, data, ui
from marketpulse.dashboard.analytics import rolling_volatility

settings = ui.settings()
st.title("Rolling volatility")

with ui.explain_data_errors():
    symbols = data.symbols(settings)
if not symbols:
    ui.stop_with_info(ui.empty_table("volatility_rolling"))
chosen = ui.pick_symbols(symbols)
window = ui.pick_whole_number("Window (trading days)", 5, 60, 20, key="window", slider=True)

with ui.explain_data_errors():
    gold = data.load(settings, "volatility_rolling", tuple(chosen))
gold_windows = sorted(int(w) for w in gold["window_days"].unique())
if window in gold_windows:
    frame = gold[gold["window_days"] == window]
    st.caption(f"Window {window} from gold `volatility_rolling` (it carries windows {gold_windows}).")
else:
    # Gold keeps a few windows (dbt var volatility_window_days); others use the same definition here.
    with ui.explain_data_errors():
        returns = data.load(settings, "returns_daily", tuple(chosen))
    frame = rolling_volatility(returns, window)
    carried = ", ".join(map(str, gold_windows)) or "none"
    st.caption(
        f"Gold `volatility_rolling` carries windows {carried}; window {window} is computed here from "
        "`returns_daily.log_return` with the same definition (sample stddev of the log returns, "
        "annualised by sqrt(252))."
    )
if frame.empty:
    ui.stop_with_warning(
        f"{ui.no_rows_for(chosen, 'volatility_rolling')} A {window}-day window needs "
        f"{window + 1} trading days."
    )
missing = sorted(set(chosen) - set(frame["symbol"]))
if missing:
    st.warning(
        f"{ui.no_rows_for(missing, 'volatility_rolling')} A {window}-day window needs "
        f"{window + 1} trading days.",
        icon=":material/warning:",
    )

# Windows are computed over the whole history; the range only chooses which dates are drawn.
first, last = ui.first_last_dates(frame)
start, end = ui.pick_date_range(first, last)
frame = ui.in_range(frame, "trade_date", start, end)
shown = frame.assign(volatility_pct=frame["annualized_volatility"].astype(float) * 100)[
    ["symbol", "trade_date", "window_days", "volatility_pct"]
]
latest = shown.sort_values("trade_date").groupby("symbol").tail(1).sort_values("symbol")
cols = st.columns(min(len(latest), 6) or 1)
for i, row in enumerate(latest.itertuples()):
    cols[i % len(cols)].metric(str(row.symbol), f"{float(row.volatility_pct):.2f} %")
st.plotly_chart(
    charts.lines(shown, "volatility_pct", f"{window}-day annualised volatility", "Volatility (%)"),
    width="stretch",
    key="volatility_chart",
)
ui.download_csv(shown, f"volatility-{window}d-{start}-{end}", key="volatility_csv")
