"""Bronze objects for the loader and dbt suites: synthetic ticks, written under archive keys."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from marketpulse.contract.layout import object_key
from marketpulse.contract.ticks import Tick, encode_tick
from marketpulse.sources.synthetic import SyntheticSource
from marketpulse.storage import ObjectStore
from marketpulse.transform.bronze_objects import RAW_TICKS_COLUMNS

# The bronze NDJSON fields and their DuckDB types, as the loader reads them; the baselines and the
# ceiling read the same columns so that they do the same work.
BRONZE_COLUMNS = RAW_TICKS_COLUMNS
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "SPY"]
PARTITIONS = 3


def tick_lines(
    count: int, *, clock: Literal["wall", "simulated"] = "simulated", ticks_per_second: float = 2.0
) -> Iterator[bytes]:
    """`count` encoded ticks from the real synthetic source (simulated clock: several trading days)."""
    source = SyntheticSource(
        symbols=SYMBOLS,
        producer_id="bench-loader",
        seed=7,
        clock=clock,
        ticks_per_second=ticks_per_second,
        limit=count,
        batch_size=5000,
    )
    for batch in source.batches():
        for record in batch:
            if isinstance(record, Tick):
                yield encode_tick(record)


@dataclass(frozen=True)
class BronzeObject:
    key: str
    body: bytes
    rows: int


def bronze_objects(count: int, rows_per_object: int) -> list[BronzeObject]:
    """Ticks cut into NDJSON objects the way the archive names them (round robin over partitions)."""
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    objects: list[BronzeObject] = []
    next_offset = [0] * PARTITIONS
    chunk: list[bytes] = []

    def flush() -> None:
        partition = len(objects) % PARTITIONS
        first = next_offset[partition]
        last = first + len(chunk) - 1
        next_offset[partition] = last + 1
        key = object_key(date, partition, first, last, compress=False)
        objects.append(BronzeObject(key, b"\n".join(chunk) + b"\n", len(chunk)))
        chunk.clear()

    for line in tick_lines(count):
        chunk.append(line)
        if len(chunk) == rows_per_object:
            flush()
    if chunk:
        flush()
    return objects


def upload(store: ObjectStore, objects: list[BronzeObject], threads: int = 8) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda o: store.put(o.key, o.body, "application/x-ndjson"), objects))
