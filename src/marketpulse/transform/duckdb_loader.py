"""Bulk-load bronze objects into DuckDB, exactly once, through a load manifest.

The manifest row of an object is inserted in the same transaction as its rows, so a crash
mid-load leaves neither, and a re-run loads exactly what is missing. Per chunk, the objects are
downloaded in parallel and read by `read_json` as they arrive, several per statement, inside the
chunk's transaction: fetching overlaps loading, and there are no row-by-row inserts. A malformed or
foreign object is recorded in `_quarantine` instead (see `bronze_objects`), in a transaction of its own.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

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
    downloaded_in_groups,
    list_bronze,
    load_in_chunks,
    read_objects,
    select_raw_ticks_sql,
)
from marketpulse.warehouse.bronze import DUCKDB_TYPES, create_table_sql


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class DuckDBBronzeLoader:
    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        store: ObjectStore,
        schema: str = "bronze",
        chunk_objects: int = 400,
        download_threads: int = 8,
        group_bytes: int = 64 << 20,
    ) -> None:
        self.con = connection
        self.store = store
        self.schema = _quote(schema)
        self.chunk_objects = chunk_objects
        self.download_threads = download_threads
        self.group_bytes = group_bytes

    def ensure_tables(self) -> None:
        self.con.execute(f"create schema if not exists {self.schema}")
        self.con.execute(create_table_sql(self.schema, DUCKDB_TYPES))
        self.con.execute(f"""
            create table if not exists {self.schema}.{MANIFEST} (
                object_key varchar primary key, row_count bigint, loaded_at timestamptz
            )""")
        self.con.execute(f"""
            create table if not exists {self.schema}.{QUARANTINE} (
                object_key varchar primary key, kind varchar, reason varchar, quarantined_at timestamptz,
                reader_version integer
            )""")

    def listing(self) -> BronzeListing:
        # What an older reader quarantined is tried again (see `bronze_objects`).
        done = self.con.execute(
            f"""
            select object_key from {self.schema}.{MANIFEST}
            union all
            select object_key from {self.schema}.{QUARANTINE} where reader_version >= ?""",
            [READER_VERSION],
        ).fetchall()
        return list_bronze(self.store, (row[0] for row in done))

    def pending(self) -> list[ObjectInfo]:
        return self.listing().pending

    def load_new(self) -> LoadResult:
        started = time.perf_counter()
        self.ensure_tables()
        with self._unordered_inserts():
            return load_in_chunks(
                self.listing(), self.chunk_objects, self._load_chunk, self._quarantine, started
            )

    def _quarantine(self, items: Sequence[Quarantined]) -> None:
        self.con.execute(
            f"""
            insert into {self.schema}.{QUARANTINE}
            select unnest(?::varchar[]), unnest(?::varchar[]), unnest(?::varchar[]), now(), ?
            on conflict do update set kind = excluded.kind, reason = excluded.reason,
                quarantined_at = excluded.quarantined_at, reader_version = excluded.reader_version
            """,
            [[i.key for i in items], [i.kind for i in items], [i.reason for i in items], READER_VERSION],
        )

    @contextmanager
    def _unordered_inserts(self) -> Iterator[None]:
        """Let DuckDB append in whatever order its threads finish: bronze rows have no order to keep.

        The connection is the caller's, so its setting is put back afterwards.
        """
        setting = self.con.execute("select current_setting('preserve_insertion_order')").fetchone()
        before = bool(setting[0]) if setting else True
        self.con.execute("set preserve_insertion_order = false")
        try:
            yield
        finally:
            self.con.execute(f"set preserve_insertion_order = {'true' if before else 'false'}")

    def _load_chunk(self, objects: Sequence[ObjectInfo]) -> int:
        with tempfile.TemporaryDirectory(prefix="marketpulse-load-") as scratch:
            root = Path(scratch)
            loaded_at = dt.datetime.now(dt.UTC)
            rows = 0
            self.con.execute("begin transaction")
            try:
                # Closed on the way out, so no download still writes into the folder being removed.
                with closing(
                    downloaded_in_groups(self.store, objects, root, self.download_threads, self.group_bytes)
                ) as groups:
                    for paths in groups:
                        rows += self._insert_objects(root, paths, loaded_at)
                failpoint("transform.mid-load")
                keys = [info.key for info in objects]
                self._write_manifest(keys, loaded_at)
                # An object an older reader quarantined is no longer quarantined once it loads.
                self.con.execute(
                    f"delete from {self.schema}.{QUARANTINE} where list_contains(?::varchar[], object_key)",
                    [keys],
                )
                self.con.execute("commit")
            except BaseException:
                self.con.execute("rollback")
                raise
        return rows

    def _insert_objects(self, root: Path, paths: Sequence[Path], loaded_at: dt.datetime) -> int:
        """Insert the rows of downloaded objects (no temporary copy: 1.2x faster measured)."""
        insert = f"insert into {self.schema}.raw_ticks {select_raw_ticks_sql()}"
        inserted = read_objects(self.con, insert, root, paths, loaded_at).fetchone()
        return int(inserted[0]) if inserted else 0

    def _write_manifest(self, keys: Sequence[str], loaded_at: dt.datetime) -> None:
        """One manifest row per object of the chunk, counting its rows back by the chunk's load time.

        Zone maps on `_loaded_at` confine the count to this chunk's row groups (about 10 ms per
        million rows measured). An empty object gets a row too, so it is not fetched again next run.
        """
        self.con.execute(
            f"""
            insert into {self.schema}.{MANIFEST}
            select k.key, coalesce(c.rows, 0), now()
            from unnest(?::varchar[]) as k(key)
            left join (
                select _object_key, count(*) as rows from {self.schema}.raw_ticks
                where _loaded_at = ? group by _object_key
            ) as c on c._object_key = k.key
            """,
            [list(keys), loaded_at],
        )
