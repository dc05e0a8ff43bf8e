"""The dbt tests' independent computation (pandas) of silver and gold, and how tables are compared."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from dbt_scenario import (
    ABS_TOL,
    EXCHANGE_TZ,
    FUTURE_TOLERANCE,
    MOVING_AVERAGE_WINDOWS,
    REL_TOL,
    SYMBOLS,
    TICKER,
    VOLATILITY_WINDOWS,
    Row,
)

# --------------------------------------------------------------------------------------------------
# The independent computation (pandas), from raw rows to every gold table.
# --------------------------------------------------------------------------------------------------


def expected_reason(row: Row) -> str | None:
    for column in ("symbol", "price", "size", "event_time", "ingest_time", "source", "producer_id", "seq"):
        if row[column] is None:
            return f"missing_{column}"
    if row["schema_version"] != 1:
        return "unsupported_schema_version"
    if not TICKER.fullmatch(row["symbol"]):
        return "invalid_symbol"
    if row["symbol"] not in SYMBOLS:
        return "unknown_symbol"
    if not math.isfinite(row["price"]):
        return "non_finite_price"
    if row["price"] <= 0:
        return "non_positive_price"
    if row["size"] < 0:
        return "negative_size"
    if row["seq"] < 0:
        return "negative_seq"
    if row["event_time"] > row["_loaded_at"] + FUTURE_TOLERANCE:
        return "future_event_time"
    return None


def expected_silver(rows: Sequence[Row]) -> pd.DataFrame:
    valid = pd.DataFrame([r for r in rows if expected_reason(r) is None])
    ordered = valid.sort_values(
        ["_loaded_at", "_object_key", "ingest_time", "price", "size", "source"], kind="stable"
    )
    return ordered.drop_duplicates(["symbol", "event_time", "producer_id", "seq"], keep="first").reset_index(
        drop=True
    )


def _bars(ticks: pd.DataFrame, period: str) -> pd.DataFrame:
    ordered = ticks.sort_values(["symbol", "event_time", "seq", "producer_id"], kind="stable")
    grouped = ordered.groupby(["symbol", period], sort=True)
    bars = grouped.agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("size", "sum"),
        notional=("notional", "sum"),
        tick_count=("price", "size"),
    ).reset_index()
    bars["vwap"] = bars["notional"] / bars["volume"].where(bars["volume"] != 0)
    return bars


def _rolling_std(values: np.ndarray, window: int) -> list[float | None]:
    out: list[float | None] = []
    for end in range(len(values)):
        chunk = values[max(0, end - window + 1) : end + 1]
        out.append(
            float(np.std(chunk, ddof=1)) if len(chunk) == window and not np.isnan(chunk).any() else None
        )
    return out


def expected_gold(rows: Sequence[Row]) -> dict[str, pd.DataFrame]:
    ticks = expected_silver(rows)
    ticks["bar_start"] = ticks["event_time"].dt.floor("min")
    ticks["trade_date"] = ticks["event_time"].dt.tz_convert(EXCHANGE_TZ).dt.date
    ticks["notional"] = ticks["price"] * ticks["size"]

    ohlc_1m = _bars(ticks, "bar_start")
    ohlc_daily = _bars(ticks, "trade_date")

    daily = ohlc_daily.sort_values(["symbol", "trade_date"]).reset_index(drop=True)
    previous = daily.groupby("symbol")["close"].shift(1)
    returns = daily[["symbol", "trade_date"]].copy()
    returns["intraday_return_pct"] = (daily["close"] / daily["open"] - 1) * 100
    returns["close_to_close_return_pct"] = (daily["close"] / previous - 1) * 100
    returns["log_return"] = np.log(daily["close"] / previous)

    first_close = daily.groupby("symbol")["close"].transform("first")
    cumulative = daily[["symbol", "trade_date"]].copy()
    cumulative["cumulative_return_pct"] = (daily["close"] / first_close - 1) * 100

    index = daily[["symbol", "trade_date"]].copy()
    index["index_value"] = daily["close"] / first_close * 100

    volatility_rows = []
    for symbol, group in returns.groupby("symbol", sort=True):
        log_returns = group["log_return"].to_numpy(dtype=float)
        for window in VOLATILITY_WINDOWS:
            for trade_date, std in zip(group["trade_date"], _rolling_std(log_returns, window), strict=True):
                if std is not None:
                    volatility_rows.append((symbol, trade_date, window, std * math.sqrt(252)))
    volatility = pd.DataFrame(
        volatility_rows, columns=["symbol", "trade_date", "window_days", "annualized_volatility"]
    )

    average_frames = []
    for window in MOVING_AVERAGE_WINDOWS:
        frame = daily[["symbol", "trade_date", "close"]].copy()
        frame["window_days"] = window
        frame["sma"] = daily.groupby("symbol")["close"].rolling(window, min_periods=window).mean().to_numpy()
        average_frames.append(frame.dropna(subset=["sma"]))
    averages = pd.concat(average_frames, ignore_index=True)

    latest = (
        ticks.groupby("symbol", sort=True)
        .agg(
            last_event_time=("event_time", "max"),
            last_ingest_time=("ingest_time", "max"),
            last_loaded_at=("_loaded_at", "max"),
            tick_count=("price", "size"),
        )
        .reset_index()
    )

    return {
        "ohlc_1m": ohlc_1m,
        "ohlc_daily": ohlc_daily,
        "returns_daily": returns,
        "returns_cumulative": cumulative,
        "volatility_rolling": volatility,
        "index_base100": index,
        "moving_averages_daily": averages,
        "latest_ticks": latest,
    }


# The public contract of every gold relation: key columns, exactly compared and float columns.
GOLD: dict[str, tuple[list[str], list[str], list[str]]] = {
    "ohlc_1m": (
        ["symbol", "bar_start"],
        ["open", "high", "low", "close", "volume", "tick_count"],
        ["vwap"],
    ),
    "ohlc_daily": (
        ["symbol", "trade_date"],
        ["open", "high", "low", "close", "volume", "tick_count"],
        ["vwap"],
    ),
    "returns_daily": (
        ["symbol", "trade_date"],
        [],
        ["intraday_return_pct", "close_to_close_return_pct", "log_return"],
    ),
    "returns_cumulative": (["symbol", "trade_date"], [], ["cumulative_return_pct"]),
    "volatility_rolling": (["symbol", "trade_date", "window_days"], [], ["annualized_volatility"]),
    "index_base100": (["symbol", "trade_date"], [], ["index_value"]),
    "moving_averages_daily": (["symbol", "trade_date", "window_days"], ["close"], ["sma"]),
    "latest_ticks": (["symbol"], ["last_event_time", "last_ingest_time", "last_loaded_at", "tick_count"], []),
}


# --------------------------------------------------------------------------------------------------
# Reading and comparing tables.
# --------------------------------------------------------------------------------------------------


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Lower-case names, UTC instants, plain dates and numbers, whatever the warehouse returned."""
    frame = frame.rename(columns=str.lower).copy()
    for column in frame.columns:
        series = frame[column]
        if column in ("trade_date", "base_date"):
            frame[column] = pd.to_datetime(series).dt.date
        elif column in (
            "bar_start",
            "event_time",
            "loaded_at",
            "last_loaded_at",
            "ingest_time",
            "last_event_time",
            "last_ingest_time",
        ):
            frame[column] = pd.to_datetime(series, utc=True)
        elif series.dtype == object and series.map(lambda v: hasattr(v, "as_tuple")).any():
            frame[column] = pd.to_numeric(series.map(lambda v: None if v is None else float(v)))
    return frame


