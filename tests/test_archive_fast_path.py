"""The archive's fast path: a record in ingest's exact layout is validated by one pattern match and
feeds the quote book in bulk. It must accept only what the full check accepts, read the same fields,
and leave the quote book exactly as record-by-record updates would."""

from __future__ import annotations

import random

import orjson
import pytest

from marketpulse.archive.batching import CANONICAL_TICK, check_record
from marketpulse.archive.quotes import QuoteBook, WireQuote
from marketpulse.contract.settings.ingest import Scenario
from marketpulse.contract.ticks import Tick, encode_tick
from marketpulse.sources.base import BadRecord
from marketpulse.sources.synthetic import SyntheticSource


def canonical_values(limit: int = 3000) -> list[bytes]:
    source = SyntheticSource(
        ["AAPL", "BRK.B", "MSFT"], "host-1-abc", seed=4, limit=limit, scenarios=[Scenario("malformed", at=5)]
    )
    return [
        value
        for batch in source.wire_batches()
        for r in batch
        if not isinstance(r, BadRecord)
        for _, value in [r]
    ]


def fields(record: dict[str, object]) -> tuple[object, ...]:
    return record["symbol"], record["price"], record["size"], record["event_time"]


def test_every_record_ingest_writes_takes_the_fast_path_and_reads_the_same_fields() -> None:
    edge_ticks = [
        Tick("A", 0.0001, 0, 0, 0, "replay", "p", 0),
        Tick("BRK-B", 123456789.5, 10**17, 4_102_444_799_999_999, 1, "finnhub", "x y", 10**17),
    ]
    values = canonical_values() + [encode_tick(t) for t in edge_ticks]
    for value in values:
        match = CANONICAL_TICK.fullmatch(value)
        assert match is not None, value
        record, reason = check_record(value)
        assert reason is None
        assert record is not None
        symbol, price, size, stamp = match.groups()
        assert (symbol.decode(), float(price), int(size), stamp.decode()) == fields(record)


@pytest.mark.parametrize(
    "value",
    [
        b'{"v":1,"symbol":"AAPL","price":0.0,"size":1,"event_time":"2026-01-05T14:30:00.000000Z",'
        b'"ingest_time":"2026-01-05T14:30:00.000000Z","source":"s","producer_id":"p","seq":1}',
        b'{"v":1,"symbol":"AAPL","price":1e400,"size":1,"event_time":"2026-01-05T14:30:00.000000Z",'
        b'"ingest_time":"2026-01-05T14:30:00.000000Z","source":"s","producer_id":"p","seq":1}',
        b'{"v":1,"symbol":"AAPL","price":1.5,"size":01,"event_time":"2026-01-05T14:30:00.000000Z",'
        b'"ingest_time":"2026-01-05T14:30:00.000000Z","source":"s","producer_id":"p","seq":1}',
        b'{"v":1,"symbol":"AAPL","price":1.5,"size":1,"event_time":"2026-01-05T14:30:00.000000Z",'
        b'"ingest_time":"2026-01-05T14:30:00.000000Z","source":"","producer_id":"p","seq":1}',
        b'{"v":1,"symbol":"AAPL","price":1.5,"size":1,"event_time":"2026-01-05T14:30:00.000000Z",'
        b'"ingest_time":"2026-01-05T14:30:00.000000Z","source":"s","producer_id":"p\xff","seq":1}',
        b'{"v":1,"symbol":"AAPL","price":1.5,"size":1,"event_time":"2026-01-05T14:30:00.000000Z",'
        b'"ingest_time":"2026-01-05T14:30:00.000000Z","source":"s","producer_id":"p","seq":99999999999999999999}',
    ],
)
def test_invalid_records_never_take_the_fast_path(value: bytes) -> None:
    assert CANONICAL_TICK.fullmatch(value) is None
    assert check_record(value)[1] is not None


def test_whatever_the_fast_path_accepts_the_full_check_accepts_with_the_same_fields() -> None:
    rng = random.Random(11)  # noqa: S311 - a reproducible fuzz, not a secret
    values = canonical_values(400)
    alphabet = b'0123456789.-+eE:TZ"{},\\ aAz\x00\xff'
    matched = refused = 0
    for _ in range(20_000):
        mutated = bytearray(rng.choice(values))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(mutated))
            action = rng.random()
            if action < 0.4:
                mutated[at] = rng.choice(alphabet)
            elif action < 0.7:
                del mutated[at]
            else:
                mutated.insert(at, rng.choice(alphabet))
        value = bytes(mutated)
        match = CANONICAL_TICK.fullmatch(value)
        if match is None:
            refused += 1
            continue
        matched += 1
        record, reason = check_record(value)
        assert reason is None, (value, reason)
        assert record is not None
        symbol, price, size, stamp = match.groups()
        assert (symbol.decode(), float(price), int(size), stamp.decode()) == fields(record), value
    # Both outcomes occur: some mutations keep a valid record (a digit for a digit), most do not.
    assert matched > 1000
    assert refused > 1000


def test_the_quote_book_fed_in_bulk_ends_as_record_by_record_updates() -> None:
    rng = random.Random(5)  # noqa: S311 - a reproducible fuzz, not a secret
    days = ["2026-01-05", "2026-01-06"]
    for _ in range(300):
        rows: list[WireQuote] = []
        for _ in range(rng.randint(1, 40)):
            # Mostly moving forward, with late ticks, equal times and day changes both ways.
            stamp = f"{rng.choice(days)}T14:{rng.randint(0, 5):02d}:00.000000Z".encode()
            price = f"{rng.uniform(1, 200):.4f}".encode()
            rows.append((rng.choice([b"AAPL", b"MSFT"]), price, str(rng.randint(1, 500)).encode(), stamp))
        bulk, one_by_one = QuoteBook(), QuoteBook()
        bulk.update_rows(rows)
        for symbol, price, size, stamp in rows:
            one_by_one.update(
                {
                    "symbol": symbol.decode(),
                    "price": float(price),
                    "event_time": stamp.decode(),
                    "size": int(size),
                }
            )
        assert bulk.quotes == one_by_one.quotes, rows
        assert bulk.changed == one_by_one.changed
        assert orjson.loads(bulk.snapshot()) == orjson.loads(one_by_one.snapshot())
