"""The dbt project on Snowflake (fakesnow server, real connector and dbt-snowflake): DuckDB's answers."""

from __future__ import annotations

import pytest
from dbt_oracle import GOLD, assert_same_rows
from dbt_warehouses import DuckDBRun, SnowflakeRun


@pytest.mark.snowflake
def test_dbt_build_passes_on_snowflake_from_a_clean_database_and_after_an_incremental_load(
    snowflake_run: SnowflakeRun, duckdb_run: DuckDBRun
) -> None:
    for build in snowflake_run.builds:
        # Exposures (models/exposures/) are nodes of `dbt build` that run nothing.
        ran = {node: status for node, status in build.statuses.items() if not node.startswith("exposure.")}
        assert set(ran.values()) <= {"success", "pass"}, build.statuses
        assert {build.statuses[node] for node in build.statuses.keys() - ran.keys()} <= {"no-op"}
    assert {unique_id.split(".", 1)[0] for unique_id in snowflake_run.builds[0].statuses} == {
        "exposure",
        "operation",
        "model",
        "test",
        "unit_test",
    }
    assert snowflake_run.silver_counts == {
        name: len(frame) for name, frame in duckdb_run.full_refresh_silver.items()
    }


@pytest.mark.snowflake
@pytest.mark.parametrize("table", sorted(GOLD))
def test_snowflake_and_duckdb_give_the_same_gold_table(
    snowflake_run: SnowflakeRun, duckdb_run: DuckDBRun, table: str
) -> None:
    key, exact, approx = GOLD[table]
    assert_same_rows(
        snowflake_run.gold[table],
        duckdb_run.full_refresh_gold[table],
        key=key,
        exact=exact,
        approx=approx,
        what=f"gold.{table} Snowflake vs DuckDB",
    )
