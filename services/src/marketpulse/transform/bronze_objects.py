"""What every bronze loader shares: which archive objects are new, fetching them, and reading them.

The loaders differ only in where the rows go (a DuckDB table, or a Snowflake stage and table); the
bronze contract (columns, types, one `_object_key` per row) is read here, by one DuckDB query.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from marketpulse.archive.batching import PREFIX, parse_key
from marketpulse.storage import ObjectInfo, ObjectStore

# The bronze contract: what dbt's `source('bronze', 'raw_ticks')` reads, as NDJSON field → DuckDB type.
RAW_TICKS_COLUMNS = {
    "symbol": "VARCHAR",
    "price": "DOUBLE",
    "size": "BIGINT",
    "event_time": "TIMESTAMPTZ",
    "ingest_time": "TIMESTAMPTZ",
    "source": "VARCHAR",
    "producer_id": "VARCHAR",
    "seq": "BIGINT",
    "v": "INTEGER",
}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadResult:
    objects: int
    rows: int
    seconds: float


def pending_objects(store: ObjectStore, loaded: Iterable[str]) -> list[ObjectInfo]:
    """Archive objects (`.ndjson` or `.ndjson.gz`) whose key is not in `loaded`, in key order."""
    done = set(loaded)
    return sorted(
        (o for o in store.list(PREFIX) if parse_key(o.key) and o.key not in done),
        key=lambda o: o.key,
    )


def download_objects(
    store: ObjectStore, objects: Sequence[ObjectInfo], root: Path, threads: int
) -> list[Path]:
    """Each object saved under `root` at its own key, so a file's path minus `root` is its key."""
    paths = [root / info.key for info in objects]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda pair: store.download(pair[0].key, pair[1]), zip(objects, paths, strict=True)))
    return paths


def select_raw_ticks_sql() -> str:
    """A DuckDB query over downloaded objects giving bronze rows in the table's column order.

    Parameters, in order: the length of the download root plus 2 (strips it and the slash from each
    file name, leaving the object key), the load time, and the list of file paths. `read_json`
    decompresses `.gz` objects by their extension.
    """
    columns = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in RAW_TICKS_COLUMNS.items()) + "}"
    return f"""
        select t.symbol, t.price, t.size, t.event_time, t.ingest_time, t.source, t.producer_id,
               t.seq, t.v as schema_version, substr(t.filename, ?) as _object_key,
               ?::timestamptz as _loaded_at
        from read_json(?, format = 'newline_delimited', columns = {columns}, filename = true) as t
    """


def load_in_chunks(
    pending: Sequence[ObjectInfo],
    chunk_objects: int,
    load_chunk: Callable[[Sequence[ObjectInfo]], int],
    started: float,
) -> LoadResult:
    """Load `pending` objects `chunk_objects` at a time (each chunk one transaction) and report it."""
    rows = 0
    for start in range(0, len(pending), chunk_objects):
        rows += load_chunk(pending[start : start + chunk_objects])
    result = LoadResult(len(pending), rows, time.perf_counter() - started)
    if pending:
        log.info(
            "bronze loaded",
            extra={"objects": result.objects, "rows": result.rows, "seconds": round(result.seconds, 3)},
        )
    return result
