"""OHLC candlesticks for one symbol, with a moving average and a least-squares trend line."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from marketpulse.dashboard import charts, data, ui
from marketpulse.dashboard.analytics import linear_trend, moving_average

MAX_MINUTE_DAYS = 5

settings = ui.settings()
st.title("OHLC")

with ui.explain_data_errors():
    symbols = data.symbols(settings)
if not symbols:
    ui.stop_with_info(ui.empty_table("ohlc_daily"))

left, middle, right = st.columns([2, 2, 1])
symbol = left.selectbox("Symbol", symbols, key="ohlc_symbol")
granularity = middle.radio("Bars", ["Daily", "1-minute"], horizontal=True, key="ohlc_granularity")
ma_window = int(right.number_input("Moving average (bars)", 2, 200, 20, key="ohlc_ma_window"))

with ui.explain_data_errors():
    daily = data.load(settings, "ohlc_daily", (symbol,))
if daily.empty:
    ui.stop_with_warning(ui.no_rows_for([symbol], "ohlc_daily"))

first, last = ui.first_last_dates(daily)
start, end = ui.pick_date_range(first, last, key="ohlc_range")

if granularity == "Daily":
    x = "trade_date"
    # Averaged over the whole history first, so the line does not start late in the chosen range.
    daily["moving_average"] = moving_average(daily["close"], ma_window)
    bars = ui.in_range(daily, x, start, end).reset_index(drop=True)
else:
    x = "bar_start"
    # A trading day has ~390 one-minute bars: more than a few days is unreadable and slow to draw.
    if (end - start).days >= MAX_MINUTE_DAYS:
        start = end - dt.timedelta(days=MAX_MINUTE_DAYS - 1)
        st.caption(f"1-minute bars: the last {MAX_MINUTE_DAYS} days of the range, from {start}.")
    with ui.explain_data_errors():
        bars = data.load(settings, "ohlc_1m", (symbol,), start, end).reset_index(drop=True)
    bars["moving_average"] = moving_average(bars["close"], ma_window)
if bars.empty:
    table = "ohlc_daily" if granularity == "Daily" else "ohlc_1m"
    ui.stop_with_warning(f"{ui.no_rows_for([symbol], table)} (range {start} to {end})")

trend = linear_trend(bars["close"])
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
st.plotly_chart(
    charts.candlestick(
        bars, x, ma_window, trend, f"{symbol} · {granularity.lower()} bars · {start} to {end}"
    ),
    width="stretch",
    key="ohlc_chart",
)
st.caption(f"{len(bars)} bars from gold `{'ohlc_daily' if x == 'trade_date' else 'ohlc_1m'}`.")
