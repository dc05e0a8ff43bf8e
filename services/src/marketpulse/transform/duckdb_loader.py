"""Bulk-load bronze objects into DuckDB, exactly once, through a load manifest.

The manifest row of an object is inserted in the same transaction as its rows, so a crash
mid-load leaves neither, and a re-run loads exactly what is missing. Objects are downloaded in
parallel and read by one `read_json` per chunk: no row-by-row inserts.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb

from marketpulse.archive.batching import PREFIX, parse_key
from marketpulse.runtime.faults import failpoint
from marketpulse.storage import ObjectInfo, ObjectStore

log = logging.getLogger(__name__)

# The bronze contract: what dbt's `source('bronze', 'raw_ticks')` reads.
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


@dataclass(frozen=True)
class LoadResult:
    objects: int
    rows: int
    seconds: float


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
    ) -> None:
        self.con = connection
        self.store = store
        self.schema = _quote(schema)
        self.chunk_objects = chunk_objects
        self.download_threads = download_threads

    def ensure_tables(self) -> None:
        self.con.execute(f"create schema if not exists {self.schema}")
        self.con.execute(f"""
            create table if not exists {self.schema}.raw_ticks (
                symbol varchar, price double, size bigint, event_time timestamptz, ingest_time timestamptz,
                source varchar, producer_id varchar, seq bigint, schema_version integer,
                _object_key varchar, _loaded_at timestamptz
            )""")
        self.con.execute(f"""
            create table if not exists {self.schema}._load_manifest (
                object_key varchar primary key, row_count bigint, loaded_at timestamptz
            )""")

    def pending(self) -> list[ObjectInfo]:
        manifest = f"select object_key from {self.schema}._load_manifest"
        loaded = {row[0] for row in self.con.execute(manifest).fetchall()}
        return sorted(
            (o for o in self.store.list(PREFIX) if parse_key(o.key) and o.key not in loaded),
            key=lambda o: o.key,
        )

    def load_new(self) -> LoadResult:
        started = time.perf_counter()
        self.ensure_tables()
        pending = self.pending()
        rows = 0
        for start in range(0, len(pending), self.chunk_objects):
            rows += self._load_chunk(pending[start : start + self.chunk_objects])
        result = LoadResult(len(pending), rows, time.perf_counter() - started)
        if pending:
            log.info(
                "bronze loaded",
                extra={"objects": result.objects, "rows": result.rows, "seconds": round(result.seconds, 3)},
            )
        return result

    def _load_chunk(self, objects: Sequence[ObjectInfo]) -> int:
        with tempfile.TemporaryDirectory(prefix="marketpulse-load-") as scratch:
            # Each object is saved under its own key, so the object key is the file name minus the prefix.
            root = Path(scratch)
            paths = [root / info.key for info in objects]
            for path in paths:
                path.parent.mkdir(parents=True, exist_ok=True)
            with ThreadPoolExecutor(self.download_threads) as pool:
                list(
                    pool.map(
                        lambda pair: self.store.download(pair[0].key, pair[1]),
                        zip(objects, paths, strict=True),
                    )
                )
            columns = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in RAW_TICKS_COLUMNS.items()) + "}"
            self.con.execute("begin transaction")
            try:
                self.con.execute(
                    f"""
                    create or replace temp table _chunk as
                    select t.symbol, t.price, t.size, t.event_time, t.ingest_time, t.source, t.producer_id,
                           t.seq, t.v as schema_version, substr(t.filename, ?) as _object_key,
                           now() as _loaded_at
                    from read_json(?, format = 'newline_delimited', columns = {columns}, filename = true) as t
                    """,
                    [len(str(root)) + 2, [str(p) for p in paths]],
                )
                self.con.execute(f"insert into {self.schema}.raw_ticks select * from _chunk")
                failpoint("transform.mid-load")
                self.con.execute(
                    f"""
                    insert into {self.schema}._load_manifest
                    select _object_key, count(*), now() from _chunk group by _object_key
                    """
                )
                (rows,) = self.con.execute("select count(*) from _chunk").fetchone() or (0,)
                self.con.execute("drop table _chunk")
                self.con.execute("commit")
            except BaseException:
                self.con.execute("rollback")
                raise
        return int(rows)
