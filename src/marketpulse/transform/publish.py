"""Publish gold tables as Parquet to `gold/` in the bucket: the dashboard reads these in DuckDB mode,
since only the transform process may open the warehouse file."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from marketpulse.contract.layout import GOLD_PREFIX, MANIFEST_KEY
from marketpulse.storage import ObjectStore

if TYPE_CHECKING:
    # Only a type here: the CLI imports this module for its key names, and the operator image has no DuckDB.
    import duckdb


def publish_gold(con: duckdb.DuckDBPyConnection, store: ObjectStore, schema: str = "gold") -> dict[str, int]:
    """Write every table and view of the gold schema; returns rows per relation."""
    relations = [
        row[0]
        for row in con.execute(
            "select table_name from information_schema.tables where table_schema = ? order by table_name",
            [schema],
        ).fetchall()
    ]
    rows: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="marketpulse-gold-") as scratch:
        for name in relations:
            target = Path(scratch) / f"{name}.parquet"
            quoted = f'"{schema}"."{name}"'
            con.execute(f"copy (select * from {quoted}) to '{target}' (format parquet, compression zstd)")
            count = con.execute(f"select count(*) from {quoted}").fetchone()
            rows[name] = int(count[0]) if count else 0
            store.put(f"{GOLD_PREFIX}{name}.parquet", target.read_bytes(), "application/vnd.apache.parquet")
    manifest = {"published_at": dt.datetime.now(dt.UTC).isoformat(), "rows": rows}
    # Written last: a reader that sees the manifest sees every table it lists.
    store.put(MANIFEST_KEY, orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS), "application/json")
    return rows
