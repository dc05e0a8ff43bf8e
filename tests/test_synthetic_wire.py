"""The synthetic market's batch-at-a-time generation: the same market whatever the batch size, and
its pre-encoded view for Kafka byte-for-byte what the tick view encodes to."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pytest

from marketpulse.contract.ticks import Tick, encode_tick
from marketpulse.sources.base import BadRecord
from marketpulse.sources.synthetic import (
    SECONDS_PER_TRADING_YEAR,
    Scenario,
    SyntheticSource,
    WireRecord,
    profile_for,
)

FIXED_NOW_US = 1_767_623_400_123_456
SCENARIOS = [
    Scenario("duplicate", at=10),
    Scenario("malformed", at=250),
    Scenario("spike", at=299, magnitude=0.5),
    Scenario("gap", at=100, seconds=30),
    Scenario("gap", at=1999, seconds=200),  # still open across the next batches
]
CASES: list[dict[str, Any]] = [
    {"symbols": ["AAPL", "MSFT", "NVDA"], "seed": 1, "clock": "simulated", "limit": 5003},
    {
        "symbols": ["AAPL", "MSFT", "SPY"],
        "seed": 9,
        "clock": "simulated",
        "limit": 3000,
        "scenarios": SCENARIOS,
    },
    # A short last batch that reaches only some of the 13 symbols.
    {"symbols": [f"S{i}" for i in range(13)], "seed": 3, "clock": "wall", "limit": 10_000},
    {
        "symbols": ["AAPL", "MSFT"],
        "seed": 7,
        "clock": "simulated",
        "ticks_per_second": 0.5,
        "limit": 30_000,
        "start": dt.datetime(2026, 1, 9, 21, 30, tzinfo=dt.UTC),  # crosses a weekend
    },
]


def records(batch_size: int, case: dict[str, Any]) -> list[Tick | BadRecord]:
    source = SyntheticSource(producer_id="p", batch_size=batch_size, now_us=lambda: FIXED_NOW_US, **case)
    return [record for batch in source.batches() for record in batch]


def wire(batch_size: int, case: dict[str, Any]) -> list[WireRecord]:
    source = SyntheticSource(producer_id="p", batch_size=batch_size, now_us=lambda: FIXED_NOW_US, **case)
    return [record for batch in source.wire_batches() for record in batch]


def reference_walk(
    symbols: list[str], seed: int, limit: int, batch_size: int, ticks_per_second: float = 10.0
) -> list[tuple[str, float, int]]:
    """The market tick by tick, as a plain loop: (symbol, price, size) per tick, no scenarios."""
    profiles = [profile_for(symbol, seed) for symbol in symbols]
    log_price = list(np.log([p.start_price for p in profiles]))
    rng = np.random.default_rng(seed)
    dt_years = 1.0 / (ticks_per_second * SECONDS_PER_TRADING_YEAR)
    walked: list[tuple[str, float, int]] = []
    while len(walked) < limit:
        want = min(batch_size, limit - len(walked))
        shocks = rng.standard_normal(want)
        sizes = np.maximum(1, np.round(rng.lognormal(4.0, 1.0, want)))
        for i in range(want):
            turn = len(walked) % len(symbols)
            sigma = profiles[turn].annual_volatility
            log_price[turn] += sigma * math.sqrt(dt_years) * shocks[i] - 0.5 * sigma**2 * dt_years
            walked.append((symbols[turn], round(math.exp(log_price[turn]), 4), int(sizes[i])))
    return walked


@pytest.mark.parametrize("batch_size", [1, 7, 997, 2000])
@pytest.mark.parametrize("case", [c for c in CASES if "scenarios" not in c])
def test_a_whole_batch_walks_exactly_as_a_tick_by_tick_loop(case: dict[str, Any], batch_size: int) -> None:
    ticks = [(t.symbol, t.price, t.size) for t in records(batch_size, case) if isinstance(t, Tick)]
    expected = reference_walk(
        case["symbols"], case["seed"], case["limit"], batch_size, case.get("ticks_per_second", 10.0)
    )
    assert ticks == expected


@pytest.mark.parametrize("case", CASES)
def test_the_encoded_view_is_exactly_what_the_tick_view_encodes_to(case: dict[str, Any]) -> None:
    expected: list[WireRecord] = [
        (r.symbol.encode(), encode_tick(r)) if isinstance(r, Tick) else r for r in records(997, case)
    ]
    assert wire(997, case) == expected


def test_scenarios_reach_the_encoded_view() -> None:
    encoded = wire(997, CASES[1])
    bad = [r for r in encoded if isinstance(r, BadRecord)]
    assert len(bad) == 1
    assert bad[0].reason.startswith("price:")
    pairs = [r for r in encoded if not isinstance(r, BadRecord)]
    values = [value for _, value in pairs]
    assert len(values) - len(set(values)) == 1  # the duplicate: same record twice
    plain = wire(997, {**CASES[1], "scenarios": []})
    assert len(pairs) < len(plain)  # the gaps removed ticks
