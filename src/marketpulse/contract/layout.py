"""The bucket layout every workload agrees on: bronze object keys, the latest quotes, gold and its manifest.

The archive writes bronze and the quotes, the transform reads bronze and publishes gold, the dashboard
and the operator read the quotes and the manifest: this module is the one place their keys are spelt.
A bronze object holds one partition's offset range `[first, last]`; its key is a function of that range
and of the first record's Kafka timestamp, so re-consuming the same range names the same object.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

BRONZE_PREFIX: Final = "bronze/ticks/"
OFFSET_DIGITS: Final = 20  # zero-padded so that keys sort by offset
BRONZE_KEY: Final = re.compile(
    r"^bronze/ticks/dt=(?P<dt>\d{4}-\d{2}-\d{2})/partition=(?P<partition>\d+)/"
    r"(?P<first>\d+)-(?P<last>\d+)\.ndjson(?P<gz>\.gz)?$"
)
# The newest quote of every symbol, rewritten by the archive every couple of seconds.
LATEST_PREFIX: Final = "latest/"
QUOTES_KEY: Final = f"{LATEST_PREFIX}quotes.json"
# Gold tables as Parquet, and the manifest written last in a cycle (what the dashboard reads first).
GOLD_PREFIX: Final = "gold/"
MANIFEST_KEY: Final = "gold/_manifest.json"


def partition_date(kafka_timestamp_ms: int) -> str:
    return dt.datetime.fromtimestamp(kafka_timestamp_ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def key_prefix(date: str, partition: int, first_offset: int) -> str:
    return f"{BRONZE_PREFIX}dt={date}/partition={partition}/{first_offset:0{OFFSET_DIGITS}d}-"


def object_key(date: str, partition: int, first_offset: int, last_offset: int, *, compress: bool) -> str:
    suffix = ".ndjson.gz" if compress else ".ndjson"
    return f"{key_prefix(date, partition, first_offset)}{last_offset:0{OFFSET_DIGITS}d}{suffix}"


def parse_key(key: str) -> tuple[str, int, int, int] | None:
    """(date, partition, first, last) of a bronze object key, or None for any other key."""
    match = BRONZE_KEY.match(key)
    if not match:
        return None
    return match["dt"], int(match["partition"]), int(match["first"]), int(match["last"])
