"""What every bronze loader shares: which archive objects are new, fetching them, and reading them.

The loaders differ only in where the rows go (a DuckDB table, or a Snowflake stage and table); the
bronze contract (columns, types, one `_object_key` per row) is read here, by one DuckDB query. An
object DuckDB cannot read fails the load with a `BronzeObjectError` naming its key.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb

from marketpulse.contract.layout import BRONZE_PREFIX, parse_key
from marketpulse.storage import ObjectInfo, ObjectStore
from marketpulse.warehouse.bronze import RAW_TICKS, ndjson_fields

# What each NDJSON line carries, as field → DuckDB type (the bronze table: warehouse.bronze).
RAW_TICKS_COLUMNS = ndjson_fields()
# The columns the loader adds: the object's key (the file name less the download root) and the load time.
_LOADER_VALUES = {"_object_key": "substr(t.filename, ?)", "_loaded_at": "?::timestamptz"}

log = logging.getLogger(__name__)


class BronzeObjectError(ValueError):
    """An archive object that is not NDJSON ticks of the bronze contract; the load of its chunk failed."""


@dataclass(frozen=True)
class LoadResult:
    objects: int
    rows: int
    seconds: float


def pending_objects(store: ObjectStore, loaded: Iterable[str]) -> list[ObjectInfo]:
    """Archive objects (`.ndjson` or `.ndjson.gz`) whose key is not in `loaded`, in key order."""
    done = set(loaded)
    return sorted(
        (o for o in store.list(BRONZE_PREFIX) if parse_key(o.key) and o.key not in done),
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


def downloaded_in_groups(
    store: ObjectStore, objects: Sequence[ObjectInfo], root: Path, threads: int, group_bytes: int
) -> Generator[list[Path], None, None]:
    """Download `objects` under `root` (path minus root = key) and yield them, in order, as they land.

    Downloads run ahead in the pool while the caller reads what already arrived, so fetching and
    loading overlap. Each group is the next object plus those after it that are already on disk, up
    to `group_bytes`: small while the first downloads run, larger when the downloads are ahead.
    """
    pool = ThreadPoolExecutor(threads)
    try:
        futures: list[Future[Path]] = [pool.submit(_download, store, info, root) for info in objects]
        position = 0
        while position < len(futures):
            group = [futures[position].result()]
            size = objects[position].size
            position += 1
            while position < len(futures) and futures[position].done() and size < group_bytes:
                group.append(futures[position].result())
                size += objects[position].size
                position += 1
            yield group
    finally:
        # A failed or abandoned load must not keep downloading the rest of its chunk.
        pool.shutdown(wait=True, cancel_futures=True)


def _download(store: ObjectStore, info: ObjectInfo, root: Path) -> Path:
    path = root / info.key
    path.parent.mkdir(parents=True, exist_ok=True)
    store.download(info.key, path)
    return path


def read_objects(
    con: duckdb.DuckDBPyConnection, statement: str, root: Path, paths: Sequence[Path], loaded_at: dt.datetime
) -> duckdb.DuckDBPyConnection:
    """Execute `statement`, built around `select_raw_ticks_sql()`, over objects downloaded under `root`.

    DuckDB names the file it cannot read; that file's path under `root` is the object's key, so a
    malformed object fails with a `BronzeObjectError` naming its key instead of a temporary path.
    """
    try:
        return con.execute(statement, [len(str(root)) + 2, loaded_at, [str(p) for p in paths]])
    except duckdb.Error as exc:
        message = str(exc).strip()
        # The longest match: `x.ndjson` is also a prefix of `x.ndjson.gz`.
        failed = max((p for p in paths if str(p) in message), key=lambda p: len(str(p)), default=None)
        if failed is None:
            raise
        key = failed.relative_to(root).as_posix()
        # The first line is the reason; DuckDB's hints after it are about read_json's options, not the data.
        reason = message.replace(f"{root}/", "").splitlines()[0]
        raise BronzeObjectError(
            f"bronze object {key} cannot be loaded (expected NDJSON ticks): {reason}"
        ) from None


def select_raw_ticks_sql() -> str:
    """A DuckDB query over downloaded objects giving bronze rows in the table's column order.

    Parameters, in order: the length of the download root plus 2 (strips it and the slash from each
    file name, leaving the object key), the load time, and the list of file paths. `read_json`
    decompresses `.gz` objects by their extension.
    """
    columns = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in RAW_TICKS_COLUMNS.items()) + "}"
    select = ", ".join(
        f"t.{column.field} as {column.name}"
        if column.field
        else f"{_LOADER_VALUES[column.name]} as {column.name}"
        for column in RAW_TICKS
    )
    return f"""
        select {select}
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
