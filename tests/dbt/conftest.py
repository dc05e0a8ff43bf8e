"""The dbt project end to end on real warehouses: DuckDB (embedded) and Snowflake (fakesnow server).

One deterministic scenario of raw ticks, loaded in three batches, carries every case the models must
handle: late ticks, a load that commits out of order, re-deliveries (identical, conflicting, twice in
one object, two objects of one load), distinct ticks that only look alike, and one bad row per
validation rule. The same scenario is built:
- on DuckDB incrementally (dbt after each batch, starting from a clean database), then with
  `--full-refresh`: both must agree, and must equal a plain pandas computation over the ticks;
- on Snowflake (fakesnow): a clean build over the first batch, an incremental one over the rest; its
  gold tables must equal DuckDB's.
The incremental tests set var incremental_lookback_minutes to 60 so that the out-of-order load is
picked up; the in-order late ticks are admitted with any lookback.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dbt_oracle import GOLD
from dbt_scenario import VARS_ARGS, Scenario, build_scenario
from dbt_warehouses import (
    SILVER_SQL,
    DuckDBRun,
    SnowflakeRun,
    fetch_frame,
    load_duckdb,
    load_snowflake,
    read_duckdb,
    read_gold_duckdb,
)

from marketpulse.transform.main import dbt_command
from marketpulse.warehouse import run_dbt
from marketpulse.warehouse.bronze import SNOWFLAKE_TYPES, create_table_sql
from marketpulse_dev.localenv.snowflake import FakeSnowflakeServer


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario()


@pytest.fixture(scope="module")
def duckdb_run(tmp_path_factory: pytest.TempPathFactory, scenario: Scenario) -> DuckDBRun:
    workdir = tmp_path_factory.mktemp("dbt-duckdb")
    path = workdir / "warehouse.duckdb"
    env = {
        "MARKETPULSE_DUCKDB_PATH": str(path),
        "DBT_TARGET_PATH": str(workdir / "target"),
        "DBT_LOG_PATH": str(workdir / "logs"),
    }
    # Every node (models, data tests, unit tests) on the clean database; in between, the models-only
    # run of a steady continuous-mode cycle (keeps the suite fast); models and data tests again once
    # all loads are in, then a full refresh.
    commands = [
        ["build", *VARS_ARGS],
        [*dbt_command(full_build=False), *VARS_ARGS],
        ["build", "--exclude-resource-type", "unit_test", *VARS_ARGS],
    ]
    builds = []
    for batch, command in zip(scenario.batches, commands, strict=True):
        load_duckdb(path, batch)
        builds.append(run_dbt(command, target="duckdb", env=env))
    incremental_gold = read_gold_duckdb(path)
    incremental_silver = {name: read_duckdb(path, sql) for name, sql in SILVER_SQL.items()}
    rejects_watermark = read_duckdb(path, "select * from silver.fct_rejected_ticks_watermark")
    builds.append(run_dbt(["run", "--full-refresh", *VARS_ARGS], target="duckdb", env=env))
    return DuckDBRun(
        path=path,
        env=env,
        scenario=scenario,
        builds=builds,
        incremental_gold=incremental_gold,
        incremental_silver=incremental_silver,
        rejects_watermark=rejects_watermark,
        full_refresh_gold=read_gold_duckdb(path),
        full_refresh_silver={name: read_duckdb(path, sql) for name, sql in SILVER_SQL.items()},
    )


@pytest.fixture(scope="module")
def snowflake_run(
    fakesnow_server: FakeSnowflakeServer, scenario: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SnowflakeRun]:
    import snowflake.connector

    workdir = tmp_path_factory.mktemp("dbt-snowflake")
    database = "MARKETPULSE_DBT_TEST"
    env = {
        **fakesnow_server.settings(),
        "SNOWFLAKE_DATABASE": database,
        "SNOWFLAKE_SCHEMA": "PUBLIC",
        # fakesnow's server can stall when several sessions query at once; one dbt thread avoids it.
        "MARKETPULSE_DBT_THREADS": "1",
        "DBT_TARGET_PATH": str(workdir / "target"),
        "DBT_LOG_PATH": str(workdir / "logs"),
    }
    with snowflake.connector.connect(**fakesnow_server.connect_kwargs()) as connection:
        cursor = connection.cursor()
        cursor.execute(f"create or replace database {database}")
        cursor.execute(f"create schema {database}.bronze")
        cursor.execute(create_table_sql(f"{database}.bronze", SNOWFLAKE_TYPES))
        # A clean build over the first load, then one incremental build over the other two.
        first, *rest = scenario.batches
        builds = []
        load_snowflake(cursor, database, first, workdir / "batch-0.parquet")
        builds.append(run_dbt(["build", *VARS_ARGS], target="snowflake", env=env))
        load_snowflake(
            cursor, database, [row for batch in rest for row in batch], workdir / "batch-1.parquet"
        )
        # Unit tests do not depend on the data; once per target is enough.
        builds.append(
            run_dbt(
                ["build", "--exclude-resource-type", "unit_test", *VARS_ARGS], target="snowflake", env=env
            )
        )
        yield SnowflakeRun(
            builds=builds,
            gold={
                name: fetch_frame(cursor, f"select * from {database}.gold.{name}")  # noqa: S608
                for name in GOLD
            },
            silver_counts={
                name: int(fetch_frame(cursor, f"select count(*) as n from {database}.silver.{name}")["n"][0])  # noqa: S608
                for name in SILVER_SQL
            },
        )
