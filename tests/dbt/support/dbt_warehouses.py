"""Loading the scenario into DuckDB and Snowflake (fakesnow) and reading their tables back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dbt_oracle import GOLD
from dbt_scenario import RAW_SCHEMA, Row, Scenario

from marketpulse.warehouse import DbtRunResult
from marketpulse.warehouse.bronze import DUCKDB_TYPES, create_table_sql


def read_duckdb(path: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as connection:
        frame: pd.DataFrame = connection.execute(sql).fetchdf()
    return frame


def read_gold_duckdb(path: Path) -> dict[str, pd.DataFrame]:
    return {name: read_duckdb(path, f"select * from gold.{name}") for name in GOLD}  # noqa: S608


def load_duckdb(path: Path, rows: Sequence[Row]) -> None:
    table = pa.Table.from_pylist(list(rows), schema=RAW_SCHEMA)
    with duckdb.connect(str(path)) as connection:
        connection.execute("create schema if not exists bronze")
        connection.execute(create_table_sql("bronze", DUCKDB_TYPES))
        connection.register("batch", table)
        connection.execute("insert into bronze.raw_ticks select * from batch")


# --------------------------------------------------------------------------------------------------
# DuckDB: incremental builds from a clean database, then a full refresh.
# --------------------------------------------------------------------------------------------------


@dataclass
class DuckDBRun:
    path: Path
    env: dict[str, str]
    scenario: Scenario
    builds: list[DbtRunResult]
    incremental_gold: dict[str, pd.DataFrame]
    incremental_silver: dict[str, pd.DataFrame]
    # fct_rejected_ticks_watermark after the incremental runs: how far the rejects have processed.
    rejects_watermark: pd.DataFrame
    full_refresh_gold: dict[str, pd.DataFrame]
    full_refresh_silver: dict[str, pd.DataFrame]


SILVER_SQL = {
    "fct_ticks": "select * from silver.fct_ticks",
    "fct_rejected_ticks": "select * from silver.fct_rejected_ticks",
}


# --------------------------------------------------------------------------------------------------
# Snowflake (fakesnow server, real connector and dbt-snowflake): the same scenario, the same answers.
# --------------------------------------------------------------------------------------------------


@dataclass
class SnowflakeRun:
    builds: list[DbtRunResult]
    gold: dict[str, pd.DataFrame]
    silver_counts: dict[str, int]


def fetch_frame(cursor: Any, sql: str) -> pd.DataFrame:
    cursor.execute(sql)
    columns = [column.name.lower() for column in cursor.description]
    return pd.DataFrame(cursor.fetchall(), columns=columns)


def load_snowflake(cursor: Any, database: str, rows: Sequence[Row], parquet: Path) -> None:
    """Bulk-load like the transform does on Snowflake: Parquet → PUT to a stage → COPY INTO."""
    pq.write_table(pa.Table.from_pylist(list(rows), schema=RAW_SCHEMA), parquet)
    stage = f"{database}.bronze.load_{parquet.stem.replace('-', '_')}"
    cursor.execute(f"create or replace stage {stage}")
    cursor.execute(f"put file://{parquet} @{stage}")
    cursor.execute(
        f"copy into {database}.bronze.raw_ticks from @{stage} "
        "file_format = (type = parquet) match_by_column_name = case_insensitive"
    )
