"""Every page renders the gold it is given: AppTest against gold Parquet in the real local S3 server."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.s3

SYMBOLS = ["AAPL", "MSFT", "NVDA"]


@pytest.fixture
def gold(gold_factory: Callable[..., Any], publish_gold: Callable[..., None]) -> Any:
    data = gold_factory(SYMBOLS, days=90, minute_bars_per_symbol=120)
    publish_gold(data)
    return data


@pytest.fixture
def app(app_path: Path, dashboard_env: Callable[..., None], gold: Any) -> AppTest:
    dashboard_env(MARKETPULSE_WATCHLIST=",".join(SYMBOLS))
    at = AppTest.from_file(str(app_path), default_timeout=60)
    at.run()
    assert not at.exception
    return at


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def table_with(at: AppTest, column: str) -> Any:
    """The dataframe that has `column` (AppTest does not look dataframes up by key)."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(found) == 1, f"{len(found)} dataframes with a {column!r} column"
    return found[0]


def plotly_charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def chart_traces(at: AppTest) -> list[tuple[str, str]]:
    """(type, name) of every trace in the page's one Plotly figure."""
    (chart,) = at.get("plotly_chart")
    figure = json.loads(chart.proto.spec)
    return [(t.get("type", ""), t.get("name", "")) for t in figure["data"]]


def test_the_ohlc_page_shows_the_gold_bars_of_the_chosen_symbol_with_trend_and_range(
    app: AppTest, gold: Any
) -> None:
    at = app
    assert at.selectbox(key="ohlc_symbol").options == SYMBOLS
    daily = gold.table("ohlc_daily", "AAPL")
    shown = metrics(at)
    assert shown["Last close"] == f"{daily['close'].iloc[-1]:,.2f}"
    assert shown["High"] == f"{daily['high'].max():,.2f}"
    assert shown["Low"] == f"{daily['low'].min():,.2f}"
    slope = np.polyfit(np.arange(len(daily)), daily["close"].to_numpy(), 1)[0]
    assert shown["Trend per bar"] == f"{slope:+,.4f}"
    assert chart_traces(at) == [("candlestick", "OHLC"), ("scatter", "SMA 20"), ("scatter", "Linear trend")]

    last = daily["trade_date"].iloc[-1]
    ten_days = daily[daily["trade_date"] >= daily["trade_date"].iloc[-10]]
    at.date_input(key="ohlc_range").set_value((ten_days["trade_date"].iloc[0], last)).run()
    assert metrics(at)["High"] == f"{ten_days['high'].max():,.2f}"
    assert metrics(at)["Low"] == f"{ten_days['low'].min():,.2f}"

    at.selectbox(key="ohlc_symbol").select("MSFT").run()
    assert metrics(at)["Last close"] == f"{gold.table('ohlc_daily', 'MSFT')['close'].iloc[-1]:,.2f}"

    at.radio(key="ohlc_granularity").set_value("1-minute").run()
    assert not at.exception
    minute = gold.table("ohlc_1m", "MSFT")
    assert metrics(at)["Last close"] == f"{minute['close'].iloc[-1]:,.2f}"
    assert metrics(at)["High"] == f"{minute['high'].max():,.2f}"
    assert "the last 5 days of the range" in at.caption[0].value
    assert [t for t, _ in chart_traces(at)] == ["candlestick", "scatter", "scatter"]


def test_the_returns_page_shows_a_histogram_and_summary_statistics_that_match_gold(
    app: AppTest, gold: Any
) -> None:
    at = open_page(app, "returns")
    assert at.multiselect(key="returns_symbols").value == SYMBOLS
    assert plotly_charts(at) == 1
    summary = table_with(at, "mean_pct").set_index("symbol")
    returns = gold.table("returns_daily")
    for symbol, group in returns.groupby("symbol"):
        r = group["close_to_close_return_pct"].dropna()
        assert summary.loc[symbol, "days"] == len(r)
        assert summary.loc[symbol, "mean_pct"] == pytest.approx(r.mean())
        assert summary.loc[symbol, "stdev_pct"] == pytest.approx(r.std(ddof=1))
        assert summary.loc[symbol, "max_pct"] == pytest.approx(r.max())

    at.radio(key="returns_kind").set_value("Intraday (open to close)").run()
    summary = table_with(at, "mean_pct").set_index("symbol")
    intraday = gold.table("returns_daily", "NVDA")["intraday_return_pct"]
    assert summary.loc["NVDA", "mean_pct"] == pytest.approx(intraday.mean())
    assert summary.loc["NVDA", "days"] == len(intraday)


