"""Replay ticks from an NDJSON or CSV file, local or in S3, at a chosen speed; it ends with the file.

CSV needs a header row with at least `symbol,timestamp,price,size`; `timestamp` is ISO-8601 with an
offset or epoch milliseconds. NDJSON lines are objects with the same fields (or full v1 ticks, whose
`event_time` is used). The producer id is derived from the file and `seq` is the line number, so
replaying the same file twice yields the same tick identities and silver keeps one copy.
Bad rows become dead letters whose reason names the line and the field.

The file is streamed (a local file, or an S3 object read a window at a time), never held whole: memory
is bounded by a constant (a read block, one line of at most `MAX_LINE_BYTES`, one batch), not by the
file's size. A longer line is dead-lettered with its first bytes and its size, never parsed.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import math
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, cast

import orjson

from marketpulse.contract.ticks import Tick
from marketpulse.contract.ticks.model import TICKER, TickError, parse_time_us
from marketpulse.sources.base import BadRecord, Record
from marketpulse.sources.lines import MAX_LINE_BYTES, ByteStream, Line, numbered_lines

REQUIRED_CSV_COLUMNS = ("symbol", "timestamp", "price", "size")
# A batch also ends at this many bytes of dead letters, so that a run of long bad lines stays bounded.
MAX_BATCH_BAD_BYTES = 8 << 20
# Extra CSV cells beyond the header's columns (csv.DictReader keys them None, which JSON cannot).
EXTRA_CSV_CELLS = "_extra"


@dataclass(frozen=True, slots=True)
class Row:
    """One data line: its fields, or why it is no record (with its first bytes when it was too long)."""

    number: int
    fields: dict[str, Any] | None = None
    error: str | None = None
    raw: bytes = b""
    size: int | None = None


def _too_long(line: Line) -> Row:
    return Row(
        line.number,
        error=f"record: {line.size} bytes, longer than a replay line may be ({MAX_LINE_BYTES} bytes)",
        raw=line.data,
        size=line.size,
    )


def _json_object(data: bytes) -> dict[str, Any] | str:
    """The line's object, or why it is not one. Bytes that are not UTF-8 are read as U+FFFD, as before."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            value = orjson.loads(data.decode("utf-8", errors="replace"))
        except orjson.JSONDecodeError as exc:
            return f"record: not valid JSON ({exc})"
    return value if isinstance(value, dict) else "record: expected a JSON object"


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
    """`opener` opens the file as a byte stream (a local file, an S3 object), which the source reads
    through and closes; `speed` 0 means as fast as possible."""

    uri: str
    opener: Callable[[str], ByteStream]
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

    def _rows(self, stream: ByteStream) -> Iterator[Row]:
        """Every data line of the file, in order."""
        if self.file_format == "csv":
            yield from self._csv_rows(stream)
            return
        for line in numbered_lines(stream):
            if line.too_long:
                yield _too_long(line)
                continue
            if not line.data.strip():
                continue
            value = _json_object(line.data)
            if isinstance(value, str):
                yield Row(line.number, error=value)
            else:
                yield Row(line.number, value)

    def _csv_rows(self, stream: ByteStream) -> Iterator[Row]:
        # csv reads the lines we give it (so a quoted field may still span lines); an over-long line
        # reaches it as an empty one, and is reported here by its number.
        too_long: list[Line] = []

        def texts() -> Iterator[str]:
            for line in numbered_lines(stream):
                if line.too_long:
                    too_long.append(line)
                    yield "\n"
                else:
                    yield line.data.decode("utf-8", errors="replace") + "\n"

        reader = csv.reader(texts())
        header = next(reader, [])
        missing = [c for c in REQUIRED_CSV_COLUMNS if c not in header]
        if missing:
            raise ValueError(
                f"{self.uri}: header row lacks column(s) {', '.join(missing)}; "
                f"expected at least {','.join(REQUIRED_CSV_COLUMNS)}"
            )
        while True:
            try:
                cells: list[str] | None = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # e.g. a field over csv's limit: that row only
                cells = None
                yield Row(reader.line_num, error=f"record: not valid CSV ({exc})")
            # Over-long lines up to here, the row's own and any inside its quoted fields.
            while too_long and too_long[0].number <= reader.line_num:
                yield _too_long(too_long.pop(0))
            if not cells:
                continue
            fields: dict[str, Any] = dict(zip(header, cells, strict=False))
            if len(cells) > len(header):
                fields[EXTRA_CSV_CELLS] = cells[len(header) :]
            for name in header[len(cells) :]:
                fields[name] = None
            yield Row(reader.line_num, fields)

    def batches(self) -> Iterator[list[Record]]:
        base_id, rounds = self._producer_id, 0
        while True:
            yield from self._one_pass()
            if not self.loop:
                return
            rounds += 1
            self._producer_id = f"{base_id}-pass{rounds}"

    def _one_pass(self) -> Iterator[list[Record]]:
        with closing(self.opener(self.uri)) as opened:
            stream: ByteStream = opened
            if self.uri.endswith(".gz"):
                # GzipFile reads sequentially; its stub asks for seek, which only rewinding needs.
                stream = gzip.GzipFile(fileobj=cast("IO[bytes]", opened), mode="rb")
            with closing(stream):
                yield from self._paced(self._rows(stream))

    def _paced(self, rows: Iterator[Row]) -> Iterator[list[Record]]:
        first_event: int | None = None
        started = self.clock()
        batch: list[Record] = []
        bad_bytes = 0
        for row in rows:
            error = row.error
            if row.fields is not None:
                try:
                    tick = tick_from_fields(row.fields, producer_id=self._producer_id, seq=row.number)
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
                                batch, bad_bytes = [], 0
                            self.sleep(wait)
                    batch.append(tick)
            if error is not None:
                symbol = row.fields.get("symbol") if row.fields else None
                raw = orjson.dumps(row.fields) if row.fields else row.raw
                batch.append(
                    BadRecord(
                        raw,
                        f"line {row.number}: {error}",
                        symbol if isinstance(symbol, str) and TICKER.match(symbol) else None,
                        size=row.size,
                    )
                )
                bad_bytes += len(raw)
            if len(batch) >= self.batch_size or bad_bytes >= MAX_BATCH_BAD_BYTES:
                yield batch
                batch, bad_bytes = [], 0
        if batch:
            yield batch


def local_opener(uri: str) -> ByteStream:
    path = Path(uri.removeprefix("file://"))
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise ValueError(f"{uri}: no such file") from None
