"""The app's own calculations agree with dbt's definitions (same examples as the gold unit tests)."""

from __future__ import annotations

import datetime as dt

import pandas as pd  # type: ignore[import-untyped]
import pytest

from marketpulse.dashboard.analytics import (
    describe_age,
    forming_bars,
    linear_trend,
    moving_average,
    return_correlations,
    return_summary,
    rolling_volatility,
    seconds_between,
)


def test_rolling_volatility_matches_the_volatility_rolling_unit_test_of_dbt() -> None:
    # dbt/models/gold/volatility_rolling.yml: window 3 over -0.375, 0.125, 0.25 gives 5.25.
    returns = pd.DataFrame(
        {
            "symbol": ["AAPL", "AAPL", "AAPL", "AAPL", "MSFT"],
            "trade_date": pd.to_datetime(
                ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-26"]
            ),
            "log_return": [None, -0.375, 0.125, 0.25, 0.5],
        }
    )
    result = rolling_volatility(returns, 3)
    assert result[["symbol", "window_days"]].to_dict("records") == [{"symbol": "AAPL", "window_days": 3}]
    assert result["trade_date"].iloc[0] == pd.Timestamp("2026-11-26")
    assert result["annualized_volatility"].iloc[0] == pytest.approx(5.25)


def test_moving_average_is_null_until_the_window_is_full_like_moving_averages_daily() -> None:
    assert moving_average(pd.Series([10.0, 20.0, 40.0]), 2).tolist()[1:] == [15.0, 30.0]
    assert pd.isna(moving_average(pd.Series([10.0, 20.0, 40.0]), 2).iloc[0])


def test_a_linear_trend_through_points_on_a_line_is_that_line() -> None:
    trend = linear_trend(pd.Series([1.0, 3.0, 5.0, 7.0]))
    assert trend is not None
    assert trend.slope_per_bar == pytest.approx(2.0)
    assert trend.fitted == pytest.approx([1.0, 3.0, 5.0, 7.0])
    assert linear_trend(pd.Series([1.0])) is None


def test_return_summary_skips_the_first_day_without_a_return() -> None:
    summary = return_summary(pd.Series([None, 1.0, -1.0, 3.0]))
    assert summary["days"] == 3
    assert summary["mean_pct"] == pytest.approx(1.0)
    assert summary["up_days_pct"] == pytest.approx(200 / 3)


def test_ages_read_as_a_person_would_say_them() -> None:
    assert describe_age(None) == "never"
    assert describe_age(42) == "42 s ago"
    assert describe_age(dt.timedelta(hours=2).total_seconds()) == "2.0 h ago"
    assert describe_age(-5) == "in the future (check clocks)"


def test_a_bar_is_forming_when_gold_was_built_before_its_minute_ended() -> None:
    starts = pd.Series(pd.to_datetime(["2026-12-03 15:58", "2026-12-03 15:59"], utc=True))
    built = dt.datetime(2026, 12, 3, 15, 59, 40, tzinfo=dt.UTC)
    assert forming_bars(starts, built).tolist() == [False, True]
    # Built exactly when the minute ends: the bar is complete.
    assert forming_bars(starts, dt.datetime(2026, 12, 3, 16, 0, tzinfo=dt.UTC)).tolist() == [False, False]
    # A naive build time is UTC, as the transform writes it; an unknown one marks nothing.
    assert forming_bars(starts, pd.Timestamp("2026-12-03 15:59:01")).tolist() == [False, True]
    assert forming_bars(starts, None).tolist() == [False, False]


def test_seconds_between_is_signed_and_unknown_when_either_time_is_missing() -> None:
    tick = pd.Timestamp("2026-12-03 15:59:30.050", tz="UTC")
    assert seconds_between(
        tick, dt.datetime(2026, 12, 3, 15, 59, 33, 250000, tzinfo=dt.UTC)
    ) == pytest.approx(3.2)
    assert seconds_between(dt.datetime(2026, 12, 3, 16, 0, tzinfo=dt.UTC), tick) == pytest.approx(-29.95)
    assert seconds_between(None, tick) is None
    assert seconds_between(tick, pd.NaT) is None


def test_return_correlations_pair_symbols_over_their_common_dates() -> None:
    dates = pd.to_datetime(["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26"])
    returns = pd.DataFrame(
        {
            "symbol": ["MSFT"] * 4 + ["AAPL"] * 4 + ["SPY"] * 2,
            "trade_date": list(dates) * 2 + list(dates[:2]),
            "r": [1.0, 2.0, 3.0, 4.0, -2.0, -4.0, -6.0, -8.0, 1.0, 5.0],
        }
    )
    matrix = return_correlations(returns, "r")
    assert list(matrix.index) == ["AAPL", "MSFT", "SPY"]
    assert list(matrix.columns) == ["AAPL", "MSFT", "SPY"]
    assert matrix.loc["AAPL", "MSFT"] == pytest.approx(-1.0)
    assert matrix.loc["MSFT", "MSFT"] == pytest.approx(1.0)
    assert matrix.loc["SPY", "AAPL"] == pytest.approx(-1.0)  # over the two dates both have
    assert pd.isna(return_correlations(returns, "r", min_days=3).loc["SPY", "AAPL"])
