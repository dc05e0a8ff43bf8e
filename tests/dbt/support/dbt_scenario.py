"""The dbt tests' scenario: raw rows per load, and what each special row must become."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

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


def place_rows(rows: list[Row], object_key: str, loaded_at: dt.datetime) -> list[Row]:
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
            rows += place_rows(chunk, key, load_time + dt.timedelta(seconds=chunk_index))
        placed.append(rows)

    # Half the late ticks come with the last load, in order; the other half in an object whose load
    # committed out of order: its load time is older than the newest load the previous build saw
    # (within the lookback window), yet it was not seen then.
    in_order, out_of_order = late[::2], late[1::2]
    placed[2] += place_rows(in_order, "bronze/ticks/late/2-late.ndjson", load_times[2])
    placed[2] += place_rows(
        out_of_order, "bronze/ticks/late/2-out-of-order.ndjson", load_times[1] - dt.timedelta(minutes=10)
    )

    # --- re-deliveries -------------------------------------------------------------------------
    def pick(batch: int, symbol: str, skip: int = 0) -> Row:
        candidates = [
            r for r in placed[batch] if r["symbol"] == symbol and r["_object_key"].endswith(".ndjson")
        ]
        return candidates[len(candidates) // 3 + skip]

    original = pick(0, "AAPL")
    placed[1] += place_rows([dict(original)], "bronze/ticks/dup/1-redelivered.ndjson", load_times[1])
    scenario.duplicates["redelivered in a later load"] = (
        identity(original),
        original["_object_key"],
        original["price"],
        2,
    )

    original = pick(0, "MSFT")
    conflicting = {**original, "price": round(original["price"] + 1.5, 2), "size": original["size"] + 7}
    placed[2] += place_rows([conflicting], "bronze/ticks/dup/2-conflicting.ndjson", load_times[2])
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
    placed[2] += place_rows(
        [{**original, "price": original["price"] + 2}], "bronze/ticks/dup/2-tie-b.ndjson", tie_time
    )
    placed[2] += place_rows([dict(original)], "bronze/ticks/dup/2-tie-a.ndjson", tie_time)
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
    placed[0] += place_rows(
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
        placed[1] += place_rows([row], key, bad_load)
        scenario.bad_objects[key] = reason
    # Within the clock-skew allowance: a valid tick, not a future one.
    edge = {**template, "seq": next_seq(template["producer_id"]), "event_time": bad_load + FUTURE_TOLERANCE}
    placed[1] += place_rows([edge], "bronze/ticks/edge/1-within-tolerance.ndjson", bad_load)
    scenario.distinct["event time within the future tolerance"] = [identity(edge)]

    scenario.batches = placed
    return scenario
