"""Every page renders the gold it is given: AppTest against gold Parquet in the real local S3 server."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest
import streamlit as st
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.s3

SYMBOLS = ["AAPL", "MSFT", "NVDA"]


@pytest.fixture
def gold(gold_factory: Callable[..., Any], publish_gold: Callable[..., None]) -> Any:
    data = gold_factory(SYMBOLS, days=90, minute_bars_per_symbol=120)
    publish_gold(data)
    return data


@pytest.fixture
def offered(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[bytes, str | None]]:
    """The files download buttons offer, by file id: AppTest's media storage lives for one run only."""
    files: dict[str, tuple[bytes, str | None]] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def keep(self: MemoryMediaFileStorage, data: Any, mimetype: str, kind: Any, filename: Any = None) -> str:
        file_id = original(self, data, mimetype, kind, filename)
        files[file_id] = (data, filename)
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    return files


@pytest.fixture
def app(
    app_path: Path,
    dashboard_env: Callable[..., None],
    gold: Any,
    offered: dict[str, tuple[bytes, str | None]],
) -> AppTest:
    dashboard_env(MARKETPULSE_WATCHLIST=",".join(SYMBOLS))
    at = AppTest.from_file(str(app_path), default_timeout=60)
    at.run()
    assert not at.exception
    return at


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_link(app_path: Path, page: str, **params: str | list[str]) -> AppTest:
    """A page opened from a link with `params` in its query: a new session, as a browser's would be."""
    at = AppTest.from_file(str(app_path.parent / "pages" / f"{page}.py"), default_timeout=60)
    at.query_params = dict(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def plotly_array(value: Any) -> np.ndarray:
    """A Plotly JSON array, plain or in its typed-array encoding ({"dtype", "bdata", "shape"})."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.array(value, dtype=float)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def table_with(at: AppTest, column: str) -> Any:
    """The dataframe that has `column` (AppTest does not look dataframes up by key)."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(found) == 1, f"{len(found)} dataframes with a {column!r} column"
    return found[0]


def plotly_charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def figure(at: AppTest) -> dict[str, Any]:
    (chart,) = at.get("plotly_chart")
    spec: dict[str, Any] = json.loads(chart.proto.spec)
    return spec


def chart_traces(at: AppTest) -> list[tuple[str, str]]:
    """(type, name) of every trace in the page's one Plotly figure."""
    return [(t.get("type", ""), t.get("name", "")) for t in figure(at)["data"]]


def csv_offered(at: AppTest, offered: dict[str, tuple[bytes, str | None]], key: str) -> pd.DataFrame:
    """The CSV behind the page's download button, as a frame."""
    (button,) = [b for b in at.get("download_button") if b.proto.id.endswith(key)]
    file_id = button.proto.url.rsplit("/", 1)[-1].split(".")[0]
    data, filename = offered[file_id]
    assert filename is not None
    assert filename.endswith(".csv")
    return pd.read_csv(io.BytesIO(data))


def warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def test_the_ohlc_page_shows_all_history_as_daily_candles_on_a_date_axis_with_trend_and_range(
    app: AppTest, gold: Any, offered: dict[str, tuple[bytes, str | None]]
) -> None:
    at = app
    assert at.selectbox(key="symbol").options == SYMBOLS
    daily = gold.table("ohlc_daily", "AAPL")
    shown = metrics(at)
    assert shown["Last close"] == f"{daily['close'].iloc[-1]:,.2f}"
    assert shown["High"] == f"{daily['high'].max():,.2f}"
    assert shown["Low"] == f"{daily['low'].min():,.2f}"
    slope = np.polyfit(np.arange(len(daily)), daily["close"].to_numpy(), 1)[0]
    assert shown["Trend per bar"] == f"{slope:+,.4f}"
    assert chart_traces(at) == [("candlestick", "OHLC"), ("scatter", "SMA 20"), ("scatter", "Linear trend")]
    assert "90 bars from gold `ohlc_daily`." in [c.value for c in at.caption]
    axis = figure(at)["layout"]["xaxis"]
    assert axis["type"] == "date"
    first, last = pd.Timestamp(daily["trade_date"].iloc[0]), pd.Timestamp(daily["trade_date"].iloc[-1])
    assert [pd.Timestamp(t) for t in axis["range"]] == [
        first - pd.Timedelta(hours=12),
        last + pd.Timedelta(hours=12),
    ]
    bars = csv_offered(at, offered, "ohlc_csv")
    assert len(bars) == 90
    assert bars["close"].tolist() == pytest.approx(daily["close"].tolist())
    assert bars["moving_average"].iloc[19] == pytest.approx(daily["close"].iloc[:20].mean())

    last = daily["trade_date"].iloc[-1]
    ten_days = daily[daily["trade_date"] >= daily["trade_date"].iloc[-10]]
    at.date_input(key="dates").set_value((ten_days["trade_date"].iloc[0], last)).run()
    assert metrics(at)["High"] == f"{ten_days['high'].max():,.2f}"
    assert metrics(at)["Low"] == f"{ten_days['low'].min():,.2f}"

    at.selectbox(key="symbol").select("MSFT").run()
    assert metrics(at)["Last close"] == f"{gold.table('ohlc_daily', 'MSFT')['close'].iloc[-1]:,.2f}"


def test_a_single_daily_candle_gets_a_day_wide_axis_not_a_fraction_of_a_millisecond(
    app_path: Path,
    dashboard_env: Callable[..., None],
    gold_factory: Callable[..., Any],
    publish_gold: Callable[..., None],
) -> None:
    publish_gold(gold_factory(SYMBOLS, days=1, minute_bars_per_symbol=10))
    dashboard_env()
    at = AppTest.from_file(str(app_path), default_timeout=60).run()
    assert not at.exception
    spec = figure(at)
    start, end = (pd.Timestamp(t) for t in spec["layout"]["xaxis"]["range"])
    assert end - start == pd.Timedelta(days=1)
    # The candle is a day wide: an invisible one a day before sets Plotly's candle spacing.
    candle, spacer = (t for t in spec["data"] if t["type"] == "candlestick")
    assert pd.Timestamp(candle["x"][0]) - pd.Timestamp(spacer["x"][0]) == pd.Timedelta(days=1)
    assert (spacer["showlegend"], spacer["hoverinfo"]) == (False, "skip")


def test_one_minute_bars_show_the_last_trading_day_and_mark_the_bar_still_forming(
    app_path: Path,
    dashboard_env: Callable[..., None],
    gold_factory: Callable[..., Any],
    publish_gold: Callable[..., None],
    offered: dict[str, tuple[bytes, str | None]],
) -> None:
    # Bars at 15:00..15:59 New York time; gold built 20 s into the 15:59 bar, so that bar is forming.
    last_bar = dt.datetime(2026, 12, 2, 20, 59, tzinfo=dt.UTC)
    data = gold_factory(SYMBOLS, days=30, minute_bars_per_symbol=60, last_bar=last_bar)
    publish_gold(data, last_bar + dt.timedelta(seconds=20))
    dashboard_env()
    at = open_link(app_path, "ohlc", symbol="MSFT", bars="1-minute")
    assert at.radio(key="bars").value == "1-minute"
    minute = data.table("ohlc_1m", "MSFT")
    assert metrics(at)["Last close"] == f"{minute['close'].iloc[-1]:,.2f}"
    assert metrics(at)["High"] == f"{minute['high'].max():,.2f}"
    assert [t for t, _ in chart_traces(at)] == ["candlestick", "candlestick", "scatter", "scatter"]
    assert chart_traces(at)[1] == ("candlestick", "Forming bar")
    captions = [c.value for c in at.caption]
    assert "1-minute bars of trading date 2026-12-02" in captions[0]
    assert any(c.startswith("The 20:59 bar is still forming") for c in captions), captions
    bars = csv_offered(at, offered, "ohlc_csv")
    assert len(bars) == 60
    assert bars["forming"].tolist() == [False] * 59 + [True]

    # Gold built after the minute ended: every bar is closed.
    publish_gold(data, last_bar + dt.timedelta(minutes=1, seconds=5))
    st.cache_data.clear()
    st.cache_resource.clear()
    at.run()
    assert [name for _, name in chart_traces(at)] == ["OHLC", "SMA 20", "Linear trend"]


def test_the_returns_page_shows_a_histogram_and_summary_statistics_that_match_gold(
    app: AppTest, gold: Any, offered: dict[str, tuple[bytes, str | None]]
) -> None:
    at = open_page(app, "returns")
    assert at.multiselect(key="symbols").value == SYMBOLS
    assert plotly_charts(at) == 1
    summary = table_with(at, "mean_pct").set_index("symbol")
    returns = gold.table("returns_daily")
    for symbol, group in returns.groupby("symbol"):
        r = group["close_to_close_return_pct"].dropna()
        assert summary.loc[symbol, "days"] == len(r)
        assert summary.loc[symbol, "mean_pct"] == pytest.approx(r.mean())
        assert summary.loc[symbol, "stdev_pct"] == pytest.approx(r.std(ddof=1))
        assert summary.loc[symbol, "max_pct"] == pytest.approx(r.max())
    shown = csv_offered(at, offered, "returns_csv")
    assert list(shown.columns) == ["symbol", "trade_date", "close_to_close_return_pct"]
    assert len(shown) == len(returns)

    at.radio(key="kind").set_value("Intraday (open to close)").run()
    summary = table_with(at, "mean_pct").set_index("symbol")
    intraday = gold.table("returns_daily", "NVDA")["intraday_return_pct"]
    assert summary.loc["NVDA", "mean_pct"] == pytest.approx(intraday.mean())
    assert summary.loc["NVDA", "days"] == len(intraday)


def test_the_cumulative_page_shows_each_symbols_growth_since_its_first_day(
    app: AppTest, gold: Any, offered: dict[str, tuple[bytes, str | None]]
) -> None:
    at = open_page(app, "cumulative")
    assert plotly_charts(at) == 1
    shown = metrics(at)
    for symbol in SYMBOLS:
        expected = gold.table("returns_cumulative", symbol)["cumulative_return_pct"].iloc[-1]
        assert shown[symbol] == f"{expected:+.2f} %"

    # Re-based to a later start: growth of the close since that day.
    daily = gold.table("ohlc_daily", "AAPL")
    start = daily["trade_date"].iloc[-20]
    at.date_input(key="dates").set_value((start, daily["trade_date"].iloc[-1])).run()
    base = daily[daily["trade_date"] >= start]["close"]
    assert metrics(at)["AAPL"] == f"{(base.iloc[-1] / base.iloc[0] - 1) * 100:+.2f} %"
    csv = csv_offered(at, offered, "cumulative_csv")
    aapl = csv[csv["symbol"] == "AAPL"]
    assert len(aapl) == 20
    assert aapl["cumulative_return_pct"].iloc[0] == pytest.approx(0.0, abs=1e-9)
    assert aapl["cumulative_return_pct"].iloc[-1] == pytest.approx((base.iloc[-1] / base.iloc[0] - 1) * 100)


def test_the_comparison_page_ranks_symbols_by_their_index_and_rebases_it_to_the_range(
    app: AppTest, gold: Any, offered: dict[str, tuple[bytes, str | None]]
) -> None:
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

    dates = sorted(index["trade_date"].unique())
    at.date_input(key="dates").set_value((dates[-30], dates[-1])).run()
    csv = csv_offered(at, offered, "comparison_csv")
    assert set(csv["symbol"]) == set(SYMBOLS)
    for symbol, group in csv.groupby("symbol"):
        closes = gold.table("ohlc_daily", str(symbol))["close"].iloc[-30:].to_numpy()
        assert group["index_value"].to_numpy() == pytest.approx(100 * closes / closes[0])
    assert "Re-based to" in at.caption[0].value


def test_the_volatility_page_uses_gold_windows_and_computes_others_from_log_returns(
    app: AppTest, gold: Any, offered: dict[str, tuple[bytes, str | None]]
) -> None:
    at = open_page(app, "volatility")
    slider = at.slider(key="window")
    assert (slider.min, slider.max, slider.value) == (5, 60, 20)
    assert plotly_charts(at) == 1
    assert "from gold" in at.caption[0].value
    vol = gold.table("volatility_rolling")
    for symbol in SYMBOLS:
        rows = vol[(vol["symbol"] == symbol) & (vol["window_days"] == 20)]
        assert metrics(at)[symbol] == f"{rows['annualized_volatility'].iloc[-1] * 100:.2f} %"
    csv = csv_offered(at, offered, "volatility_csv")
    assert len(csv) == len(vol[vol["window_days"] == 20])
    assert set(csv["window_days"]) == {20}

    at.slider(key="window").set_value(10).run()
    assert not at.exception
    assert "computed here" in at.caption[0].value
    assert "5, 20, 60" in at.caption[0].value
    for symbol in SYMBOLS:
        logs = gold.table("returns_daily", symbol)["log_return"].to_numpy()[-10:]
        expected = np.std(logs, ddof=1) * math.sqrt(252) * 100
        assert metrics(at)[symbol] == f"{expected:.2f} %"

    # The range chooses the dates drawn; each window still spans the days before it.
    days = sorted(vol["trade_date"].unique())
    at.date_input(key="dates").set_value((days[-5], days[-1])).run()
    csv = csv_offered(at, offered, "volatility_csv")
    assert len(csv) == 5 * len(SYMBOLS)


def test_the_correlation_page_shows_the_pandas_correlation_of_daily_returns_as_a_heatmap(
    app: AppTest, gold: Any, offered: dict[str, tuple[bytes, str | None]]
) -> None:
    at = open_page(app, "correlation")
    returns = gold.table("returns_daily")
    wide = returns.pivot(index="trade_date", columns="symbol", values="close_to_close_return_pct")
    expected = wide.corr()
    (heatmap,) = figure(at)["data"]
    assert heatmap["type"] == "heatmap"
    assert heatmap["x"] == SYMBOLS
    assert heatmap["y"] == SYMBOLS
    z = plotly_array(heatmap["z"])
    assert z == pytest.approx(expected.loc[SYMBOLS, SYMBOLS].to_numpy())
    assert np.diag(z) == pytest.approx([1.0, 1.0, 1.0])
    csv = csv_offered(at, offered, "correlation_csv").set_index("symbol")
    assert csv.loc[SYMBOLS, SYMBOLS].to_numpy() == pytest.approx(expected.loc[SYMBOLS, SYMBOLS].to_numpy())
    assert "over the 89 trading days" in at.caption[0].value

    at.multiselect(key="symbols").set_value(["AAPL"]).run()
    assert "at least two symbols" in at.info[0].value


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


def test_the_health_page_measures_tick_to_gold_from_the_newest_tick_and_shows_the_forming_bar(
    app_path: Path,
    dashboard_env: Callable[..., None],
    gold_factory: Callable[..., Any],
    publish_gold: Callable[..., None],
) -> None:
    last_bar = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=1)
    data = gold_factory(SYMBOLS, days=30, minute_bars_per_symbol=30, last_bar=last_bar)
    # The newest tick happened 30 s into the bar and was sent 50 ms later; gold built 3.2 s after that.
    published = last_bar + dt.timedelta(seconds=33.25)
    publish_gold(data, published)
    dashboard_env(MARKETPULSE_WATCHLIST=",".join(SYMBOLS))
    at = AppTest.from_file(str(app_path), default_timeout=60).run()
    at = open_page(at, "health")
    assert not at.error
    shown = metrics(at)
    assert shown["Gold tables"] == "7"
    assert shown["Gold rows"] == f"{sum(len(f) for f in data.tables.values()):,}"
    assert shown["Stale symbols"] == "0 / 3"
    assert shown["Tick → gold"] == "3.2 s"
    rows = table_with(at, "rows").set_index("table")["rows"].to_dict()
    assert rows == {name: len(frame) for name, frame in data.tables.items()}
    freshness = table_with(at, "last_bar_start").set_index("symbol")
    latest = data.table("latest_ticks").set_index("symbol")
    for symbol in SYMBOLS:
        assert freshness.loc[symbol, "status"] == "fresh"
        assert freshness.loc[symbol, "last_event_time"] == latest.loc[symbol, "last_event_time"]
        assert freshness.loc[symbol, "tick_to_gold_s"] == pytest.approx(3.2)
        quote = pd.Timestamp(data.quotes[symbol]["time"])  # the fixture's quote is the bar's start
        assert freshness.loc[symbol, "gold_behind_quotes_s"] == pytest.approx(
            (quote - latest.loc[symbol, "last_event_time"]).total_seconds()
        )
        ticks = int(data.table("ohlc_1m", symbol)["tick_count"].iloc[-1])
        assert freshness.loc[symbol, "last_bar"] == f"forming ({ticks} trades so far)"
    assert "Refreshes every 10 s" in at.caption[0].value


def test_the_health_page_falls_back_to_the_newest_bar_for_gold_without_latest_ticks(
    app_path: Path,
    dashboard_env: Callable[..., None],
    gold_factory: Callable[..., Any],
    publish_gold: Callable[..., None],
) -> None:
    publish_gold(gold_factory(SYMBOLS, days=30, minute_bars_per_symbol=30, latest_ticks=False))
    dashboard_env()
    at = AppTest.from_file(str(app_path), default_timeout=60).run()
    at = open_page(at, "health")
    assert at.success[0].value.startswith("Fresh")
    assert metrics(at)["Tick → gold"] == "n/a"
    assert metrics(at)["Gold tables"] == "6"
    assert any("no `latest_ticks` yet" in c.value for c in at.caption)
    freshness = table_with(at, "last_bar_start").set_index("symbol")
    assert freshness["status"].tolist() == ["fresh"] * 3
    assert freshness["last_bar"].tolist() == ["closed"] * 3


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
