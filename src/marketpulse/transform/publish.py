"""Publish gold tables as Parquet to `gold/` in the bucket: the dashboard reads these in DuckDB mode,
since only the transform process may open the warehouse file."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from marketpulse.contract.layout import GOLD_PREFIX, MANIFEST_KEY
from marketpulse.storage import ObjectStore

if TYPE_CHECKING:
    # Only a type here: the CLI imports this module for its key names, and the operator image has no DuckDB.
    import duckdb


# Called with each relation's name and its Parquet file, which exists until publish_gold returns.
Written = Callable[[str, Path], None]


def publish_gold(
    con: duckdb.DuckDBPyConnection,
    store: ObjectStore,
    schema: str = "gold",
    on_written: Written | None = None,
) -> dict[str, int]:
    """Write every table and view of the gold schema; returns rows per relation.

    Rows are counted from the Parquet file's metadata: a view (gold.latest_ticks aggregates all of
    silver) is computed once, by the copy, not once more to count it."""
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
            count = con.execute("select count(*) from read_parquet(?)", [str(target)]).fetchone()
            rows[name] = int(count[0]) if count else 0
            if on_written is not None:
                on_written(name, target)
            store.put(f"{GOLD_PREFIX}{name}.parquet", target.read_bytes(), "application/vnd.apache.parquet")
    manifest = {"published_at": dt.datetime.now(dt.UTC).isoformat(), "rows": rows}
    # Written last: a reader that sees the manifest sees every table it lists.
    store.put(MANIFEST_KEY, orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS), "application/json")
    return rows
