"""A deterministic, realistic synthetic market.

Each symbol follows a geometric random walk with its own price level and volatility (both derived
from the seed and the symbol, so a watchlist change does not reshuffle other symbols). Trade sizes
are round lots with a heavy tail. In `simulated` time the clock runs through regular NYSE hours
(09:30-16:00 America/New_York, weekdays) at `ticks_per_second` per symbol, so a backfill spans real
trading days; in `wall` time event times are now. A `lead_in` walk (a finite backfill) is shifted so
that it ends at the price a live source with the same seed starts from: history leads into the live
market without a jump. Scenarios inject gaps, spikes, duplicates and malformed records at chosen tick
indices, for tests.

A batch is drawn and walked at once with numpy, giving exactly the prices of a tick-by-tick walk;
`wire_batches()` yields the same records already encoded for Kafka, which is what ingest sends.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from math import exp
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
from orjson import dumps

from marketpulse.contract.settings.ingest import Scenario
from marketpulse.contract.ticks import Tick, encode_tick
from marketpulse.contract.ticks.model import SCHEMA_VERSION, format_time_us
from marketpulse.sources.base import BadRecord, Record

NEW_YORK = ZoneInfo("America/New_York")
OPEN = dt.time(9, 30)
CLOSE = dt.time(16, 0)
SECONDS_PER_TRADING_YEAR = 252 * 6.5 * 3600
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Where the simulated clock starts unless told: a Monday's open (09:30 in New York).
DEFAULT_START = dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.UTC)
# A tick already encoded for Kafka as (key, value), or a bad record for the dead-letter topic.
WireRecord = tuple[bytes, bytes] | BadRecord


@dataclass(frozen=True)
class SymbolProfile:
    start_price: float
    annual_volatility: float


def profile_for(symbol: str, seed: int) -> SymbolProfile:
    digest = hashlib.sha256(f"{seed}:{symbol}".encode()).digest()
    unit_a = int.from_bytes(digest[:8], "big") / 2**64
    unit_b = int.from_bytes(digest[8:16], "big") / 2**64
    return SymbolProfile(
        start_price=round(10 * math.exp(unit_a * math.log(60)), 2),  # log-uniform between 10 and 600
        annual_volatility=0.15 + 0.45 * unit_b,  # 15 % .. 60 %
    )


def next_session_open(moment: dt.datetime) -> dt.datetime:
    """The next instant (>= moment) inside regular trading hours."""
    local = moment.astimezone(NEW_YORK)
    while True:
        if local.weekday() < 5:
            open_at = local.replace(hour=OPEN.hour, minute=OPEN.minute, second=0, microsecond=0)
            close_at = local.replace(hour=CLOSE.hour, minute=CLOSE.minute, second=0, microsecond=0)
            if local < open_at:
                return open_at.astimezone(dt.UTC)
            if local < close_at:
                return local.astimezone(dt.UTC)
        local = (local + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class SyntheticSource:
    symbols: Sequence[str]
    producer_id: str
    seed: int = 42
    clock: Literal["wall", "simulated"] = "wall"
    ticks_per_second: float = 10.0  # per symbol, in event time (simulated clock)
    start: dt.datetime = DEFAULT_START
    limit: int | None = None
    batch_size: int = 1000
    scenarios: Sequence[Scenario] = ()
    # End the walk at each symbol's start price (needs a limit): a backfill that leads into live ticks.
    lead_in: bool = False
    # The ingest time of a batch, in epoch microseconds (replaceable so that tests can fix it).
    now_us: Callable[[], int] = field(default=lambda: time.time_ns() // 1000)
    _seq: int = 0

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("symbols: at least one symbol is needed")
        if self.ticks_per_second <= 0:
            raise ValueError(f"ticks_per_second: must be > 0, got {self.ticks_per_second}")
        profiles = [profile_for(s, self.seed) for s in self.symbols]
        self._log_price = np.log([p.start_price for p in profiles])
        self._sigma = np.array([p.annual_volatility for p in profiles])
        self._rng = np.random.default_rng(self.seed)
        self._clock_us = epoch_us(next_session_open(self.start))
        self._session_close_us = session_close_us(self._clock_us)
        self._scenarios = {s.at: s for s in self.scenarios}
        self._gap_until_us: dict[int, int] = {}
        self._emitted = 0
        if self.lead_in:
            self._log_price += self._log_price - self._walk_end()

    def _walk_end(self) -> np.ndarray:
        """Each symbol's log price after the whole finite walk, from a twin drawing the same numbers."""
        if self.limit is None:
            raise ValueError("lead_in: needs a limit (a finite walk has an end to anchor)")
        twin = replace(self, lead_in=False, scenarios=(), now_us=lambda: 0)
        for _ in twin._draws():
            pass
        return twin._log_price

    def _simulated_times(self, count: int, step_us: int) -> np.ndarray:
        """Event times for the next `count` ticks, skipping nights and weekends."""
        times = self._clock_us + step_us * np.arange(1, count + 1, dtype=np.int64)
        if times[-1] < self._session_close_us:  # the common case: the whole batch fits in the session
            self._clock_us = int(times[-1])
            return times
        for i in range(count):
            candidate = self._clock_us + step_us
            if candidate >= self._session_close_us:
                candidate = epoch_us(
                    next_session_open(from_epoch_us(self._session_close_us) + dt.timedelta(microseconds=1))
                )
                self._session_close_us = session_close_us(candidate)
            self._clock_us = candidate
            times[i] = candidate
        return times

    def _draw(self, want: int, step_us: int, dt_years: float) -> _Draw:
        """The next `want` ticks as columns: the whole batch's random draws and walk at once."""
        n_symbols = len(self.symbols)
        first = self._emitted % n_symbols
        # Symbols take turns so each gets the same rate.
        index = (np.arange(want) + first) % n_symbols
        shocks = self._rng.standard_normal(want)
        sizes = np.maximum(1, np.round(self._rng.lognormal(4.0, 1.0, want))).astype(np.int64)
        sigma = self._sigma[index]
        log_returns = sigma * math.sqrt(dt_years) * shocks - 0.5 * sigma**2 * dt_years
        # Each symbol's walk is a running sum seeded with its last log price; cumsum adds in the same
        # order as a tick-by-tick loop would, so prices are bit-for-bit those of the sequential walk.
        path = np.empty(want)
        for symbol_index in range(n_symbols):
            at = (symbol_index - first) % n_symbols
            if at >= want:  # a short last batch may not reach every symbol
                continue
            walk = np.cumsum(np.concatenate(([self._log_price[symbol_index]], log_returns[at::n_symbols])))
            path[at::n_symbols] = walk[1:]
            self._log_price[symbol_index] = walk[-1]
        now_us = self.now_us()
        if self.clock == "simulated":
            event_times: list[int] = self._simulated_times(want, step_us).tolist()
        else:
            event_times = [now_us] * want
        return _Draw(
            index=index.tolist(),
            prices=[round(exp(value), 4) for value in path.tolist()],
            sizes=sizes.tolist(),
            event_times=event_times,
            now_us=now_us,
        )

    def _plain(self, want: int) -> bool:
        """No scenario falls in the next `want` ticks and no gap is open: no per-tick rules apply."""
        if self._gap_until_us:
            return False
        return not any(self._emitted <= at < self._emitted + want for at in self._scenarios)

    def _draws(self) -> Iterator[tuple[_Draw, bool]]:
        n_symbols = len(self.symbols)
        step_us = max(1, round(1_000_000 / (self.ticks_per_second * n_symbols)))
        dt_years = 1.0 / (self.ticks_per_second * SECONDS_PER_TRADING_YEAR)
        while self.limit is None or self._emitted < self.limit:
            want = self.batch_size if self.limit is None else min(self.batch_size, self.limit - self._emitted)
            plain = self._plain(want)
            draw = self._draw(want, step_us, dt_years)
            yield draw, plain
            self._emitted += want

    def batches(self) -> Iterator[list[Record]]:
        for draw, plain in self._draws():
            if not plain:
                yield self._with_scenarios(draw)
                continue
            symbols, pid, seq = self.symbols, self.producer_id, self._seq
            now_us = draw.now_us
            batch: list[Record] = [
                Tick(symbols[s], price, size, event_us, now_us, "synthetic", pid, seq + i)
                for i, (s, price, size, event_us) in enumerate(
                    zip(draw.index, draw.prices, draw.sizes, draw.event_times, strict=True)
                )
            ]
            self._seq += len(batch)
            yield batch

    def wire_batches(self) -> Iterator[list[WireRecord]]:
        """The same records as `batches()`, with each tick already encoded as (key, value) for Kafka.

        Byte-for-byte what `encode_tick` makes of the tick `batches()` yields, without building a Tick
        per record: on ingest's hot path that object and its dict are most of the cost of a tick.
        """
        keys = [symbol.encode() for symbol in self.symbols]
        for draw, plain in self._draws():
            if not plain:
                yield [
                    (record.symbol.encode(), encode_tick(record)) if isinstance(record, Tick) else record
                    for record in self._with_scenarios(draw)
                ]
                continue
            symbols, pid, seq = self.symbols, self.producer_id, self._seq
            ingest_time = format_time_us(draw.now_us)
            if self.clock == "wall":  # every tick of the batch happened "now"
                event_text = [ingest_time] * len(draw.index)
            else:
                event_text = [format_time_us(event_us) for event_us in draw.event_times]
            batch: list[WireRecord] = [
                (
                    keys[s],
                    dumps(
                        {
                            "v": SCHEMA_VERSION,
                            "symbol": symbols[s],
                            "price": price,
                            "size": size,
                            "event_time": event_time,
                            "ingest_time": ingest_time,
                            "source": "synthetic",
                            "producer_id": pid,
                            "seq": seq + i,
                        }
                    ),
                )
                for i, (s, price, size, event_time) in enumerate(
                    zip(draw.index, draw.prices, draw.sizes, event_text, strict=True)
                )
            ]
            self._seq += len(batch)
            yield batch

    def _with_scenarios(self, draw: _Draw) -> list[Record]:
        """A batch tick by tick, applying the scenarios that fall in it and the gaps still open."""
        batch: list[Record] = []
        now_us = draw.now_us
        for i, symbol_index in enumerate(draw.index):
            position = self._emitted + i
            event_us = draw.event_times[i]
            symbol = self.symbols[symbol_index]
            price = draw.prices[i]
            scenario = self._scenarios.get(position)
            if scenario is not None:
                if scenario.kind == "gap":
                    self._gap_until_us[symbol_index] = event_us + round(scenario.seconds * 1_000_000)
                elif scenario.kind == "spike":
                    price = round(price * (1 + scenario.magnitude), 4)
                elif scenario.kind == "malformed":
                    raw = b'{"v":1,"symbol":"' + symbol.encode() + b'","price":"not-a-number"}'
                    batch.append(
                        BadRecord(raw, "price: expected a number (injected malformed record)", symbol)
                    )
            if self._gap_until_us:
                until = self._gap_until_us.get(symbol_index)
                if until is not None:
                    if event_us < until:
                        continue
                    del self._gap_until_us[symbol_index]
            tick = Tick(
                symbol, price, draw.sizes[i], event_us, now_us, "synthetic", self.producer_id, self._seq
            )
            self._seq += 1
            batch.append(tick)
            if scenario is not None and scenario.kind == "duplicate":
                batch.append(tick)
        return batch


@dataclass(frozen=True, slots=True)
class _Draw:
    """One batch of the market before scenarios: per tick, its symbol's index, price, size, event time."""

    index: list[int]
    prices: list[float]
    sizes: list[int]
    event_times: list[int]
    now_us: int


def epoch_us(moment: dt.datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(value: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=value)


def session_close_us(moment_us: int) -> int:
    local = from_epoch_us(moment_us).astimezone(NEW_YORK)
    return epoch_us(local.replace(hour=CLOSE.hour, minute=CLOSE.minute, second=0, microsecond=0))
