"""Plotly figures built from gold frames; pure functions, so pages stay about layout."""

from __future__ import annotations

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not a dependency yet
import plotly.graph_objects as go  # type: ignore[import-untyped]  # plotly ships no type hints

_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "hovermode": "x unified", "height": 480}


def candlestick(bars: pd.DataFrame, x: str, ma_window: int, title: str) -> go.Figure:
    """Candles from `bars` (open/high/low/close, a `forming` flag, `moving_average` and `trend`
    columns); a forming bar is drawn apart, greyed, since its minute had not ended."""
    closed, forming = bars[~bars["forming"]], bars[bars["forming"]]
    figure = go.Figure(_candles(closed, x, "OHLC"))
    if not forming.empty:
        grey = {"line": {"color": "grey"}, "fillcolor": "rgba(128, 128, 128, 0.4)"}
        figure.add_trace(_candles(forming, x, "Forming bar", increasing=grey, decreasing=grey))
    figure.add_trace(go.Scatter(x=bars[x], y=bars["moving_average"], name=f"SMA {ma_window}", mode="lines"))
    if bars["trend"].notna().any():
        figure.add_trace(
            go.Scatter(x=bars[x], y=bars["trend"], name="Linear trend", mode="lines", line={"dash": "dash"})
        )
    figure.update_layout(title=title, xaxis_rangeslider_visible=False, yaxis_title="Price", **_LAYOUT)
    daily = x == "trade_date"
    # A date axis whose range spans the bars plus half a bar each side: with Plotly's own range a
    # single candle sits on an axis a fraction of a millisecond wide.
    bar = pd.Timedelta(days=1) if daily else pd.Timedelta(minutes=1)
    times = pd.to_datetime(bars[x])
    if not times.empty:
        figure.update_xaxes(type="date", range=[times.min() - bar / 2, times.max() + bar / 2])
    if times.nunique() == 1:
        # Plotly sizes candles by the smallest gap between two of them; with a single one it falls
        # back to one axis unit, a millisecond on a date axis. An invisible candle a bar away gives
        # it a bar's width.
        figure.add_trace(_spacer(bars.iloc[[0]], x, bar))
    if daily:
        # Daily bars exist on trading days only; hide weekends instead of drawing gaps.
        figure.update_xaxes(rangebreaks=[{"bounds": ["sat", "mon"]}])
    return figure


def _candles(bars: pd.DataFrame, x: str, name: str, **style: object) -> go.Candlestick:
    return go.Candlestick(
        x=bars[x],
        open=bars["open"],
        high=bars["high"],
        low=bars["low"],
        close=bars["close"],
        name=name,
        **style,
    )


def _spacer(bar: pd.DataFrame, x: str, length: pd.Timedelta) -> go.Candlestick:
    hidden = {"line": {"width": 0, "color": "rgba(0, 0, 0, 0)"}, "fillcolor": "rgba(0, 0, 0, 0)"}
    spacer = _candles(bar.assign(**{x: pd.to_datetime(bar[x]) - length}), x, "", increasing=hidden)
    spacer.update(decreasing=hidden, hoverinfo="skip", showlegend=False)
    return spacer


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


def correlation_heatmap(matrix: pd.DataFrame, title: str) -> go.Figure:
    """A symbol-by-symbol matrix of correlations in [-1, 1], each cell labelled with its value."""
    values = matrix.to_numpy(dtype=float)
    figure = go.Figure(
        go.Heatmap(
            z=values,
            x=[str(c) for c in matrix.columns],
            y=[str(i) for i in matrix.index],
            zmin=-1,
            zmax=1,
            zmid=0,
            colorscale="RdBu",
            text=[[f"{v:.2f}" if v == v else "" for v in row] for row in values],  # NaN != NaN: no label
            texttemplate="%{text}",
            colorbar={"title": {"text": "Correlation"}},
            hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>",
        )
    )
    figure.update_layout(title=title, **(_LAYOUT | {"hovermode": "closest"}))
    figure.update_yaxes(autorange="reversed")  # the first symbol on top, as in a table
    return figure
