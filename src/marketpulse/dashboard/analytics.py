"""Pure calculations the pages show on top of gold: trend lines, summary statistics, volatility for
windows gold does not carry, staleness. No Streamlit and no I/O here."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not a dependency yet

# Same annualisation as dbt's var trading_days_per_year, so computed windows match gold's.
TRADING_DAYS_PER_YEAR = 252
BAR_LENGTH = pd.Timedelta(minutes=1)
# The daily returns gold carries (returns_daily), by the name the pages offer them under.
DAILY_RETURNS = {
    "Close to close": "close_to_close_return_pct",
    "Intraday (open to close)": "intraday_return_pct",
}


@dataclass(frozen=True)
class Trend:
    fitted: list[float]
    slope_per_bar: float


def linear_trend(values: pd.Series) -> Trend | None:
    """Least-squares line through the values against their position; None below two points."""
    y = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    if len(y) < 2 or np.isnan(y).any():
        return None
    x = np.arange(len(y), dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    return Trend(fitted=list(intercept + slope * x), slope_per_bar=float(slope))


def moving_average(values: pd.Series, window: int) -> pd.Series:
    """Simple moving average, null until `window` values exist (as dbt's moving_averages_daily)."""
    return pd.to_numeric(values, errors="coerce").rolling(window, min_periods=window).mean()


def return_summary(returns: pd.Series) -> dict[str, float]:
    """Summary statistics of daily returns in percent; the first day has none and is skipped."""
    r = pd.to_numeric(returns, errors="coerce").dropna()
    count = len(r)
    return {
        "days": float(count),
        "mean_pct": float(r.mean()) if count else math.nan,
        "median_pct": float(r.median()) if count else math.nan,
        "stdev_pct": float(r.std(ddof=1)) if count > 1 else math.nan,
        "min_pct": float(r.min()) if count else math.nan,
        "max_pct": float(r.max()) if count else math.nan,
        "up_days_pct": float((r > 0).mean() * 100) if count else math.nan,
    }


def rolling_volatility(returns_daily: pd.DataFrame, window_days: int) -> pd.DataFrame:
    """Annualised rolling volatility from `returns_daily.log_return`, full windows only, with the
    definition dbt's volatility_rolling uses: stddev_samp of the last N log returns times sqrt(252)."""
    frames = []
    for symbol, group in returns_daily.sort_values(["symbol", "trade_date"]).groupby("symbol", sort=True):
        log_returns = pd.to_numeric(group["log_return"], errors="coerce")
        # min_periods=window: a window is full only with N non-null log returns, as in dbt.
        stdev = log_returns.rolling(window_days, min_periods=window_days).std(ddof=1)
        frame = pd.DataFrame(
            {
                "symbol": symbol,
                "trade_date": group["trade_date"].to_numpy(),
                "window_days": window_days,
                "annualized_volatility": (stdev * math.sqrt(TRADING_DAYS_PER_YEAR)).to_numpy(),
            }
        )
        frames.append(frame.dropna(subset=["annualized_volatility"]))
    if not frames:
        return pd.DataFrame(columns=["symbol", "trade_date", "window_days", "annualized_volatility"])
    return pd.concat(frames, ignore_index=True)


def age_seconds(then: dt.datetime | pd.Timestamp | None, now: dt.datetime) -> float | None:
    return seconds_between(then, now)


def describe_age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 0:
        return "in the future (check clocks)"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{seconds:.0f} s ago"


def forming_bars(bar_starts: pd.Series, built_at: dt.datetime | pd.Timestamp | None) -> pd.Series:
    """Which 1-minute bars were still open when gold was built: their minute had not ended, so gold may
    lack their last trades. Without a build time no bar is known to be forming."""
    starts = pd.to_datetime(bar_starts, utc=True)
    if built_at is None or pd.isna(built_at):
        return pd.Series(False, index=bar_starts.index)
    stamp = pd.Timestamp(built_at)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return (starts + BAR_LENGTH) > stamp


def seconds_between(
    earlier: dt.datetime | pd.Timestamp | None, later: dt.datetime | pd.Timestamp | None
) -> float | None:
    """later minus earlier in seconds; None when either is unknown (a tick gold does not have yet)."""
    if earlier is None or later is None or pd.isna(earlier) or pd.isna(later):
        return None
    first, second = pd.Timestamp(earlier), pd.Timestamp(later)
    first = first.tz_localize("UTC") if first.tzinfo is None else first
    second = second.tz_localize("UTC") if second.tzinfo is None else second
    return float((second - first).total_seconds())


def return_correlations(returns: pd.DataFrame, column: str, min_days: int = 2) -> pd.DataFrame:
    """Pearson correlation of each pair of symbols' daily returns over the dates both have, as a
    symbol-by-symbol matrix (sorted); a pair with fewer than `min_days` common dates is null."""
    wide = returns.pivot_table(index="trade_date", columns="symbol", values=column, aggfunc="first")
    wide = wide.reindex(sorted(wide.columns), axis=1)
    matrix: pd.DataFrame = wide.corr(method="pearson", min_periods=min_days)
    matrix.index.name = "symbol"
    matrix.columns.name = None
    return matrix
