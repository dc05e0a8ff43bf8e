"""A wrong bucket, refused credentials, nothing published, empty tables and a symbol without rows
each show a message that says what is wrong, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from marketpulse_dev.localenv.process import free_port

pytestmark = pytest.mark.s3

PAGES = ["ohlc", "returns", "cumulative", "comparison", "volatility", "correlation", "live", "health"]


def run_page(app_path: Path, page: str, *, charts: bool = False) -> AppTest:
    at = AppTest.from_file(str(app_path), default_timeout=60).run()
    if page != "ohlc":
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    if not charts:
        assert not at.get("plotly_chart")
    return at


@pytest.mark.parametrize("page", PAGES)
def test_a_bucket_that_does_not_exist_is_named_in_an_error_on_every_page(
    app_path: Path, dashboard_env: Callable[..., None], page: str
) -> None:
    dashboard_env(MARKETPULSE_BUCKET="no-such-bucket-here")
    at = run_page(app_path, page)
    message = at.error[0].value
    assert "MARKETPULSE_BUCKET" in message
    assert "'no-such-bucket-here' does not exist" in message


@pytest.mark.parametrize("page", ["ohlc", "live", "health"])
def test_refused_s3_credentials_name_the_variables_to_fix(
    app_path: Path, dashboard_env: Callable[..., None], page: str
) -> None:
    dashboard_env(S3_SECRET_KEY="not-the-secret")
    at = run_page(app_path, page)
    assert "S3_ACCESS_KEY / S3_SECRET_KEY" in at.error[0].value
    assert "refused the credentials" in at.error[0].value


def test_an_unreachable_s3_endpoint_is_named_in_an_error(
    app_path: Path, dashboard_env: Callable[..., None]
) -> None:
    dashboard_env(S3_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    at = run_page(app_path, "ohlc")
    assert "S3_ENDPOINT: cannot reach" in at.error[0].value


def test_an_unset_bucket_is_a_configuration_warning(
    app_path: Path, dashboard_env: Callable[..., None]
) -> None:
    dashboard_env(MARKETPULSE_BUCKET="")
    at = run_page(app_path, "ohlc")
    assert "MARKETPULSE_BUCKET is not set" in at.warning[0].value


def test_an_invalid_setting_is_named_before_any_page_runs(
    app_path: Path, dashboard_env: Callable[..., None]
) -> None:
    dashboard_env(MARKETPULSE_WAREHOUSE="oracle")
    at = AppTest.from_file(str(app_path), default_timeout=60).run()
    assert not at.exception
    assert "`MARKETPULSE_WAREHOUSE`" in at.error[0].value


@pytest.mark.parametrize("page", PAGES)
def test_a_bucket_where_nothing_was_published_yet_says_so_on_every_page(
    app_path: Path, dashboard_env: Callable[..., None], page: str
) -> None:
    dashboard_env()
    at = run_page(app_path, page)
    assert not at.error
    message = at.info[0].value
    assert "latest/quotes.json" in message if page == "live" else "gold/_manifest.json" in message


@pytest.mark.parametrize("page", ["ohlc", "returns", "cumulative", "comparison", "volatility", "correlation"])
def test_published_but_empty_gold_tables_say_that_no_rows_exist_yet(
    app_path: Path,
    dashboard_env: Callable[..., None],
    gold_factory: Callable[..., Any],
    publish_gold: Callable[..., None],
    page: str,
) -> None:
    publish_gold(gold_factory(["AAPL"], days=5, minute_bars_per_symbol=5).emptied())
    dashboard_env()
    at = run_page(app_path, page)
    assert "has no rows yet" in at.info[0].value


def test_the_health_page_of_empty_gold_shows_zero_rows_and_a_stale_banner(
    app_path: Path,
    dashboard_env: Callable[..., None],
    gold_factory: Callable[..., Any],
    publish_gold: Callable[..., None],
) -> None:
    publish_gold(gold_factory(["AAPL"], days=5, minute_bars_per_symbol=5).emptied())
    dashboard_env(MARKETPULSE_WATCHLIST="AAPL")
    at = run_page(app_path, "health")
    assert {m.label: m.value for m in at.metric}["Gold rows"] == "0"
    assert "**Stale symbols**: no tick within 15.0 min for AAPL" in at.warning[0].value
    freshness = next(d.value for d in at.dataframe if "status" in d.value.columns)
    assert freshness[["symbol", "status"]].to_dict("records") == [{"symbol": "AAPL", "status": "no data"}]


@pytest.mark.parametrize(
    ("page", "widget"),
    [
        ("ohlc", "symbol"),
        ("returns", "symbols"),
        ("cumulative", "symbols"),
        ("comparison", "symbols"),
        ("volatility", "symbols"),
        ("correlation", "symbols"),
    ],
)
def test_a_watchlist_symbol_without_rows_gets_a_warning_that_names_it(
    app_path: Path,
    dashboard_env: Callable[..., None],
    gold_factory: Callable[..., Any],
    publish_gold: Callable[..., None],
    page: str,
    widget: str,
) -> None:
    publish_gold(gold_factory(["AAPL", "MSFT"], days=30, minute_bars_per_symbol=5))
    dashboard_env(MARKETPULSE_WATCHLIST="AAPL,MSFT,ZZZZ")
    at = run_page(app_path, page, charts=True)
    if page == "ohlc":
        at.selectbox(key=widget).select("ZZZZ").run()
        assert not at.get("plotly_chart")
    else:
        at.multiselect(key=widget).set_value(["AAPL", "MSFT", "ZZZZ"]).run()
        assert len(at.get("plotly_chart")) == 1  # AAPL and MSFT still drawn
    assert not at.exception
    assert "No rows for ZZZZ" in at.warning[0].value

    if page != "ohlc":
        at.multiselect(key=widget).set_value(["ZZZZ"]).run()
        assert not at.exception
        assert "No rows for ZZZZ" in at.warning[0].value
        assert not at.get("plotly_chart")
