"""A page's filters live in its URL: a link reproduces the view, and a bad or hostile link is ignored with
a notice that names what was dropped, never a traceback. AppTest against gold in the real local S3."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.s3

SYMBOLS = ["AAPL", "MSFT", "NVDA", "SPY"]
CHART_PAGES = ["ohlc", "returns", "cumulative", "comparison", "volatility", "correlation"]


@pytest.fixture
def gold(
    gold_factory: Callable[..., Any], publish_gold: Callable[..., None], dashboard_env: Callable[..., None]
) -> Any:
    data = gold_factory(SYMBOLS, days=90, minute_bars_per_symbol=60)
    publish_gold(data)
    dashboard_env(MARKETPULSE_WATCHLIST=",".join(SYMBOLS))
    return data


@pytest.fixture
def link(app_path: Path, gold: Any) -> Callable[..., AppTest]:
    def open_link(page: str, **params: str | list[str]) -> AppTest:
        """The page opened from a link with `params` in its query: a new session, as a browser's."""
        at = AppTest.from_file(str(app_path.parent / "pages" / f"{page}.py"), default_timeout=60)
        at.query_params = dict(params)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_link


def trading_dates(gold: Any) -> list[dt.date]:
    return sorted(gold.table("ohlc_daily", "AAPL")["trade_date"])


def link_notices(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if "from the link" in w.value]


def test_a_link_opens_the_ohlc_page_on_its_symbol_bars_window_and_dates(
    link: Callable[..., AppTest], gold: Any
) -> None:
    days = trading_dates(gold)
    at = link("ohlc", symbol="NVDA", ma="5", dates=[str(days[-30]), str(days[-1])])
    assert at.selectbox(key="symbol").value == "NVDA"
    assert at.number_input(key="ma").value == 5
    assert at.date_input(key="dates").value == (days[-30], days[-1])
    assert "30 bars from gold `ohlc_daily`." in [c.value for c in at.caption]
    assert not link_notices(at)
    assert at.query_params == {"symbol": "NVDA", "ma": "5", "dates": [str(days[-30]), str(days[-1])]}


@pytest.mark.parametrize(
    ("page", "extra"),
    [
        ("returns", {"kind": "Intraday (open to close)"}),
        ("cumulative", {}),
        ("comparison", {}),
        ("volatility", {"window": "60"}),
        ("correlation", {"kind": "Intraday (open to close)"}),
    ],
)
def test_a_link_opens_a_multi_symbol_page_on_its_symbols_and_dates(
    link: Callable[..., AppTest], gold: Any, page: str, extra: dict[str, str]
) -> None:
    days = trading_dates(gold)
    dates = [str(days[-25]), str(days[-1])]
    at = link(page, symbols=["SPY", "MSFT"], dates=dates, **extra)
    assert at.multiselect(key="symbols").value == ["SPY", "MSFT"]
    assert at.date_input(key="dates").value == (days[-25], days[-1])
    if "kind" in extra:
        assert at.radio(key="kind").value == extra["kind"]
    if "window" in extra:
        assert at.slider(key="window").value == 60
    assert not link_notices(at)
    assert at.query_params == {"symbols": ["SPY", "MSFT"], "dates": dates, **extra}


HOSTILE: list[tuple[str, str, str | list[str], str]] = [
    ("ohlc", "symbol", "ZZZZ", "not a symbol with data"),
    ("ohlc", "symbol", "<script>alert(1)</script>", "not a symbol with data"),
    ("ohlc", "bars", "weekly", "expected one of Daily, 1-minute"),
    ("ohlc", "ma", "1e308", "expected a whole number from 2 to 200"),
    ("ohlc", "ma", "-5", "expected a whole number from 2 to 200"),
    ("ohlc", "ma", "NaN", "expected a whole number from 2 to 200"),
    ("ohlc", "dates", "2026-13-45", "expected one or two dates"),
    ("ohlc", "dates", ["2001-01-01", "2099-12-31"], "expected one or two dates"),
    ("returns", "symbols", ["FOO", "BAR"], "not a symbol with data"),
    ("returns", "kind", "' or 1=1 --", "expected one of Close to close"),
    ("cumulative", "dates", ["yesterday", "today"], "expected one or two dates"),
    ("comparison", "dates", ["2026-01-01"] * 5, "expected one or two dates"),
    ("volatility", "window", "99999999999999999999", "expected a whole number from 5 to 60"),
    ("volatility", "window", "4.5", "expected a whole number from 5 to 60"),
    ("correlation", "symbols", "X" * 10_000, "not a symbol with data"),
]


@pytest.mark.parametrize(("page", "key", "value", "why"), HOSTILE, ids=lambda v: str(v)[:24])
def test_a_bad_or_hostile_link_value_is_ignored_with_a_notice_and_the_default_is_shown(
    link: Callable[..., AppTest], page: str, key: str, value: str | list[str], why: str
) -> None:
    at = link(page, **{key: value})
    (notice,) = link_notices(at)
    assert notice.startswith(f"Ignored `{key}=")
    assert why in notice
    assert len(notice) < 400, "a long value is cut in the notice"
    assert key not in at.query_params, "Streamlit drops what its widget cannot take from the URL"
    assert at.get("plotly_chart"), "the page still draws its chart with the default"


def test_a_link_keeps_its_valid_symbols_and_names_the_unknown_ones(link: Callable[..., AppTest]) -> None:
    at = link("comparison", symbols=["MSFT", "NOPE", "AAPL"])
    assert at.multiselect(key="symbols").value == ["MSFT", "AAPL"]
    (notice,) = link_notices(at)
    assert "`symbols=NOPE`" in notice
    assert at.query_params["symbols"] == ["MSFT", "AAPL"]


@pytest.mark.parametrize("page", CHART_PAGES)
def test_every_chart_page_offers_a_date_range_and_a_csv_download(
    link: Callable[..., AppTest], gold: Any, page: str
) -> None:
    at = link(page)
    days = trading_dates(gold)
    picked = at.date_input(key="dates").value
    assert picked[-1] == days[-1]
    assert picked[0] <= days[0] + dt.timedelta(days=60), "the default range is the whole history"
    (button,) = at.get("download_button")
    assert button.proto.label == "Download CSV"
