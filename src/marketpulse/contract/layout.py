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
# The dead-letter topic archived the same way, beside the ticks: under bronze/, so the bucket's bronze
# retention keeps them exactly as long, and outside bronze/ticks/, so no loader ever reads them.
DEAD_LETTERS_PREFIX: Final = "bronze/dead-letters/"
OFFSET_DIGITS: Final = 20  # zero-padded so that keys sort by offset
_KEY_TAIL: Final = (
    r"dt=(?P<dt>\d{4}-\d{2}-\d{2})/partition=(?P<partition>\d+)/"
    r"(?P<first>\d+)-(?P<last>\d+)\.ndjson(?P<gz>\.gz)?$"
)
BRONZE_KEY: Final = re.compile("^" + re.escape(BRONZE_PREFIX) + _KEY_TAIL)
_KEYS: Final = {
    BRONZE_PREFIX: BRONZE_KEY,
    DEAD_LETTERS_PREFIX: re.compile("^" + re.escape(DEAD_LETTERS_PREFIX) + _KEY_TAIL),
}
# The newest quote of every symbol, rewritten by the archive every couple of seconds.
LATEST_PREFIX: Final = "latest/"
QUOTES_KEY: Final = f"{LATEST_PREFIX}quotes.json"
# Gold tables as Parquet, and the manifest written last in a cycle (what the dashboard reads first).
GOLD_PREFIX: Final = "gold/"
MANIFEST_KEY: Final = "gold/_manifest.json"


def partition_date(kafka_timestamp_ms: int) -> str:
    return dt.datetime.fromtimestamp(kafka_timestamp_ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def key_prefix(date: str, partition: int, first_offset: int, prefix: str = BRONZE_PREFIX) -> str:
    return f"{prefix}dt={date}/partition={partition}/{first_offset:0{OFFSET_DIGITS}d}-"


def object_key(
    date: str,
    partition: int,
    first_offset: int,
    last_offset: int,
    *,
    compress: bool,
    prefix: str = BRONZE_PREFIX,
) -> str:
    suffix = ".ndjson.gz" if compress else ".ndjson"
    return f"{key_prefix(date, partition, first_offset, prefix)}{last_offset:0{OFFSET_DIGITS}d}{suffix}"


def parse_key(key: str, prefix: str = BRONZE_PREFIX) -> tuple[str, int, int, int] | None:
    """(date, partition, first, last) of an object key under `prefix` (bronze ticks by default, or
    DEAD_LETTERS_PREFIX), or None for any other key."""
    match = _KEYS[prefix].match(key)
    if not match:
        return None
    return match["dt"], int(match["partition"]), int(match["first"]), int(match["last"])
