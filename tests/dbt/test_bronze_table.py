"""The bronze table has one declaration (warehouse.bronze); dbt's hook and the loaders follow it."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from marketpulse.contract.ticks import Tick
from marketpulse.warehouse.bronze import DUCKDB_TYPES, RAW_TICKS, create_table_sql, ndjson_fields

MACRO = Path(__file__).parents[2] / "dbt" / "macros" / "bronze.sql"


def macro_columns() -> list[tuple[str, str]]:
    body = re.search(r"create table if not exists \{\{ relation \}\} \((.*?)\n\s*\)", MACRO.read_text(), re.S)
    assert body, f"no create table in {MACRO}"
    columns = []
    for line in body.group(1).split(","):
        name, kind = line.split(maxsplit=1)
        columns.append((name, kind.replace("{{ timestamp_tz }}", "timestamp_tz").strip()))
    return columns


def test_dbts_on_run_start_hook_creates_the_declared_columns_in_order() -> None:
    assert macro_columns() == [(column.name, column.type) for column in RAW_TICKS]


def test_the_duckdb_table_has_the_declared_columns_and_every_ndjson_field_has_a_column() -> None:
    with duckdb.connect() as con:
        con.execute("create schema bronze")
        con.execute(create_table_sql("bronze", DUCKDB_TYPES))
        described = con.execute("describe bronze.raw_ticks").fetchall()
    assert [(row[0], row[1]) for row in described] == [
        (
            column.name,
            "TIMESTAMP WITH TIME ZONE" if column.type == "timestamp_tz" else DUCKDB_TYPES[column.type],
        )
        for column in RAW_TICKS
    ]
    # Every field of the tick wire model (what the archive writes to bronze) is read into a column.
    wire = Tick("AAPL", 1.5, 1, 0, 0, "synthetic", "p", 0).to_wire()
    assert set(ndjson_fields()) == set(wire)
