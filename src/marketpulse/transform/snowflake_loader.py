"""Bulk-load bronze objects into Snowflake, exactly once, through a load manifest.

Per chunk of new objects: download them, read them (plain or `.gz`) into one Parquet file with the
bronze columns (the object key and load time included, so every row names where it came from),
PUT it to an internal stage under a path of its own, then BEGIN, COPY INTO the bronze table, insert
the chunk's manifest rows, COMMIT. A crash before COMMIT leaves neither rows nor manifest rows, and
the next run loads the chunk again under a new stage path (so Snowflake's load history never skips
it). No row-by-row inserts: one PUT and one COPY per chunk, one multi-row insert for the manifest.
A malformed or foreign object is recorded in `_quarantine` instead (see `bronze_objects`).

With a `lease` (`transform.lease`), each load transaction first renews it, which also waits for any
other transform's load transaction to end, and then checks that no object of its chunk is in the
manifest by now: two transforms never load one object twice, even when one's lease ran out.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from marketpulse.runtime.faults import failpoint
from marketpulse.storage import ObjectInfo, ObjectStore
from marketpulse.transform.bronze_objects import (
    MANIFEST,
    QUARANTINE,
    READER_VERSION,
    BronzeListing,
    LoadResult,
    Quarantined,
    download_objects,
    list_bronze,
    load_in_chunks,
    read_objects,
    select_raw_ticks_sql,
)
from marketpulse.transform.lease import LeaseHeldError, SnowflakeLease
from marketpulse.warehouse.bronze import SNOWFLAKE_TYPES, create_table_sql

STAGE = "_marketpulse_load"


class SnowflakeLoadError(RuntimeError):
    """COPY INTO did not load what the chunk holds; nothing of the chunk was committed."""


class SnowflakeBronzeLoader:
    """Loads into `<database>.<schema>.raw_ticks` of the connection's database.

    `connection` is a `snowflake.connector` connection; identifiers are unquoted, as dbt-snowflake
    writes them, so the loader and dbt's `source('bronze', 'raw_ticks')` name the same table.
    """

    def __init__(
        self,
        connection: Any,
        store: ObjectStore,
        schema: str = "bronze",
        chunk_objects: int = 400,
        download_threads: int = 8,
        lease: SnowflakeLease | None = None,
    ) -> None:
        self.con = connection
        self.store = store
        self.schema = schema
        self.chunk_objects = chunk_objects
        self.download_threads = download_threads
        self.lease = lease

    def _execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.con.cursor() as cursor:
            cursor.execute(sql, params)
            rows: list[tuple[Any, ...]] = cursor.fetchall() if cursor.description else []
            return rows

    def ensure_tables(self) -> None:
        # DDL commits implicitly in Snowflake, so it all happens here, before any load transaction.
        self._execute(f"create schema if not exists {self.schema}")
        # Same table as dbt's on-run-start hook (macros/bronze.sql) creates when it is missing.
        self._execute(create_table_sql(self.schema, SNOWFLAKE_TYPES))
        # No primary key: Snowflake does not enforce one; the load transaction is what keeps keys unique.
        self._execute(f"""
            create table if not exists {self.schema}.{MANIFEST} (
                object_key varchar, row_count bigint, loaded_at timestamp_tz
            )""")
        self._execute(f"""
            create table if not exists {self.schema}.{QUARANTINE} (
                object_key varchar, kind varchar, reason varchar, quarantined_at timestamp_tz,
                reader_version integer
            )""")
        self._execute(f"create stage if not exists {self.schema}.{STAGE}")

    def listing(self) -> BronzeListing:
        # What an older reader quarantined is tried again (see `bronze_objects`).
        done = self._execute(
            f"select object_key from {self.schema}.{MANIFEST} "
            f"union all select object_key from {self.schema}.{QUARANTINE} where reader_version >= %s",
            [READER_VERSION],
        )
        return list_bronze(self.store, (row[0] for row in done))

    def pending(self) -> list[ObjectInfo]:
        return self.listing().pending

    def load_new(self) -> LoadResult:
        started = time.perf_counter()
        self.ensure_tables()
        return load_in_chunks(self.listing(), self.chunk_objects, self._load_chunk, self._quarantine, started)

    def _quarantine(self, items: Sequence[Quarantined]) -> None:
        # Autocommitted, two statements per object: quarantine is rare. Snowflake enforces no key, so
        # the row an older reader left is replaced, never added to.
        at = dt.datetime.now(dt.UTC)
        for item in items:
            self._execute(f"delete from {self.schema}.{QUARANTINE} where object_key = %s", [item.key])
            self._execute(
                f"insert into {self.schema}.{QUARANTINE} "
                "(object_key, kind, reason, quarantined_at, reader_version) values (%s, %s, %s, %s, %s)",
                [item.key, item.kind, item.reason, at, READER_VERSION],
            )

    def _load_chunk(self, objects: Sequence[ObjectInfo]) -> int:
        loaded_at = dt.datetime.now(dt.UTC)
        with tempfile.TemporaryDirectory(prefix="marketpulse-load-") as scratch:
            root = Path(scratch)
            paths = download_objects(self.store, objects, root / "objects", self.download_threads)
            parquet = root / "chunk.parquet"
            counts = _to_parquet(root / "objects", paths, loaded_at, parquet)
            # A stage path per attempt: a chunk retried after a crash is a new file to COPY.
            path = f"{self.schema}.{STAGE}/{loaded_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
            self._execute(f"put 'file://{parquet.as_posix()}' @{path} auto_compress = false overwrite = true")
        expected = sum(counts.values())
        self._execute("begin")
        try:
            self._fence(list(counts))
            copied = self._execute(
                f"copy into {self.schema}.raw_ticks from @{path} "
                "file_format = (type = parquet) match_by_column_name = case_insensitive purge = true"
            )
            # One row per file: (file, status, rows_parsed, rows_loaded, ...); no file gives one column.
            loaded = sum(int(row[3]) for row in copied if len(row) > 3 and str(row[1]).upper() == "LOADED")
            if loaded != expected:
                raise SnowflakeLoadError(
                    f"COPY INTO {self.schema}.raw_ticks loaded {loaded} rows from @{path}, "
                    f"expected {expected}: {copied}"
                )
            failpoint("transform.mid-load")
            with self.con.cursor() as cursor:
                # The connector sends this as one multi-row INSERT, not one statement per row.
                cursor.executemany(
                    f"insert into {self.schema}.{MANIFEST} (object_key, row_count, loaded_at) "
                    "values (%s, %s, %s)",
                    [(key, count, loaded_at) for key, count in counts.items()],
                )
            # An object an older reader quarantined is no longer quarantined once it loads.
            placeholders = ", ".join(["%s"] * len(counts))
            self._execute(
                f"delete from {self.schema}.{QUARANTINE} where object_key in ({placeholders})", list(counts)
            )
            self._execute("commit")
        except BaseException:
            # Best effort: with the connection gone the rollback fails too, and the error worth
            # reporting is the one that stopped the load; uncommitted rows never become visible.
            with contextlib.suppress(Exception):
                self._execute("rollback")
            raise
        return expected

    def _fence(self, keys: Sequence[str]) -> None:
        """Inside the load transaction: renew the lease, then refuse a chunk another transform loaded."""
        if self.lease is not None:
            self.lease.renew(lambda sql, params: self._execute(sql, list(params) or None))
        placeholders = ", ".join(["%s"] * len(keys))
        taken = self._execute(
            f"select object_key from {self.schema}.{MANIFEST} where object_key in ({placeholders})", keys
        )
        if taken:
            raise LeaseHeldError(
                "", f": {len(taken)} objects of this chunk were loaded by another transform meanwhile"
            )


def _to_parquet(root: Path, paths: Sequence[Path], loaded_at: dt.datetime, target: Path) -> dict[str, int]:
    """Write the objects' rows to `target` as Parquet; returns rows per object key (0 for an empty object)."""
    counts = {path.relative_to(root).as_posix(): 0 for path in paths}
    with duckdb.connect() as con:
        read_objects(con, f"create temp table chunk as {select_raw_ticks_sql()}", root, paths, loaded_at)
        con.execute(f"copy chunk to '{target.as_posix()}' (format parquet, compression snappy)")
        for key, count in con.execute("select _object_key, count(*) from chunk group by 1").fetchall():
            counts[str(key)] = int(count)
    return counts
