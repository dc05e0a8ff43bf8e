"""What every bronze loader shares: which archive objects are new, fetching them, and reading them.

The loaders differ only in where the rows go (a DuckDB table, or a Snowflake stage and table); the
bronze contract (columns, types, one `_object_key` per row) is read here, by one DuckDB query.

An object that is not NDJSON ticks (not JSON, lines that are not objects or whose fields do not cast
to the bronze types, a broken gzip stream), or a key under the bronze prefix that is not an archive
key, is quarantined: a row in the warehouse's `_quarantine` table beside the load manifest, with its
reason, logged and counted once and never fetched again, while the rest of its chunk and every later
object keep loading. The object itself stays where it is: bronze is immutable, and a warehouse rebuilt
from bronze quarantines the same objects again (the record lives with the warehouse whose manifest it
guards, written by the one writer that holds the lease, so no copy in the bucket can disagree with it).
Each row records the `READER_VERSION` that refused the object: a transform whose reader is newer
(say, one that reads a later tick schema) tries every object an older reader quarantined once more,
so an upgrade never leaves readable ticks behind. Deleting an object's row makes the next cycle try
it again, e.g. after fixing it.
Rows that parse but break a tick rule (a missing price, say) are not this: silver rejects them one by
one with a reason. A storage error is not quarantined either: the cycle fails and the next retries.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

from marketpulse.contract.layout import BRONZE_PREFIX, parse_key
from marketpulse.storage import ObjectInfo, ObjectStore
from marketpulse.warehouse.bronze import RAW_TICKS, ndjson_fields

# What each NDJSON line carries, as field → DuckDB type (the bronze table: warehouse.bronze).
RAW_TICKS_COLUMNS = ndjson_fields()
# The columns the loader adds: the object's key (the file name less the download root) and the load time.
_LOADER_VALUES = {"_object_key": "substr(t.filename, ?)", "_loaded_at": "?::timestamptz"}

log = logging.getLogger(__name__)


# The warehouse tables beside bronze.raw_ticks: what was loaded, and what never will be.
MANIFEST = "_load_manifest"
QUARANTINE = "_quarantine"
QuarantineKind = Literal["malformed", "foreign"]
# Bump when the loaders learn to read objects they refused before (a new tick schema, a compression).
READER_VERSION = 1
REASON_MAX_CHARS = 500
FOREIGN_REASON = (
    "not an archive object key (expected bronze/ticks/dt=YYYY-MM-DD/partition=N/<first>-<last>.ndjson[.gz])"
)


class BronzeObjectError(ValueError):
    """An archive object that is not NDJSON ticks of the bronze contract; the load of its chunk failed."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"bronze object {key} cannot be loaded (expected NDJSON ticks): {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class Quarantined:
    key: str
    kind: QuarantineKind
    reason: str


@dataclass(frozen=True)
class LoadResult:
    objects: int
    rows: int
    seconds: float
    quarantined: tuple[Quarantined, ...] = ()


@dataclass(frozen=True)
class BronzeListing:
    pending: list[ObjectInfo]
    foreign: list[Quarantined]


def list_bronze(store: ObjectStore, done: Iterable[str]) -> BronzeListing:
    """Objects under the bronze prefix whose key is not in `done` (loaded or quarantined), in key order:
    archive objects (`.ndjson` or `.ndjson.gz`) to load, and any other key, to quarantine unread."""
    seen = set(done)
    pending: list[ObjectInfo] = []
    foreign: list[Quarantined] = []
    for info in sorted(store.list(BRONZE_PREFIX), key=lambda o: o.key):
        if info.key in seen:
            continue
        if parse_key(info.key):
            pending.append(info)
        else:
            foreign.append(Quarantined(info.key, "foreign", FOREIGN_REASON))
    return BronzeListing(pending, foreign)


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
    Only errors about the content are: any other (a full disk, say) is no fault of the object's.
    """
    try:
        return con.execute(statement, [len(str(root)) + 2, loaded_at, [str(p) for p in paths]])
    except duckdb.Error as exc:
        message = str(exc).strip()
        if not _about_content(exc, message):
            raise
        # The longest match: `x.ndjson` is also a prefix of `x.ndjson.gz`.
        failed = max((p for p in paths if str(p) in message), key=lambda p: len(str(p)), default=None)
        if failed is None:
            raise
        key = failed.relative_to(root).as_posix()
        # The first line is the reason; DuckDB's hints after it are about read_json's options, not the data.
        reason = message.replace(f"{root}/", "").splitlines()[0]
        # Bounded: it is logged and stored, and DuckDB's messages can quote the offending data.
        if len(reason) > REASON_MAX_CHARS:
            reason = reason[: REASON_MAX_CHARS - 1] + "…"
        raise BronzeObjectError(key, reason) from None


def _about_content(exc: duckdb.Error, message: str) -> bool:
    """Whether DuckDB refused the data itself: malformed JSON, a line that is not an object, a value
    that does not cast, a broken gzip stream (an IO error, but one about the bytes, not the disk)."""
    if isinstance(exc, duckdb.InvalidInputException | duckdb.ConversionException):
        return True
    return isinstance(exc, duckdb.IOException) and "GZIP" in message.upper()


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
    listing: BronzeListing,
    chunk_objects: int,
    load_chunk: Callable[[Sequence[ObjectInfo]], int],
    quarantine: Callable[[Sequence[Quarantined]], None],
    started: float,
) -> LoadResult:
    """Load the listed objects `chunk_objects` at a time (each chunk one transaction) and report it.

    Foreign keys are quarantined first. A chunk that fails on a malformed object is rolled back, the
    object quarantined, and the chunk loaded again without it: one more attempt per bad object, which
    is rare, instead of a check of every object before every load, which is not.
    """
    quarantined = list(listing.foreign)
    if quarantined:
        _quarantine(quarantine, quarantined)
    rows = objects = 0
    pending = listing.pending
    for start in range(0, len(pending), chunk_objects):
        chunk = list(pending[start : start + chunk_objects])
        while chunk:
            try:
                rows += load_chunk(chunk)
            except BronzeObjectError as exc:
                bad = Quarantined(exc.key, "malformed", exc.reason)
                _quarantine(quarantine, [bad])
                quarantined.append(bad)
                chunk = [info for info in chunk if info.key != exc.key]
            else:
                objects += len(chunk)
                break
    result = LoadResult(objects, rows, time.perf_counter() - started, tuple(quarantined))
    if objects:
        log.info(
            "bronze loaded",
            extra={"objects": result.objects, "rows": result.rows, "seconds": round(result.seconds, 3)},
        )
    return result


def _quarantine(quarantine: Callable[[Sequence[Quarantined]], None], items: Sequence[Quarantined]) -> None:
    quarantine(items)
    for item in items:
        log.warning(
            "bronze object quarantined",
            extra={"key": item.key, "kind": item.kind, "reason": item.reason},
        )
