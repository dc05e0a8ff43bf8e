"""Replay ticks from an NDJSON or CSV file, local or in S3, at a chosen speed; it ends with the file.

CSV needs a header row with at least `symbol,timestamp,price,size`; `timestamp` is ISO-8601 with an
offset or epoch milliseconds. NDJSON lines are objects with the same fields (or full v1 ticks, whose
`event_time` is used). The producer id is derived from the file and `seq` is the line number, so
replaying the same file twice yields the same tick identities and silver keeps one copy.
Bad rows become dead letters whose reason names the line and the field.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from marketpulse.contract.ticks import Tick
from marketpulse.contract.ticks.model import TICKER, TickError, parse_time_us
from marketpulse.sources.base import BadRecord, Record

REQUIRED_CSV_COLUMNS = ("symbol", "timestamp", "price", "size")


def replay_producer_id(uri: str) -> str:
    return "replay-" + hashlib.sha256(uri.encode()).hexdigest()[:12]


def parse_timestamp_us(value: Any) -> int:
    """ISO-8601 with offset, or epoch milliseconds (number or digits)."""
    if isinstance(value, bool):
        raise TickError(f"timestamp: expected ISO-8601 or epoch milliseconds, got {value!r}")
    if isinstance(value, int | float):
        return int(value * 1000)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text) * 1000
        return parse_time_us(text, "timestamp")
    raise TickError(f"timestamp: expected ISO-8601 or epoch milliseconds, got {value!r}")


def tick_from_fields(fields: dict[str, Any], *, producer_id: str, seq: int) -> Tick:
    symbol = fields.get("symbol")
    if not isinstance(symbol, str) or not TICKER.match(symbol.strip()):
        raise TickError(f"symbol: expected an upper-case ticker, got {symbol!r}")
    try:
        price = float(fields.get("price"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TickError(f"price: expected a number, got {fields.get('price')!r}") from None
    if not math.isfinite(price) or price <= 0:
        raise TickError(f"price: must be a finite number > 0, got {fields.get('price')!r}")
    raw_size = fields.get("size")
    try:
        size = int(raw_size) if not isinstance(raw_size, str) else int(raw_size.strip())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TickError(f"size: expected an integer, got {raw_size!r}") from None
    if size < 0:
        raise TickError(f"size: must be >= 0, got {size}")
    stamp = fields.get("timestamp", fields.get("event_time"))
    if stamp is None or stamp == "":
        raise TickError("timestamp: missing")
    event_us = parse_timestamp_us(stamp)
    return Tick(symbol.strip(), price, size, event_us, time.time_ns() // 1000, "replay", producer_id, seq)


@dataclass
class ReplaySource:
    """`opener` returns the file's bytes (local read or S3 get); `speed` 0 means as fast as possible."""

    uri: str
    opener: Callable[[str], bytes]
    speed: float = 1.0
    file_format: Literal["ndjson", "csv"] | None = None
    batch_size: int = 1000
    # Start over at the end of the file; each pass is a new producer (`<id>-pass<n>`), so its ticks are new.
    loop: bool = False
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    _producer_id: str = field(init=False)

    def __post_init__(self) -> None:
        if self.speed < 0:
            raise ValueError(f"speed: must be >= 0, got {self.speed}")
        if self.file_format is None:
            name = self.uri.lower().removesuffix(".gz")
            if name.endswith((".ndjson", ".jsonl", ".json")):
                self.file_format = "ndjson"
            elif name.endswith(".csv"):
                self.file_format = "csv"
            else:
                raise ValueError(
                    f"{self.uri}: cannot tell the format from the name; expected .ndjson or .csv"
                )
        self._producer_id = replay_producer_id(self.uri)

    def _rows(self, text: str) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
        """(line number, fields or None, error) for every data line."""
        if self.file_format == "csv":
            reader = csv.DictReader(io.StringIO(text))
            missing = [c for c in REQUIRED_CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(
                    f"{self.uri}: header row lacks column(s) {', '.join(missing)}; "
                    f"expected at least {','.join(REQUIRED_CSV_COLUMNS)}"
                )
            for row in reader:
                yield reader.line_num, dict(row), None
            return
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, None, f"record: not valid JSON ({exc})"
                continue
            if not isinstance(value, dict):
                yield number, None, "record: expected a JSON object"
                continue
            yield number, value, None

    def batches(self) -> Iterator[list[Record]]:
        base_id, rounds = self._producer_id, 0
        while True:
            yield from self._one_pass()
            if not self.loop:
                return
            rounds += 1
            self._producer_id = f"{base_id}-pass{rounds}"

    def _one_pass(self) -> Iterator[list[Record]]:
        data = self.opener(self.uri)
        if self.uri.endswith(".gz"):
            data = gzip.decompress(data)
        lines = data.decode("utf-8", errors="replace")
        first_event: int | None = None
        started = self.clock()
        batch: list[Record] = []
        for number, fields, error in self._rows(lines):
            if fields is not None:
                try:
                    tick = tick_from_fields(fields, producer_id=self._producer_id, seq=number)
                except TickError as exc:
                    error = str(exc)
                else:
                    if self.speed > 0:
                        first_event = tick.event_time_us if first_event is None else first_event
                        due = started + (tick.event_time_us - first_event) / 1e6 / self.speed
                        wait = due - self.clock()
                        if wait > 0:
                            if batch:
                                yield batch
                                batch = []
                            self.sleep(wait)
                    batch.append(tick)
            if error is not None:
                symbol = fields.get("symbol") if fields else None
                batch.append(
                    BadRecord(
                        orjson.dumps(fields) if fields else b"",
                        f"line {number}: {error}",
                        symbol if isinstance(symbol, str) and TICKER.match(symbol) else None,
                    )
                )
            if len(batch) >= self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


def local_opener(uri: str) -> bytes:
    path = Path(uri.removeprefix("file://"))
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{uri}: no such file") from None