def assert_same_rows(
    actual: pd.DataFrame,
    expected: pd.DataFrame,
    *,
    key: list[str],
    exact: list[str],
    approx: list[str],
    what: str,
) -> None:
    actual = normalise(actual).sort_values(key).reset_index(drop=True)
    expected = normalise(expected).sort_values(key).reset_index(drop=True)
    actual_keys = list(actual[key].itertuples(index=False, name=None))
    expected_keys = list(expected[key].itertuples(index=False, name=None))
    missing = sorted(set(expected_keys) - set(actual_keys), key=str)[:5]
    extra = sorted(set(actual_keys) - set(expected_keys), key=str)[:5]
    assert actual_keys == expected_keys, f"{what}: rows differ; missing {missing}, unexpected {extra}"
    problems: list[str] = []
    for column in exact:
        for row_key, got, want in zip(actual_keys, actual[column], expected[column], strict=True):
            both_null = pd.isna(got) and pd.isna(want)
            if not both_null and got != want:
                problems.append(f"{column} at {row_key}: {got!r} != {want!r}")
    for column in approx:
        for row_key, got, want in zip(actual_keys, actual[column], expected[column], strict=True):
            if pd.isna(got) and pd.isna(want):
                continue
            if pd.isna(got) or pd.isna(want) or not math.isclose(got, want, rel_tol=REL_TOL, abs_tol=ABS_TOL):
                problems.append(f"{column} at {row_key}: {got!r} vs {want!r}")
    assert not problems, f"{what}: {len(problems)} value(s) differ, e.g.\n" + "\n".join(problems[:10])
