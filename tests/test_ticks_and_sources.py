"""The tick wire format, the synthetic market and the archive's pure batching rules."""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import math

import orjson
import pytest

from marketpulse.archive.batching import PartitionBatch, check_record
from marketpulse.archive.quotes import QuoteBook
from marketpulse.contract.layout import object_key, parse_key, partition_date
from marketpulse.contract.settings.ingest import Scenario
from marketpulse.contract.ticks import Tick, TickError, decode_tick, encode_tick, format_time_us, reason_field
from marketpulse.ingest.pacing import Pacer
from marketpulse.sources.base import BadRecord
from marketpulse.sources.synthetic import NEW_YORK, SyntheticSource, profile_for

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def ticks_of(source: SyntheticSource) -> list[Tick]:
    return [r for batch in source.batches() for r in batch if isinstance(r, Tick)]


def test_a_tick_survives_the_wire_unchanged() -> None:
    tick = Tick("BRK.B", 412.5, 100, 1_767_623_400_123_456, 1_767_623_400_200_000, "synthetic", "p-1", 7)
    raw = encode_tick(tick)
    assert orjson.loads(raw)["event_time"] == "2026-01-05T14:30:00.123456Z"
    assert decode_tick(raw) == tick


@pytest.mark.parametrize("epoch_us", [0, 1, 999_999, 1_767_623_400_123_456, 4_102_444_799_999_999])
def test_the_fast_time_formatter_matches_strftime(epoch_us: int) -> None:
    expected = (EPOCH + dt.timedelta(microseconds=epoch_us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert format_time_us(epoch_us) == expected


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price": -1.0}, "price"),
        ({"price": 0}, "price"),
        ({"price": "12.5"}, "price"),
        ({"price": None}, "price"),
        ({"size": -5}, "size"),
        ({"size": True}, "size"),
        ({"symbol": "aapl"}, "symbol"),
        ({"event_time": "yesterday"}, "event_time"),
        ({"event_time": "2026-01-05T14:30:00"}, "event_time"),
        ({"v": 2}, "v"),
        ({"seq": -1}, "seq"),
        ({"producer_id": ""}, "producer_id"),
    ],
)
def test_invalid_ticks_are_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    good = orjson.loads(encode_tick(Tick("AAPL", 1.0, 1, 0, 0, "synthetic", "p", 0)))
    bad = orjson.dumps({**good, **change})
    with pytest.raises(TickError, match=f"^{field}:"):
        decode_tick(bad)
    record, reason = check_record(bad)
    assert record is None
    assert reason is not None
    assert reason.startswith(f"{field}:")


def test_non_json_is_refused_by_both_validators() -> None:
    with pytest.raises(TickError, match="not valid JSON"):
        decode_tick(b"{nope")
    assert check_record(b"{nope")[1] is not None
    assert check_record(b"[1,2]")[1] == "record: expected a JSON object"


def test_the_synthetic_market_is_deterministic_for_a_seed_and_differs_across_seeds() -> None:
    def prices(seed: int) -> list[float]:
        return [
            t.price
            for t in ticks_of(SyntheticSource(["AAPL", "MSFT"], "p", seed=seed, clock="simulated", limit=500))
        ]

    assert prices(1) == prices(1)
    assert prices(1) != prices(2)


def test_symbols_have_their_own_price_level_and_volatility_independent_of_the_watchlist() -> None:
    assert profile_for("AAPL", 42) == profile_for("AAPL", 42)
    assert profile_for("AAPL", 42) != profile_for("MSFT", 42)
    alone = ticks_of(SyntheticSource(["AAPL"], "p", seed=3, clock="simulated", limit=1))
    assert 10 <= alone[0].price <= 600


def test_simulated_time_stays_inside_regular_trading_hours_across_days() -> None:
    # 0.5 ticks/s per symbol, 2 symbols: 60,000 ticks span 30,000 s of trading, i.e. more than one session.
    source = SyntheticSource(
        ["AAPL", "MSFT"],
        "p",
        clock="simulated",
        ticks_per_second=0.5,
        limit=60_000,
        start=dt.datetime(2026, 1, 9, 21, 30, tzinfo=dt.UTC),  # 16:30 in New York
    )  # a Friday after the close
    ticks = ticks_of(source)
    local = [(EPOCH + dt.timedelta(microseconds=t.event_time_us)).astimezone(NEW_YORK) for t in ticks]
    assert all(m.weekday() < 5 for m in local)
    assert all(dt.time(9, 30) <= m.time() < dt.time(16, 0) for m in local)
    assert local[0].date() == dt.date(2026, 1, 12)  # Monday
    assert len({m.date() for m in local}) >= 3
    assert [t.event_time_us for t in ticks] == sorted(t.event_time_us for t in ticks)


