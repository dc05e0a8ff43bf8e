"""The app's own calculations agree with dbt's definitions (same examples as the gold unit tests)."""

from __future__ import annotations

import datetime as dt

import pandas as pd  # type: ignore[import-untyped]
import pytest

from marketpulse.dashboard.analytics import (
    describe_age,
    linear_trend,
    moving_average,
    return_summary,
    rolling_volatility,
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
