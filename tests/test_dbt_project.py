"""The dbt project end to end on real warehouses: DuckDB (embedded) and Snowflake (fakesnow server).

One deterministic scenario of raw ticks, loaded in three batches, carries every case the models must
handle: late ticks, a load that commits out of order, re-deliveries (identical, conflicting, twice in
one object, two objects of one load), distinct ticks that only look alike, and one bad row per
validation rule. The same scenario is built:
- on DuckDB incrementally (dbt after each batch, starting from a clean database), then with
  `--full-refresh`: both must agree, and must equal a plain pandas computation over the ticks;
- on Snowflake (fakesnow): a clean build over the first batch, an incremental one over the rest; its
  gold tables must equal DuckDB's.
The incremental tests set var incremental_lookback_minutes to 60 so that the out-of-order load is
picked up; the in-order late ticks are admitted with any lookback.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from marketpulse.transform.main import dbt_command
from marketpulse.warehouse import DbtRunError, DbtRunResult, run_dbt
from marketpulse_dev.localenv.snowflake import FakeSnowflakeServer

UTC = dt.UTC
EXCHANGE_TZ = "America/New_York"
SYMBOLS = ("AAPL", "BRK.B", "MSFT", "NVDA")
VOLATILITY_WINDOWS = (2, 3)
MOVING_AVERAGE_WINDOWS = (2, 3)
DBT_VARS = {
    "watchlist": list(SYMBOLS),
    "exchange_timezone": EXCHANGE_TZ,
    "volatility_window_days": list(VOLATILITY_WINDOWS),
    "moving_average_days": list(MOVING_AVERAGE_WINDOWS),
    "incremental_lookback_minutes": 60,
    "future_tolerance_seconds": 5,
}
VARS_ARGS = ["--vars", json.dumps(DBT_VARS, sort_keys=True)]
FUTURE_TOLERANCE = dt.timedelta(seconds=5)
TICKER = re.compile(r"[A-Z][-A-Z0-9.]{0,9}")
REL_TOL = 1e-9
# Only for values that are zero in exact arithmetic (e.g. a return when close == open).
ABS_TOL = 1e-12

RAW_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("price", pa.float64()),
        ("size", pa.int64()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("ingest_time", pa.timestamp("us", tz="UTC")),
        ("source", pa.string()),
        ("producer_id", pa.string()),
        ("seq", pa.int64()),
        ("schema_version", pa.int32()),
        ("_object_key", pa.string()),
        ("_loaded_at", pa.timestamp("us", tz="UTC")),
    ]
)
RAW_DDL_DUCKDB = """
create table if not exists {schema}.raw_ticks (
    symbol varchar, price double, size bigint, event_time timestamptz, ingest_time timestamptz,
    source varchar, producer_id varchar, seq bigint, schema_version integer,
    _object_key varchar, _loaded_at timestamptz
)"""
RAW_DDL_SNOWFLAKE = RAW_DDL_DUCKDB.replace("timestamptz", "timestamp_tz")

Row = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# The scenario: raw rows per load, and what each special row must become.
# --------------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    batches: list[list[Row]] = field(default_factory=list)
    # object key of a one-row object → the reject reason that row must get
    bad_objects: dict[str, str] = field(default_factory=dict)
    # name → (tick identity, object key and price of the copy silver must keep, number of copies)
    duplicates: dict[str, tuple[tuple[Any, ...], str, float, int]] = field(default_factory=dict)
    # name → identities that look alike but are distinct ticks (all kept)
    distinct: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    # identities of ticks that arrive in a later load than their trading day (all kept)
    late: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def rows(self) -> list[Row]:
        return [row for batch in self.batches for row in batch]


def identity(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (row["symbol"], row["event_time"], row["producer_id"], row["seq"])


def _place(rows: list[Row], object_key: str, loaded_at: dt.datetime) -> list[Row]:
    return [{**row, "_object_key": object_key, "_loaded_at": loaded_at} for row in rows]


def build_scenario(seed: int = 20261126) -> Scenario:
    rng = random.Random(seed)  # noqa: S311 - a reproducible scenario, not a secret
    sequences = {"ingest-a": 0, "ingest-b": 0}

    def next_seq(producer: str) -> int:
        sequences[producer] += 1
        return sequences[producer]

    start_prices = {"AAPL": 190.0, "BRK.B": 470.0, "MSFT": 410.0, "NVDA": 140.0}
    ticks: list[Row] = []
    first_day = dt.date(2026, 11, 16)
    for day_index in range(6):
        session_open = dt.datetime.combine(first_day + dt.timedelta(days=day_index), dt.time(14, 30), UTC)
        for symbol in SYMBOLS:
            price = start_prices[symbol] * (1 + 0.01 * rng.uniform(-3, 3))
            # Regular hours plus evening trades up to 05:30 UTC, i.e. across New York midnight.
            offsets = sorted([rng.uniform(0, 6.5 * 3600) for _ in range(45)])
            offsets += sorted([rng.uniform(6.5 * 3600, 15 * 3600) for _ in range(6)])
            previous: Row | None = None
            for offset in offsets:
                event_time = session_open + dt.timedelta(milliseconds=round(offset * 1000))
                if previous is not None and rng.random() < 0.08:
                    event_time = previous["event_time"]  # same instant: open/close ties broken by seq
                price = round(max(1.0, price * (1 + rng.gauss(0, 0.003))), 2)
                producer = rng.choice(("ingest-a", "ingest-b"))
                tick: Row = {
                    "symbol": symbol,
                    "price": price,
                    "size": rng.choice((0, 1, 10, 100, rng.randint(1, 900))),
                    "event_time": event_time,
                    "ingest_time": event_time + dt.timedelta(milliseconds=rng.randint(1, 80)),
                    "source": "synthetic",
                    "producer_id": producer,
                    "seq": next_seq(producer),
                    "schema_version": 1,
                }
                ticks.append(tick)
                previous = tick

    ticks.sort(key=lambda t: (t["event_time"], t["producer_id"], t["seq"]))
    day_of = {id(t): (t["event_time"] - dt.datetime.combine(first_day, dt.time(9), UTC)).days for t in ticks}
    by_batch: list[list[Row]] = [[], [], []]
    for tick in ticks:
        by_batch[min(day_of[id(tick)] // 2, 2)].append(tick)

    # Late ticks: some of the first two days' trades arrive with the last load.
    late = [t for t in by_batch[0] if rng.random() < 0.05]
    late_ids = {id(t) for t in late}
    by_batch[0] = [t for t in by_batch[0] if id(t) not in late_ids]

    scenario = Scenario(late=[identity(t) for t in late])
    load_times: list[dt.datetime] = []
    placed: list[list[Row]] = []
    for index, batch in enumerate(by_batch):
        newest = max(t["event_time"] for t in batch)
        load_time = newest.replace(microsecond=0) + dt.timedelta(minutes=10)
        load_times.append(load_time)
        rows: list[Row] = []
        for chunk_index, start in enumerate(range(0, len(batch), 120)):
            chunk = batch[start : start + 120]
            day = f"{chunk[0]['event_time']:%Y-%m-%d}"
            key = f"bronze/ticks/dt={day}/partition=0/{index}-{chunk_index:04d}.ndjson"
            rows += _place(chunk, key, load_time + dt.timedelta(seconds=chunk_index))
        placed.append(rows)

    # Half the late ticks come with the last load, in order; the other half in an object whose load
    # committed out of order: its load time is older than the newest load the previous build saw
    # (within the lookback window), yet it was not seen then.
    in_order, out_of_order = late[::2], late[1::2]
    placed[2] += _place(in_order, "bronze/ticks/late/2-late.ndjson", load_times[2])
    placed[2] += _place(
        out_of_order, "bronze/ticks/late/2-out-of-order.ndjson", load_times[1] - dt.timedelta(minutes=10)
    )

    # --- re-deliveries -------------------------------------------------------------------------
    def pick(batch: int, symbol: str, skip: int = 0) -> Row:
        candidates = [
            r for r in placed[batch] if r["symbol"] == symbol and r["_object_key"].endswith(".ndjson")
        ]
        return candidates[len(candidates) // 3 + skip]

    original = pick(0, "AAPL")
    placed[1] += _place([dict(original)], "bronze/ticks/dup/1-redelivered.ndjson", load_times[1])
    scenario.duplicates["redelivered in a later load"] = (
        identity(original),
        original["_object_key"],
        original["price"],
        2,
    )

    original = pick(0, "MSFT")
    conflicting = {**original, "price": round(original["price"] + 1.5, 2), "size": original["size"] + 7}
    placed[2] += _place([conflicting], "bronze/ticks/dup/2-conflicting.ndjson", load_times[2])
    scenario.duplicates["re-delivered later with other values"] = (
        identity(original),
        original["_object_key"],
        original["price"],
        2,
    )

    original = pick(1, "NVDA")
    placed[1].append(dict(original))  # the same line twice in one object
    scenario.duplicates["twice in one object"] = (
        identity(original),
        original["_object_key"],
        original["price"],
        2,
    )

    # Two objects of one load (same load time): the smaller object key wins.
    original = pick(2, "BRK.B")
    placed[2].remove(original)
    tie_time = load_times[2] + dt.timedelta(seconds=30)
    placed[2] += _place(
        [{**original, "price": original["price"] + 2}], "bronze/ticks/dup/2-tie-b.ndjson", tie_time
    )
    placed[2] += _place([dict(original)], "bronze/ticks/dup/2-tie-a.ndjson", tie_time)
    scenario.duplicates["two objects of one load"] = (
        identity(original),
        "bronze/ticks/dup/2-tie-a.ndjson",
        original["price"],
        2,
    )

    # --- look-alikes that are distinct ticks ----------------------------------------------------
    base = pick(0, "NVDA", skip=3)
    other_producer = "ingest-b" if base["producer_id"] == "ingest-a" else "ingest-a"
    same_seq_other_producer = {**base, "producer_id": other_producer, "price": base["price"] + 0.01}
    other_time = {
        **base,
        "event_time": base["event_time"] + dt.timedelta(microseconds=1),
        "price": base["price"] - 0.01,
    }
    placed[0] += _place(
        [same_seq_other_producer, other_time], "bronze/ticks/lookalike/0-a.ndjson", load_times[0]
    )
    scenario.distinct["same seq from another producer, or at another instant"] = [
        identity(base),
        identity(same_seq_other_producer),
        identity(other_time),
    ]

    # --- one bad row per rule, each alone in its own object ------------------------------------
    template = pick(1, "AAPL", skip=5)
    bad_load = load_times[1] + dt.timedelta(seconds=1)
    bad_cases: list[tuple[str, str, dict[str, Any]]] = [
        ("missing_symbol", "null-symbol", {"symbol": None}),
        ("missing_price", "null-price", {"price": None}),
        ("missing_size", "null-size", {"size": None}),
        ("missing_event_time", "null-event-time", {"event_time": None}),
        ("missing_ingest_time", "null-ingest-time", {"ingest_time": None}),
        ("missing_source", "null-source", {"source": None}),
        ("missing_producer_id", "null-producer", {"producer_id": None}),
        ("missing_seq", "null-seq", {"seq": None}),
        ("unsupported_schema_version", "schema-v2", {"schema_version": 2}),
        ("unsupported_schema_version", "schema-null", {"schema_version": None}),
        ("invalid_symbol", "lower-case-symbol", {"symbol": "aapl"}),
        ("invalid_symbol", "too-long-symbol", {"symbol": "ABCDEFGHIJK"}),
        ("unknown_symbol", "not-in-watchlist", {"symbol": "TSLA"}),
        ("non_finite_price", "nan-price", {"price": math.nan}),
        ("non_finite_price", "infinite-price", {"price": math.inf}),
        ("non_positive_price", "zero-price", {"price": 0.0}),
        ("non_positive_price", "negative-price", {"price": -3.5}),
        ("negative_size", "negative-size", {"size": -100}),
        ("negative_seq", "negative-seq", {"seq": -1}),
        (
            "future_event_time",
            "event-after-load",
            {"event_time": bad_load + FUTURE_TOLERANCE + dt.timedelta(seconds=1)},
        ),
    ]
    for reason, name, change in bad_cases:
        row = {**template, "seq": next_seq(template["producer_id"]), **change}
        key = f"bronze/ticks/bad/1-{name}.ndjson"
        placed[1] += _place([row], key, bad_load)
        scenario.bad_objects[key] = reason
    # Within the clock-skew allowance: a valid tick, not a future one.
    edge = {**template, "seq": next_seq(template["producer_id"]), "event_time": bad_load + FUTURE_TOLERANCE}
    placed[1] += _place([edge], "bronze/ticks/edge/1-within-tolerance.ndjson", bad_load)
    scenario.distinct["event time within the future tolerance"] = [identity(edge)]

    scenario.batches = placed
    return scenario


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

    return {
        "ohlc_1m": ohlc_1m,
        "ohlc_daily": ohlc_daily,
        "returns_daily": returns,
        "returns_cumulative": cumulative,
        "volatility_rolling": volatility,
        "index_base100": index,
        "moving_averages_daily": averages,
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
        elif column in ("bar_start", "event_time", "loaded_at", "last_loaded_at", "ingest_time"):
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


def read_duckdb(path: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as connection:
        frame: pd.DataFrame = connection.execute(sql).fetchdf()
    return frame


def read_gold_duckdb(path: Path) -> dict[str, pd.DataFrame]:
    return {name: read_duckdb(path, f"select * from gold.{name}") for name in GOLD}  # noqa: S608


def load_duckdb(path: Path, rows: Sequence[Row]) -> None:
    table = pa.Table.from_pylist(list(rows), schema=RAW_SCHEMA)
    with duckdb.connect(str(path)) as connection:
        connection.execute("create schema if not exists bronze")
        connection.execute(RAW_DDL_DUCKDB.format(schema="bronze"))
        connection.register("batch", table)
        connection.execute("insert into bronze.raw_ticks select * from batch")


# --------------------------------------------------------------------------------------------------
# DuckDB: incremental builds from a clean database, then a full refresh.
# --------------------------------------------------------------------------------------------------


@dataclass
class DuckDBRun:
    path: Path
    env: dict[str, str]
    scenario: Scenario
    builds: list[DbtRunResult]
    incremental_gold: dict[str, pd.DataFrame]
    incremental_silver: dict[str, pd.DataFrame]
    # fct_rejected_ticks_watermark after the incremental runs: how far the rejects have processed.
    rejects_watermark: pd.DataFrame
    full_refresh_gold: dict[str, pd.DataFrame]
    full_refresh_silver: dict[str, pd.DataFrame]


SILVER_SQL = {
    "fct_ticks": "select * from silver.fct_ticks",
    "fct_rejected_ticks": "select * from silver.fct_rejected_ticks",
}


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario()


@pytest.fixture(scope="module")
def duckdb_run(tmp_path_factory: pytest.TempPathFactory, scenario: Scenario) -> DuckDBRun:
    workdir = tmp_path_factory.mktemp("dbt-duckdb")
    path = workdir / "warehouse.duckdb"
    env = {
        "MARKETPULSE_DUCKDB_PATH": str(path),
        "DBT_TARGET_PATH": str(workdir / "target"),
        "DBT_LOG_PATH": str(workdir / "logs"),
    }
    # Every node (models, data tests, unit tests) on the clean database; in between, the models-only
    # run of a steady continuous-mode cycle (keeps the suite fast); models and data tests again once
    # all loads are in, then a full refresh.
    commands = [
        ["build", *VARS_ARGS],
        [*dbt_command(full_build=False), *VARS_ARGS],
        ["build", "--exclude-resource-type", "unit_test", *VARS_ARGS],
    ]
    builds = []
    for batch, command in zip(scenario.batches, commands, strict=True):
        load_duckdb(path, batch)
        builds.append(run_dbt(command, target="duckdb", env=env))
    incremental_gold = read_gold_duckdb(path)
    incremental_silver = {name: read_duckdb(path, sql) for name, sql in SILVER_SQL.items()}
    rejects_watermark = read_duckdb(path, "select * from silver.fct_rejected_ticks_watermark")
    builds.append(run_dbt(["run", "--full-refresh", *VARS_ARGS], target="duckdb", env=env))
    return DuckDBRun(
        path=path,
        env=env,
        scenario=scenario,
        builds=builds,
        incremental_gold=incremental_gold,
        incremental_silver=incremental_silver,
        rejects_watermark=rejects_watermark,
        full_refresh_gold=read_gold_duckdb(path),
        full_refresh_silver={name: read_duckdb(path, sql) for name, sql in SILVER_SQL.items()},
    )


def test_dbt_build_passes_on_duckdb_from_a_clean_database_and_after_each_incremental_load(
    duckdb_run: DuckDBRun,
) -> None:
    clean, _, after_increments, _ = duckdb_run.builds
    for build in duckdb_run.builds:
        assert set(build.statuses.values()) <= {"success", "pass"}, build.statuses
    # From a clean database: every model, data test and unit test; after the incremental loads:
    # every model and data test again.
    # (operation: the on-run-start hook that creates bronze.raw_ticks when it is missing.)
    assert {unique_id.split(".", 1)[0] for unique_id in clean.statuses} == {
        "operation",
        "model",
        "test",
        "unit_test",
    }
    assert {unique_id.split(".", 1)[0] for unique_id in after_increments.statuses} == {
        "operation",
        "model",
        "test",
    }
    assert sum(1 for unique_id in clean.statuses if unique_id.startswith("model.")) == 12


def test_a_steady_cycle_runs_the_incremental_models_and_leaves_the_views_alone(
    duckdb_run: DuckDBRun,
) -> None:
    steady = duckdb_run.builds[1]
    ran = {unique_id.rsplit(".", 1)[-1] for unique_id in steady.statuses if unique_id.startswith("model.")}
    assert ran == {"fct_ticks", "fct_rejected_ticks", "fct_rejected_ticks_watermark", "ohlc_1m", "ohlc_daily"}


def test_the_rejects_watermark_covers_every_load_so_loads_without_rejects_are_not_read_again(
    duckdb_run: DuckDBRun,
) -> None:
    # fct_rejected_ticks' own rows only carry the loads that had rejects; its next incremental run
    # starts after this watermark, which must reach the newest load in silver.
    watermark = duckdb_run.rejects_watermark["loaded_at"]
    assert len(watermark) == 1
    newest_kept = duckdb_run.incremental_silver["fct_ticks"]["loaded_at"].max()
    assert watermark[0] == newest_kept


@pytest.mark.parametrize("table", sorted(GOLD))
def test_incremental_loads_give_the_same_gold_table_as_a_full_refresh(
    duckdb_run: DuckDBRun, table: str
) -> None:
    key, exact, approx = GOLD[table]
    incremental = duckdb_run.incremental_gold[table]
    full = duckdb_run.full_refresh_gold[table]
    assert len(full) > 0
    assert_same_rows(
        incremental,
        full,
        key=key,
        exact=exact,
        approx=approx,
        what=f"gold.{table} incremental vs --full-refresh",
    )


def test_incremental_loads_give_the_same_silver_as_a_full_refresh(duckdb_run: DuckDBRun) -> None:
    columns = ["symbol", "event_time", "producer_id", "seq", "price", "size", "object_key", "loaded_at"]
    assert_same_rows(
        duckdb_run.incremental_silver["fct_ticks"],
        duckdb_run.full_refresh_silver["fct_ticks"],
        key=["symbol", "event_time", "producer_id", "seq"],
        exact=columns[4:],
        approx=[],
        what="silver.fct_ticks incremental vs --full-refresh",
    )
    rejected_key = ["object_key", "reject_reason", "symbol", "seq", "price"]

    def rejected(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
        return sorted(
            normalise(frame)[rejected_key].astype(str).itertuples(index=False, name=None),
        )

    assert rejected(duckdb_run.incremental_silver["fct_rejected_ticks"]) == rejected(
        duckdb_run.full_refresh_silver["fct_rejected_ticks"]
    )


def test_incremental_rejects_match_a_full_refresh_for_loads_with_and_without_duplicates(
    tmp_path: Path, scenario: Scenario
) -> None:
    # fct_rejected_ticks looks for duplicates only when the new valid rows outnumber the ticks
    # fct_ticks kept from them: a load of new ticks and one bad row (no duplicates), then a load
    # that re-delivers a tick, must both give what a full refresh gives.
    path = tmp_path / "warehouse.duckdb"
    env = {
        "MARKETPULSE_DUCKDB_PATH": str(path),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
    }
    first = [row for row in scenario.batches[0] if row["_object_key"].startswith("bronze/ticks/dt=")]
    newest = max(row["_loaded_at"] for row in first)
    fresh = _place(
        [{**row, "seq": row["seq"] + 1_000_000} for row in first[:50]]
        + [{**first[50], "seq": 2_000_000, "price": -1.0}],
        "bronze/ticks/fresh/1.ndjson",
        newest + dt.timedelta(minutes=1),
    )
    redelivered = _place([dict(first[7])], "bronze/ticks/fresh/2.ndjson", newest + dt.timedelta(minutes=2))
    load_duckdb(path, first)
    run_dbt(["build", "--exclude-resource-type", "unit_test", *VARS_ARGS], target="duckdb", env=env)
    for batch in (fresh, redelivered):
        load_duckdb(path, batch)
        run_dbt([*dbt_command(full_build=False), *VARS_ARGS], target="duckdb", env=env)
    incremental = read_duckdb(path, SILVER_SQL["fct_rejected_ticks"])
    run_dbt(["run", "--full-refresh", *VARS_ARGS], target="duckdb", env=env)
    refreshed = read_duckdb(path, SILVER_SQL["fct_rejected_ticks"])

    def rejects(frame: pd.DataFrame) -> list[tuple[str, str, int]]:
        return sorted(zip(frame["object_key"], frame["reject_reason"], frame["seq"], strict=True))

    assert rejects(incremental) == [
        ("bronze/ticks/fresh/1.ndjson", "non_positive_price", 2_000_000),
        ("bronze/ticks/fresh/2.ndjson", "duplicate", first[7]["seq"]),
    ]
    assert rejects(incremental) == rejects(refreshed)


@pytest.mark.parametrize("table", sorted(GOLD))
def test_gold_tables_equal_an_independent_pandas_computation(duckdb_run: DuckDBRun, table: str) -> None:
    key, exact, approx = GOLD[table]
    expected = expected_gold(duckdb_run.scenario.rows)[table]
    assert_same_rows(
        duckdb_run.full_refresh_gold[table],
        expected,
        key=key,
        exact=exact,
        approx=approx,
        what=f"gold.{table} vs pandas",
    )


def test_silver_keeps_exactly_the_valid_deduplicated_ticks(duckdb_run: DuckDBRun) -> None:
    expected = expected_silver(duckdb_run.scenario.rows).rename(
        columns={"_object_key": "object_key", "_loaded_at": "loaded_at"}
    )
    assert_same_rows(
        duckdb_run.full_refresh_silver["fct_ticks"],
        expected,
        key=["symbol", "event_time", "producer_id", "seq"],
        exact=["price", "size", "object_key", "loaded_at"],
        approx=[],
        what="silver.fct_ticks vs pandas",
    )


def test_every_raw_row_is_either_a_silver_tick_or_a_counted_reject(duckdb_run: DuckDBRun) -> None:
    raw = len(duckdb_run.scenario.rows)
    kept = len(duckdb_run.full_refresh_silver["fct_ticks"])
    rejected = len(duckdb_run.full_refresh_silver["fct_rejected_ticks"])
    duplicates = sum(copies - 1 for (*_, copies) in duckdb_run.scenario.duplicates.values())
    assert kept + rejected == raw
    assert rejected == len(duckdb_run.scenario.bad_objects) + duplicates


def test_each_validation_rule_rejects_its_row_with_its_reason(duckdb_run: DuckDBRun) -> None:
    rejected = normalise(duckdb_run.full_refresh_silver["fct_rejected_ticks"])
    kept = normalise(duckdb_run.full_refresh_silver["fct_ticks"])
    reasons = dict(zip(rejected["object_key"], rejected["reject_reason"], strict=True))
    wrong = {
        key: (reasons.get(key), reason)
        for key, reason in duckdb_run.scenario.bad_objects.items()
        if reasons.get(key) != reason
    }
    assert not wrong, f"object → (got, expected): {wrong}"
    assert not set(kept["object_key"]) & set(duckdb_run.scenario.bad_objects)
    assert set(rejected["reject_reason"]) == {*duckdb_run.scenario.bad_objects.values(), "duplicate"}


@pytest.mark.parametrize(
    "case",
    [
        "redelivered in a later load",
        "re-delivered later with other values",
        "twice in one object",
        "two objects of one load",
    ],
)
def test_a_redelivered_tick_is_kept_once_from_its_first_load_and_the_copies_are_counted(
    duckdb_run: DuckDBRun, case: str
) -> None:
    tick, kept_object, kept_price, copies = duckdb_run.scenario.duplicates[case]
    symbol, event_time, producer_id, seq = tick
    where = (
        f"where symbol = '{symbol}' and producer_id = '{producer_id}' and seq = {seq} "
        f"and event_time = '{event_time.isoformat()}'::timestamptz"
    )
    kept = read_duckdb(duckdb_run.path, f"select object_key, price from silver.fct_ticks {where}")  # noqa: S608
    assert list(kept.itertuples(index=False, name=None)) == [(kept_object, kept_price)]
    rejected = read_duckdb(
        duckdb_run.path,
        f"select reject_reason from silver.fct_rejected_ticks {where}",  # noqa: S608
    )
    assert list(rejected["reject_reason"]) == ["duplicate"] * (copies - 1)


@pytest.mark.parametrize(
    "case",
    ["same seq from another producer, or at another instant", "event time within the future tolerance"],
)
def test_ticks_that_only_look_alike_are_all_kept(duckdb_run: DuckDBRun, case: str) -> None:
    kept = normalise(duckdb_run.full_refresh_silver["fct_ticks"])
    kept_ids = set(kept[["symbol", "event_time", "producer_id", "seq"]].itertuples(index=False, name=None))
    expected = {(s, pd.Timestamp(t), p, q) for s, t, p, q in duckdb_run.scenario.distinct[case]}
    assert expected <= kept_ids


def test_late_ticks_from_an_out_of_order_load_reach_silver_and_their_old_bars(duckdb_run: DuckDBRun) -> None:
    silver = normalise(duckdb_run.incremental_silver["fct_ticks"])
    kept_ids = set(silver[["symbol", "event_time", "producer_id", "seq"]].itertuples(index=False, name=None))
    late = {(s, pd.Timestamp(t), p, q) for s, t, p, q in duckdb_run.scenario.late}
    assert late
    assert late <= kept_ids
    late_loads = silver[silver["object_key"].str.startswith("bronze/ticks/late/")]
    assert len(late_loads) == len(late)
    assert (late_loads["object_key"] == "bronze/ticks/late/2-out-of-order.ndjson").any()


def test_trading_dates_are_exchange_dates_not_utc_dates(duckdb_run: DuckDBRun) -> None:
    # A trade at 02:00 UTC on the 17th is an evening trade of the 16th in New York.
    bars = normalise(duckdb_run.full_refresh_gold["ohlc_1m"])
    evening = bars[bars["bar_start"].dt.hour.isin([1, 2, 3])]
    assert len(evening) > 0
    assert (evening["trade_date"] == (evening["bar_start"] - pd.Timedelta(hours=5)).dt.date).all()


def test_a_failing_data_test_raises_an_error_that_names_the_test_and_what_it_found(
    duckdb_run: DuckDBRun,
) -> None:
    # Corrupt gold with a second copy of one bar, run the tests of that model, then repair.
    with duckdb.connect(str(duckdb_run.path)) as connection:
        connection.execute("create temp table bar as select * from gold.ohlc_1m limit 1")
        connection.execute("insert into gold.ohlc_1m select * from bar")
    try:
        with pytest.raises(DbtRunError) as caught:
            run_dbt(["test", "--select", "ohlc_1m", *VARS_ARGS], target="duckdb", env=duckdb_run.env)
    finally:
        with duckdb.connect(str(duckdb_run.path)) as connection:
            connection.execute("create or replace table gold.ohlc_1m as select distinct * from gold.ohlc_1m")
    assert caught.value.failed_nodes == ["unique_combination_of_columns_ohlc_1m_symbol__bar_start"]
    message = str(caught.value)
    assert "test unique_combination_of_columns_ohlc_1m_symbol__bar_start (fail): Got 1 result" in message
    # The environment overlay is gone once the invocation returns.
    assert os.environ.get("MARKETPULSE_DUCKDB_PATH") != duckdb_run.env["MARKETPULSE_DUCKDB_PATH"]


# --------------------------------------------------------------------------------------------------
# Snowflake (fakesnow server, real connector and dbt-snowflake): the same scenario, the same answers.
# --------------------------------------------------------------------------------------------------


@dataclass
class SnowflakeRun:
    builds: list[DbtRunResult]
    gold: dict[str, pd.DataFrame]
    silver_counts: dict[str, int]


def _fetch(cursor: Any, sql: str) -> pd.DataFrame:
    cursor.execute(sql)
    columns = [column.name.lower() for column in cursor.description]
    return pd.DataFrame(cursor.fetchall(), columns=columns)


def load_snowflake(cursor: Any, database: str, rows: Sequence[Row], parquet: Path) -> None:
    """Bulk-load like the transform does on Snowflake: Parquet → PUT to a stage → COPY INTO."""
    pq.write_table(pa.Table.from_pylist(list(rows), schema=RAW_SCHEMA), parquet)
    stage = f"{database}.bronze.load_{parquet.stem.replace('-', '_')}"
    cursor.execute(f"create or replace stage {stage}")
    cursor.execute(f"put file://{parquet} @{stage}")
    cursor.execute(
        f"copy into {database}.bronze.raw_ticks from @{stage} "
        "file_format = (type = parquet) match_by_column_name = case_insensitive"
    )


@pytest.fixture(scope="module")
def snowflake_run(
    fakesnow_server: FakeSnowflakeServer, scenario: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SnowflakeRun]:
    import snowflake.connector

    workdir = tmp_path_factory.mktemp("dbt-snowflake")
    database = "MARKETPULSE_DBT_TEST"
    env = {
        **fakesnow_server.settings(),
        "SNOWFLAKE_DATABASE": database,
        "SNOWFLAKE_SCHEMA": "PUBLIC",
        # fakesnow's server can stall when several sessions query at once; one dbt thread avoids it.
        "MARKETPULSE_DBT_THREADS": "1",
        "DBT_TARGET_PATH": str(workdir / "target"),
        "DBT_LOG_PATH": str(workdir / "logs"),
    }
    with snowflake.connector.connect(**fakesnow_server.connect_kwargs()) as connection:
        cursor = connection.cursor()
        cursor.execute(f"create or replace database {database}")
        cursor.execute(f"create schema {database}.bronze")
        cursor.execute(RAW_DDL_SNOWFLAKE.format(schema=f"{database}.bronze"))
        # A clean build over the first load, then one incremental build over the other two.
        first, *rest = scenario.batches
        builds = []
        load_snowflake(cursor, database, first, workdir / "batch-0.parquet")
        builds.append(run_dbt(["build", *VARS_ARGS], target="snowflake", env=env))
        load_snowflake(
            cursor, database, [row for batch in rest for row in batch], workdir / "batch-1.parquet"
        )
        # Unit tests do not depend on the data; once per target is enough.
        builds.append(
            run_dbt(
                ["build", "--exclude-resource-type", "unit_test", *VARS_ARGS], target="snowflake", env=env
            )
        )
        yield SnowflakeRun(
            builds=builds,
            gold={
                name: _fetch(cursor, f"select * from {database}.gold.{name}")  # noqa: S608
                for name in GOLD
            },
            silver_counts={
                name: int(_fetch(cursor, f"select count(*) as n from {database}.silver.{name}")["n"][0])  # noqa: S608
                for name in SILVER_SQL
            },
        )


@pytest.mark.snowflake
def test_dbt_build_passes_on_snowflake_from_a_clean_database_and_after_an_incremental_load(
    snowflake_run: SnowflakeRun, duckdb_run: DuckDBRun
) -> None:
    for build in snowflake_run.builds:
        assert set(build.statuses.values()) <= {"success", "pass"}, build.statuses
    assert {unique_id.split(".", 1)[0] for unique_id in snowflake_run.builds[0].statuses} == {
        "operation",
        "model",
        "test",
        "unit_test",
    }
    assert snowflake_run.silver_counts == {
        name: len(frame) for name, frame in duckdb_run.full_refresh_silver.items()
    }


@pytest.mark.snowflake
@pytest.mark.parametrize("table", sorted(GOLD))
def test_snowflake_and_duckdb_give_the_same_gold_table(
    snowflake_run: SnowflakeRun, duckdb_run: DuckDBRun, table: str
) -> None:
    key, exact, approx = GOLD[table]
    assert_same_rows(
        snowflake_run.gold[table],
        duckdb_run.full_refresh_gold[table],
        key=key,
        exact=exact,
        approx=approx,
        what=f"gold.{table} Snowflake vs DuckDB",
    )