def test_prices_move_like_a_random_walk_with_the_symbols_volatility() -> None:
    ticks = ticks_of(
        SyntheticSource(["AAPL"], "p", seed=5, clock="simulated", ticks_per_second=1, limit=50_000)
    )
    log_returns = [math.log(b.price / a.price) for a, b in itertools.pairwise(ticks)]
    per_tick = math.sqrt(sum(r * r for r in log_returns) / len(log_returns))
    annualised = per_tick * math.sqrt(252 * 6.5 * 3600)
    assert annualised == pytest.approx(profile_for("AAPL", 5).annual_volatility, rel=0.1)


def test_scenarios_inject_duplicates_malformed_records_spikes_and_gaps() -> None:
    base = ticks_of(SyntheticSource(["AAPL"], "p", clock="simulated", limit=200))
    records = [
        r
        for b in SyntheticSource(
            ["AAPL"],
            "p",
            clock="simulated",
            limit=200,
            scenarios=[
                Scenario("duplicate", at=10),
                Scenario("malformed", at=20),
                Scenario("spike", at=30, magnitude=0.5),
            ],
        ).batches()
        for r in b
    ]
    ticks = [r for r in records if isinstance(r, Tick)]
    bad = [r for r in records if isinstance(r, BadRecord)]
    assert ticks[10] == ticks[11]
    assert len(bad) == 1
    assert bad[0].symbol == "AAPL"
    assert ticks[31].price == pytest.approx(base[30].price * 1.5, rel=1e-6)

    gapped = ticks_of(
        SyntheticSource(
            ["AAPL"],
            "p",
            clock="simulated",
            ticks_per_second=10,
            limit=2000,
            scenarios=[Scenario("gap", at=100, seconds=30)],
        )
    )
    steps = [b.event_time_us - a.event_time_us for a, b in itertools.pairwise(gapped)]
    assert max(steps) >= 30_000_000
    assert len(gapped) == 2000 - 300


def test_archive_keys_are_deterministic_sortable_and_parse_back() -> None:
    key = object_key("2026-01-05", 2, 41, 1200, compress=False)
    assert key == "bronze/ticks/dt=2026-01-05/partition=2/00000000000000000041-00000000000000001200.ndjson"
    assert parse_key(key) == ("2026-01-05", 2, 41, 1200)
    assert parse_key(key + ".gz") == ("2026-01-05", 2, 41, 1200)
    assert parse_key("latest/quotes.json") is None
    assert object_key("2026-01-05", 0, 9, 9, compress=False) < object_key(
        "2026-01-05", 0, 10, 10, compress=False
    )
    assert partition_date(1_767_657_599_999) == "2026-01-05"


def test_a_batch_is_due_by_size_or_age_and_its_body_round_trips_through_gzip() -> None:
    batch = PartitionBatch(partition=0, first_offset=5, first_timestamp_ms=0, opened_at=100.0)
    batch.add(5, b'{"a":1}', 0)
    batch.skip(6)
    batch.add(7, b'{"a":2}', 0)
    assert (batch.first_offset, batch.last_offset) == (5, 7)
    assert not batch.due(100.5, max_age=1.0, max_bytes=1000)
    assert batch.due(101.0, max_age=1.0, max_bytes=1000)
    assert batch.due(100.0, max_age=1.0, max_bytes=16)
    assert gzip.decompress(batch.body(compress=True)) == batch.body(compress=False) == b'{"a":1}\n{"a":2}\n'


def test_the_quote_book_keeps_the_latest_price_and_the_change_since_the_first_tick_of_the_day() -> None:
    book = QuoteBook()
    book.update({"symbol": "AAPL", "price": 100.0, "event_time": "2026-01-05T14:30:00.000000Z", "size": 1})
    book.update({"symbol": "AAPL", "price": 102.0, "event_time": "2026-01-05T14:31:00.000000Z", "size": 1})
    book.update({"symbol": "AAPL", "price": 50.0, "event_time": "2026-01-05T14:30:30.000000Z", "size": 1})
    quote = orjson.loads(book.snapshot())["quotes"]["AAPL"]
    assert (quote["price"], quote["change_pct"]) == (102.0, 2.0)


def test_the_pacer_holds_the_rate_without_drift() -> None:
    now = [0.0]
    pacer = Pacer(rate=100, clock=lambda: now[0])
    assert pacer.delay_for(50) == 0.0
    assert pacer.delay_for(50) == pytest.approx(0.5)
    now[0] = 2.0  # we fell behind: no waiting until caught up
    assert pacer.delay_for(100) == 0.0
    assert Pacer(rate=0).delay_for(10**6) == 0.0


def test_dead_letter_metric_labels_are_bounded_field_names() -> None:
    assert reason_field("price: must be > 0") == "price"
    assert reason_field("something odd happened with a long free-form text") == "record"