def test_the_cumulative_page_shows_each_symbols_growth_since_its_first_day(app: AppTest, gold: Any) -> None:
    at = open_page(app, "cumulative")
    assert plotly_charts(at) == 1
    shown = metrics(at)
    for symbol in SYMBOLS:
        expected = gold.table("returns_cumulative", symbol)["cumulative_return_pct"].iloc[-1]
        assert shown[symbol] == f"{expected:+.2f} %"

    # Re-based to a later start: growth of the close since that day.
    daily = gold.table("ohlc_daily", "AAPL")
    start = daily["trade_date"].iloc[-20]
    at.date_input(key="cumulative_range").set_value((start, daily["trade_date"].iloc[-1])).run()
    base = daily[daily["trade_date"] >= start]["close"]
    assert metrics(at)["AAPL"] == f"{(base.iloc[-1] / base.iloc[0] - 1) * 100:+.2f} %"


def test_the_comparison_page_ranks_symbols_by_their_latest_base_100_index(app: AppTest, gold: Any) -> None:
    at = open_page(app, "comparison")
    assert plotly_charts(at) == 1
    ranking = table_with(at, "rank")
    index = gold.table("index_base100")
    latest = index.sort_values("trade_date").groupby("symbol").tail(1)
    expected = latest.sort_values("index_value", ascending=False)["symbol"].tolist()
    assert ranking["symbol"].tolist() == expected
    assert ranking["rank"].tolist() == [1, 2, 3]
    for row in ranking.itertuples():
        assert row.index_value == pytest.approx(latest.set_index("symbol").loc[row.symbol, "index_value"])


def test_the_volatility_page_uses_gold_windows_and_computes_others_from_log_returns(
    app: AppTest, gold: Any
) -> None:
    at = open_page(app, "volatility")
    slider = at.slider(key="volatility_window")
    assert (slider.min, slider.max, slider.value) == (5, 60, 20)
    assert plotly_charts(at) == 1
    assert "from gold" in at.caption[0].value
    vol = gold.table("volatility_rolling")
    for symbol in SYMBOLS:
        rows = vol[(vol["symbol"] == symbol) & (vol["window_days"] == 20)]
        assert metrics(at)[symbol] == f"{rows['annualized_volatility'].iloc[-1] * 100:.2f} %"

    at.slider(key="volatility_window").set_value(10).run()
    assert not at.exception
    assert "computed here" in at.caption[0].value
    assert "5, 20, 60" in at.caption[0].value
    for symbol in SYMBOLS:
        logs = gold.table("returns_daily", symbol)["log_return"].to_numpy()[-10:]
        expected = np.std(logs, ddof=1) * math.sqrt(252) * 100
        assert metrics(at)[symbol] == f"{expected:.2f} %"


def test_the_live_page_shows_the_archives_latest_quotes_in_a_refreshing_fragment(
    app: AppTest, gold: Any
) -> None:
    at = open_page(app, "live")
    shown = {m.label: (m.value, m.delta) for m in at.metric}
    for symbol, quote in gold.quotes.items():
        assert shown[symbol] == (f"{quote['price']:,.2f}", f"{quote['change_pct']:+.2f} %")
    table = table_with(at, "change_pct")
    assert table["symbol"].tolist() == SYMBOLS
    assert "Refreshes every 2 s" in at.caption[0].value


def test_the_health_page_reports_fresh_gold_with_row_counts_and_per_symbol_freshness(
    app: AppTest, gold: Any
) -> None:
    at = open_page(app, "health")
    assert at.success[0].value.startswith("Fresh")
    assert not at.error
    assert not at.warning
    shown = metrics(at)
    assert shown["Gold tables"] == "6"
    assert shown["Gold rows"] == f"{sum(len(f) for f in gold.tables.values()):,}"
    assert shown["Stale symbols"] == "0 / 3"
    rows = table_with(at, "rows").set_index("table")["rows"].to_dict()
    assert rows == {name: len(frame) for name, frame in gold.tables.items()}
    freshness = table_with(at, "last_bar_start").set_index("symbol")
    for symbol in SYMBOLS:
        assert freshness.loc[symbol, "status"] == "fresh"
        expected_bar = gold.table("ohlc_1m", symbol)["bar_start"].iloc[-1]
        assert freshness.loc[symbol, "last_bar_start"] == expected_bar


def test_the_health_page_raises_a_stale_banner_when_gold_was_published_long_ago(
    app_path: Path,
    dashboard_env: Callable[..., None],
    gold_factory: Callable[..., Any],
    publish_gold: Callable[..., None],
) -> None:
    two_hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    publish_gold(
        gold_factory(SYMBOLS, days=30, minute_bars_per_symbol=30, last_bar=two_hours_ago), two_hours_ago
    )
    dashboard_env()
    at = AppTest.from_file(str(app_path), default_timeout=60).run()
    at = open_page(at, "health")
    assert "Gold is stale" in at.error[0].value
    assert "2.0 h ago" in at.error[0].value
    assert metrics(at)["Stale symbols"] == "3 / 3"
