"""OHLC candlesticks for one symbol, with a moving average and a least-squares trend line."""

from __future__ import annotations

import datetime as dt

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not a dependency yet
import streamlit as st

from marketpulse.dashboard import charts, data, ui
from marketpulse.dashboard.analytics import forming_bars, linear_trend, moving_average

GRANULARITIES = ("Daily", "1-minute")

settings = ui.settings()
st.title("OHLC")

with ui.explain_data_errors():
    symbols = data.symbols(settings)
if not symbols:
    ui.stop_with_info(ui.empty_table("ohlc_daily"))

left, middle, right = st.columns([2, 2, 1])
with left:
    symbol = ui.pick_symbol(symbols)
granularity = ui.pick_option("Bars", GRANULARITIES, key="bars", container=middle)
ma_window = ui.pick_whole_number("Moving average (bars)", 2, 200, 20, key="ma", container=right)

with ui.explain_data_errors():
    daily = data.load(settings, "ohlc_daily", (symbol,))
if daily.empty:
    ui.stop_with_warning(ui.no_rows_for([symbol], "ohlc_daily"))

first, last = ui.first_last_dates(daily)
start, end = ui.pick_date_range(first, last)

if granularity == "Daily":
    x = "trade_date"
    # Averaged over the whole history first, so the line does not start late in the chosen range.
    daily["moving_average"] = moving_average(daily["close"], ma_window)
    bars = ui.in_range(daily, x, start, end).reset_index(drop=True)
    bars["forming"] = False
else:
    x = "bar_start"
    # A trading day has ~390 one-minute bars: one day at a time stays readable and quick to draw.
    day = end
    with ui.explain_data_errors():
        # The exchange's trading date runs into the next UTC day (evenings in New York).
        bars = data.load(settings, "ohlc_1m", (symbol,), day, day + dt.timedelta(days=1))
        published_at = data.gold_status(settings).published_at
    bars = bars[pd.to_datetime(bars["trade_date"]).dt.date == day].reset_index(drop=True)
    bars["moving_average"] = moving_average(bars["close"], ma_window)
    # The newest bar may have been built before its minute ended: drawn apart and labelled.
    bars["forming"] = forming_bars(bars["bar_start"], published_at)
    st.caption(f"1-minute bars of trading date {day}, the last day of the range; times in UTC.")
if bars.empty:
    table = "ohlc_daily" if granularity == "Daily" else "ohlc_1m"
    ui.stop_with_warning(f"{ui.no_rows_for([symbol], table)} (range {start} to {end})")

trend = linear_trend(bars["close"])
bars["trend"] = trend.fitted if trend else None
first_open, last_close = float(bars["open"].iloc[0]), float(bars["close"].iloc[-1])
cols = st.columns(5)
cols[0].metric("Last close", f"{last_close:,.2f}")
cols[1].metric("High", f"{float(bars['high'].max()):,.2f}")
cols[2].metric("Low", f"{float(bars['low'].min()):,.2f}")
cols[3].metric("Change", ui.signed_pct((last_close - first_open) / first_open * 100))
cols[4].metric(
    "Trend per bar",
    f"{trend.slope_per_bar:+,.4f}" if trend else "n/a",
    help="Slope of the least-squares line.",
)
span = f"{start} to {end}" if granularity == "Daily" else f"trading date {end}"
title = f"{symbol} · {granularity.lower()} bars · {span}"
shown = bars[[x, "open", "high", "low", "close", "volume", "moving_average", "trend", "forming"]]
st.plotly_chart(charts.candlestick(shown, x, ma_window, title), width="stretch", key="ohlc_chart")
forming = bars[bars["forming"]]
if not forming.empty:
    bar = forming.iloc[-1]
    st.caption(
        f"The {bar['bar_start']:%H:%M} bar is still forming: gold was built before its minute ended, "
        f"so it holds {int(bar['tick_count'])} trades so far and its close may still move."
    )
st.caption(f"{len(bars)} bars from gold `{'ohlc_daily' if x == 'trade_date' else 'ohlc_1m'}`.")
ui.download_csv(shown, f"ohlc-{symbol}-{granularity.lower()}-{start}-{end}", key="ohlc_csv")
