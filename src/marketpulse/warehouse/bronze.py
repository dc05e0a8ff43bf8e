"""The bronze table, declared once: what the transform loads and dbt's `source('bronze', 'raw_ticks')` reads.

Both loaders create it from here; dbt's on-run-start hook (dbt/macros/bronze.sql) creates the same
table when it is missing, and a test keeps that macro's columns equal to these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

# Logical column types; `timestamp_tz` becomes the warehouse's zone-aware timestamp.
ColumnType = Literal["varchar", "double", "bigint", "integer", "timestamp_tz"]
TABLE: Final = "raw_ticks"


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    # The NDJSON field the value comes from; None for columns the loader adds.
    field: str | None


RAW_TICKS: Final = (
    Column("symbol", "varchar", "symbol"),
    Column("price", "double", "price"),
    Column("size", "bigint", "size"),
    Column("event_time", "timestamp_tz", "event_time"),
    Column("ingest_time", "timestamp_tz", "ingest_time"),
    Column("source", "varchar", "source"),
    Column("producer_id", "varchar", "producer_id"),
    Column("seq", "bigint", "seq"),
    Column("schema_version", "integer", "v"),
    Column("_object_key", "varchar", None),
    Column("_loaded_at", "timestamp_tz", None),
)

# DuckDB's names for the logical types (read_json's `columns` and the DuckDB table).
DUCKDB_TYPES: Final[dict[ColumnType, str]] = {
    "varchar": "VARCHAR",
    "double": "DOUBLE",
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "timestamp_tz": "TIMESTAMPTZ",
}
SNOWFLAKE_TYPES: Final[dict[ColumnType, str]] = {**DUCKDB_TYPES, "timestamp_tz": "TIMESTAMP_TZ"}


def create_table_sql(schema: str, types: dict[ColumnType, str]) -> str:
    """`create table if not exists <schema>.raw_ticks (...)` in a warehouse's type names."""
    columns = ", ".join(f"{column.name} {types[column.type].lower()}" for column in RAW_TICKS)
    return f"create table if not exists {schema}.{TABLE} ({columns})"


def ndjson_fields() -> dict[str, str]:
    """NDJSON field → DuckDB type of every field a bronze object line carries (read_json's columns)."""
    return {column.field: DUCKDB_TYPES[column.type] for column in RAW_TICKS if column.field}
