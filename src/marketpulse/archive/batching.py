"""Pure batching rules for the archive: which records a bronze object holds and how they are checked.

An object holds the valid records of one partition's offset range (its key: `contract.layout`), so
re-consuming the same range after a crash names the same object: bronze stays exactly-once.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from marketpulse.contract.layout import BRONZE_PREFIX, object_key, partition_date
from marketpulse.contract.ticks.model import SCHEMA_VERSION, TICKER, TICKER_PATTERN

_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")

# The exact layout ingest writes (orjson, keys in wire order, no spaces). A value it matches is one
# `check_record` accepts, proven without decoding the JSON: every field's text is restricted to what is
# valid JSON of the right type and range (a price with a fraction and a non-zero digit, integers below
# 10^18, printable ASCII strings without escapes). Anything else takes the full check.
_STAMP = rb"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
_TEXT = rb"[\x20\x21\x23-\x5b\x5d-\x7e]+"
_COUNT = rb"(?:0|[1-9][0-9]{0,17})"
CANONICAL_TICK = re.compile(
    rb'\{"v":1,"symbol":"(' + TICKER_PATTERN.strip("^$").encode() + rb')"'
    rb',"price":((?:[1-9][0-9]{0,15}\.[0-9]{1,17})|(?:0\.(?=[0-9]*[1-9])[0-9]{1,17}))'
    rb',"size":(' + _COUNT + rb")"
    rb',"event_time":"(' + _STAMP + rb')"'
    rb',"ingest_time":"' + _STAMP + rb'"'
    rb',"source":"' + _TEXT + rb'","producer_id":"' + _TEXT + rb'"'
    rb',"seq":' + _COUNT + rb"\}"
)


def check_record(value: bytes | None) -> tuple[dict[str, Any] | None, str | None]:
    """Cheap structural validation on the archive's hot path: (record, None) or (None, reason)."""
    if value is None:
        return None, "record: empty value"
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return None, f"record: not valid JSON ({exc})"
    if not isinstance(record, dict):
        return None, "record: expected a JSON object"
    if record.get("v") != SCHEMA_VERSION:
        return None, f"v: expected schema version {SCHEMA_VERSION}, got {record.get('v')!r}"
    symbol = record.get("symbol")
    if not isinstance(symbol, str) or not TICKER.match(symbol):
        return None, f"symbol: expected an upper-case ticker, got {symbol!r}"
    price = record.get("price")
    if isinstance(price, bool) or not isinstance(price, int | float) or not price > 0:
        return None, f"price: expected a number > 0, got {price!r}"
    for name in ("size", "seq"):
        number = record.get(name)
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            return None, f"{name}: expected an integer >= 0, got {number!r}"
    for name in ("event_time", "ingest_time"):
        stamp = record.get(name)
        if not isinstance(stamp, str) or not _TIMESTAMP.match(stamp):
            return None, f"{name}: expected an ISO-8601 timestamp with offset, got {stamp!r}"
    for name in ("producer_id", "source"):
        text = record.get(name)
        if not isinstance(text, str) or not text:
            return None, f"{name}: expected a non-empty string, got {text!r}"
    return record, None


@dataclass
class PartitionBatch:
    partition: int
    first_offset: int
    first_timestamp_ms: int
    opened_at: float
    last_offset: int = -1
    lines: list[bytes] = field(default_factory=list)
    size: int = 0
    timestamps_ms: list[int] = field(default_factory=list)
    prefix: str = BRONZE_PREFIX  # what the object holds: ticks, or the dead letters

    def add(self, offset: int, value: bytes | None, timestamp_ms: int | None = None) -> None:
        self.last_offset = offset
        if value is not None:
            self.lines.append(value)
            self.size += len(value) + 1
            if timestamp_ms is not None:
                self.timestamps_ms.append(timestamp_ms)

    def skip(self, offset: int) -> None:
        """An offset that belongs to the range but not to the object (it went to the dead-letter topic)."""
        self.last_offset = offset

    def due(self, now: float, max_age: float, max_bytes: int) -> bool:
        return self.size >= max_bytes or now - self.opened_at >= max_age

    def key(self, *, compress: bool) -> str:
        return object_key(
            partition_date(self.first_timestamp_ms),
            self.partition,
            self.first_offset,
            self.last_offset,
            compress=compress,
            prefix=self.prefix,
        )

    def body(self, *, compress: bool) -> bytes:
        data = b"\n".join(self.lines) + b"\n" if self.lines else b""
        return gzip.compress(data, compresslevel=5, mtime=0) if compress else data
