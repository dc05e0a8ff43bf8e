"""Plotly figures built from gold frames; pure functions, so pages stay about layout."""

from __future__ import annotations

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not a dependency yet
import plotly.graph_objects as go  # type: ignore[import-untyped]  # plotly ships no type hints

from marketpulse.dashboard.analytics import Trend

_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "hovermode": "x unified", "height": 480}


def candlestick(bars: pd.DataFrame, x: str, ma_window: int, trend: Trend | None, title: str) -> go.Figure:
    figure = go.Figure(
        go.Candlestick(
            x=bars[x],
            open=bars["open"],
            high=bars["high"],
            low=bars["low"],
            close=bars["close"],
            name="OHLC",
        )
    )
    figure.add_trace(go.Scatter(x=bars[x], y=bars["moving_average"], name=f"SMA {ma_window}", mode="lines"))
    if trend is not None:
        figure.add_trace(
            go.Scatter(x=bars[x], y=trend.fitted, name="Linear trend", mode="lines", line={"dash": "dash"})
        )
    figure.update_layout(title=title, xaxis_rangeslider_visible=False, yaxis_title="Price", **_LAYOUT)
    if x == "trade_date":
        # Daily bars exist on trading days only; hide weekends instead of drawing gaps.
        figure.update_xaxes(rangebreaks=[{"bounds": ["sat", "mon"]}])
    return figure


def returns_histogram(returns: pd.DataFrame, column: str, title: str) -> go.Figure:
    figure = go.Figure()
    for symbol, group in returns.groupby("symbol", sort=True):
        figure.add_trace(go.Histogram(x=group[column], name=str(symbol), opacity=0.6, nbinsx=50))
    figure.update_layout(
        title=title, barmode="overlay", xaxis_title="Daily return (%)", yaxis_title="Days", **_LAYOUT
    )
    figure.update_layout(hovermode="closest")
    return figure


def lines(frame: pd.DataFrame, y: str, title: str, y_title: str, reference: float | None = None) -> go.Figure:
    figure = go.Figure()
    for symbol, group in frame.groupby("symbol", sort=True):
        figure.add_trace(go.Scatter(x=group["trade_date"], y=group[y], name=str(symbol), mode="lines"))
    if reference is not None:
        figure.add_hline(y=reference, line={"dash": "dot", "color": "grey"})
    figure.update_layout(title=title, yaxis_title=y_title, **_LAYOUT)
    return figure
