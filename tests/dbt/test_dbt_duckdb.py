"""The dbt project on DuckDB: incremental builds from a clean database, then a full refresh."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from dbt_oracle import GOLD, assert_same_rows, expected_gold, expected_silver, normalise
from dbt_scenario import DBT_VARS, MOVING_AVERAGE_WINDOWS, SYMBOLS, VARS_ARGS, Scenario, place_rows
from dbt_warehouses import SILVER_SQL, DuckDBRun, load_duckdb, read_duckdb, read_gold_duckdb

from marketpulse.contract.api import validate_stockpipeline
from marketpulse.contract.settings.environment import variable
from marketpulse.contract.settings.transform import TransformSettings
from marketpulse.contract.workloads import Platform, names_for, render_workloads
from marketpulse.transform.main import dbt_command, dbt_vars
from marketpulse.warehouse import DbtRunError, run_dbt


def test_dbt_build_passes_on_duckdb_from_a_clean_database_and_after_each_incremental_load(
    duckdb_run: DuckDBRun,
) -> None:
    clean, _, after_increments, _ = duckdb_run.builds
    for build in duckdb_run.builds:
        # Exposures (models/exposures/) are nodes of `dbt build` that run nothing.
        ran = {node: status for node, status in build.statuses.items() if not node.startswith("exposure.")}
        assert set(ran.values()) <= {"success", "pass"}, build.statuses
        assert {build.statuses[node] for node in build.statuses.keys() - ran.keys()} <= {"no-op"}
    # From a clean database: every model, data test and unit test; after the incremental loads:
    # every model and data test again.
    # (operation: the on-run-start hook that creates bronze.raw_ticks when it is missing.)
    assert {unique_id.split(".", 1)[0] for unique_id in clean.statuses} == {
        "exposure",
        "operation",
        "model",
        "test",
        "unit_test",
    }
    assert {unique_id.split(".", 1)[0] for unique_id in after_increments.statuses} == {
        "exposure",
        "operation",
        "model",
        "test",
    }
    assert sum(1 for unique_id in clean.statuses if unique_id.startswith("model.")) == 13


def test_a_steady_cycle_runs_the_incremental_models_and_leaves_the_views_alone(
    duckdb_run: DuckDBRun,
) -> None:
    steady = duckdb_run.builds[1]
    ran = {unique_id.rsplit(".", 1)[-1] for unique_id in steady.statuses if unique_id.startswith("model.")}
    assert ran == {"fct_ticks", "fct_rejected_ticks", "fct_rejected_ticks_watermark", "ohlc_1m", "ohlc_daily"}


def test_the_rejects_watermark_covers_every_load_so_loads_without_rejects_are_not_read_again(
    duckdb_run: DuckDBRun,
) -> None:
    # fct_rejected_ticks' own rows only carry the loads that had rejects; its next incremental run
    # starts after this watermark, which must reach the newest load in silver.
    watermark = duckdb_run.rejects_watermark["loaded_at"]
    assert len(watermark) == 1
    newest_kept = duckdb_run.incremental_silver["fct_ticks"]["loaded_at"].max()
    assert watermark[0] == newest_kept


@pytest.mark.parametrize("table", sorted(GOLD))
def test_incremental_loads_give_the_same_gold_table_as_a_full_refresh(
    duckdb_run: DuckDBRun, table: str
) -> None:
    key, exact, approx = GOLD[table]
    incremental = duckdb_run.incremental_gold[table]
    full = duckdb_run.full_refresh_gold[table]
    assert len(full) > 0
    assert_same_rows(
        incremental,
        full,
        key=key,
        exact=exact,
        approx=approx,
        what=f"gold.{table} incremental vs --full-refresh",
    )


def test_incremental_loads_give_the_same_silver_as_a_full_refresh(duckdb_run: DuckDBRun) -> None:
    columns = ["symbol", "event_time", "producer_id", "seq", "price", "size", "object_key", "loaded_at"]
    assert_same_rows(
        duckdb_run.incremental_silver["fct_ticks"],
        duckdb_run.full_refresh_silver["fct_ticks"],
        key=["symbol", "event_time", "producer_id", "seq"],
        exact=columns[4:],
        approx=[],
        what="silver.fct_ticks incremental vs --full-refresh",
    )
    rejected_key = ["object_key", "reject_reason", "symbol", "seq", "price"]

    def rejected(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
        return sorted(
            normalise(frame)[rejected_key].astype(str).itertuples(index=False, name=None),
        )

    assert rejected(duckdb_run.incremental_silver["fct_rejected_ticks"]) == rejected(
        duckdb_run.full_refresh_silver["fct_rejected_ticks"]
    )


def test_incremental_rejects_match_a_full_refresh_for_loads_with_and_without_duplicates(
    tmp_path: Path, scenario: Scenario
) -> None:
    # fct_rejected_ticks looks for duplicates only when the new valid rows outnumber the ticks
    # fct_ticks kept from them: a load of new ticks and one bad row (no duplicates), then a load
    # that re-delivers a tick, must both give what a full refresh gives.
    path = tmp_path / "warehouse.duckdb"
    env = {
        "MARKETPULSE_DUCKDB_PATH": str(path),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
    }
    first = [row for row in scenario.batches[0] if row["_object_key"].startswith("bronze/ticks/dt=")]
    newest = max(row["_loaded_at"] for row in first)
    fresh = place_rows(
        [{**row, "seq": row["seq"] + 1_000_000} for row in first[:50]]
        + [{**first[50], "seq": 2_000_000, "price": -1.0}],
        "bronze/ticks/fresh/1.ndjson",
        newest + dt.timedelta(minutes=1),
    )
    redelivered = place_rows(
        [dict(first[7])], "bronze/ticks/fresh/2.ndjson", newest + dt.timedelta(minutes=2)
    )
    load_duckdb(path, first)
    run_dbt(["build", "--exclude-resource-type", "unit_test", *VARS_ARGS], target="duckdb", env=env)
    for batch in (fresh, redelivered):
        load_duckdb(path, batch)
        run_dbt([*dbt_command(full_build=False), *VARS_ARGS], target="duckdb", env=env)
    incremental = read_duckdb(path, SILVER_SQL["fct_rejected_ticks"])
    run_dbt(["run", "--full-refresh", *VARS_ARGS], target="duckdb", env=env)
    refreshed = read_duckdb(path, SILVER_SQL["fct_rejected_ticks"])

    def rejects(frame: pd.DataFrame) -> list[tuple[str, str, int]]:
        return sorted(zip(frame["object_key"], frame["reject_reason"], frame["seq"], strict=True))

    assert rejects(incremental) == [
        ("bronze/ticks/fresh/1.ndjson", "non_positive_price", 2_000_000),
        ("bronze/ticks/fresh/2.ndjson", "duplicate", first[7]["seq"]),
    ]
    assert rejects(incremental) == rejects(refreshed)


@pytest.mark.parametrize("table", sorted(GOLD))
def test_gold_tables_equal_an_independent_pandas_computation(duckdb_run: DuckDBRun, table: str) -> None:
    key, exact, approx = GOLD[table]
    expected = expected_gold(duckdb_run.scenario.rows)[table]
    assert_same_rows(
        duckdb_run.full_refresh_gold[table],
        expected,
        key=key,
        exact=exact,
        approx=approx,
        what=f"gold.{table} vs pandas",
    )


def test_silver_keeps_exactly_the_valid_deduplicated_ticks(duckdb_run: DuckDBRun) -> None:
    expected = expected_silver(duckdb_run.scenario.rows).rename(
        columns={"_object_key": "object_key", "_loaded_at": "loaded_at"}
    )
    assert_same_rows(
        duckdb_run.full_refresh_silver["fct_ticks"],
        expected,
        key=["symbol", "event_time", "producer_id", "seq"],
        exact=["price", "size", "object_key", "loaded_at"],
        approx=[],
        what="silver.fct_ticks vs pandas",
    )


def test_every_raw_row_is_either_a_silver_tick_or_a_counted_reject(duckdb_run: DuckDBRun) -> None:
    raw = len(duckdb_run.scenario.rows)
    kept = len(duckdb_run.full_refresh_silver["fct_ticks"])
    rejected = len(duckdb_run.full_refresh_silver["fct_rejected_ticks"])
    duplicates = sum(copies - 1 for (*_, copies) in duckdb_run.scenario.duplicates.values())
    assert kept + rejected == raw
    assert rejected == len(duckdb_run.scenario.bad_objects) + duplicates


def test_each_validation_rule_rejects_its_row_with_its_reason(duckdb_run: DuckDBRun) -> None:
    rejected = normalise(duckdb_run.full_refresh_silver["fct_rejected_ticks"])
    kept = normalise(duckdb_run.full_refresh_silver["fct_ticks"])
    reasons = dict(zip(rejected["object_key"], rejected["reject_reason"], strict=True))
    wrong = {
        key: (reasons.get(key), reason)
        for key, reason in duckdb_run.scenario.bad_objects.items()
        if reasons.get(key) != reason
    }
    assert not wrong, f"object → (got, expected): {wrong}"
    assert not set(kept["object_key"]) & set(duckdb_run.scenario.bad_objects)
    assert set(rejected["reject_reason"]) == {*duckdb_run.scenario.bad_objects.values(), "duplicate"}


@pytest.mark.parametrize(
    "case",
    [
        "redelivered in a later load",
        "re-delivered later with other values",
        "twice in one object",
        "two objects of one load",
    ],
)
def test_a_redelivered_tick_is_kept_once_from_its_first_load_and_the_copies_are_counted(
    duckdb_run: DuckDBRun, case: str
) -> None:
    tick, kept_object, kept_price, copies = duckdb_run.scenario.duplicates[case]
    symbol, event_time, producer_id, seq = tick
    where = (
        f"where symbol = '{symbol}' and producer_id = '{producer_id}' and seq = {seq} "
        f"and event_time = '{event_time.isoformat()}'::timestamptz"
    )
    kept = read_duckdb(duckdb_run.path, f"select object_key, price from silver.fct_ticks {where}")  # noqa: S608
    assert list(kept.itertuples(index=False, name=None)) == [(kept_object, kept_price)]
    rejected = read_duckdb(
        duckdb_run.path,
        f"select reject_reason from silver.fct_rejected_ticks {where}",  # noqa: S608
    )
    assert list(rejected["reject_reason"]) == ["duplicate"] * (copies - 1)


@pytest.mark.parametrize(
    "case",
    ["same seq from another producer, or at another instant", "event time within the future tolerance"],
)
def test_ticks_that_only_look_alike_are_all_kept(duckdb_run: DuckDBRun, case: str) -> None:
    kept = normalise(duckdb_run.full_refresh_silver["fct_ticks"])
    kept_ids = set(kept[["symbol", "event_time", "producer_id", "seq"]].itertuples(index=False, name=None))
    expected = {(s, pd.Timestamp(t), p, q) for s, t, p, q in duckdb_run.scenario.distinct[case]}
    assert expected <= kept_ids


def test_late_ticks_from_an_out_of_order_load_reach_silver_and_their_old_bars(duckdb_run: DuckDBRun) -> None:
    silver = normalise(duckdb_run.incremental_silver["fct_ticks"])
    kept_ids = set(silver[["symbol", "event_time", "producer_id", "seq"]].itertuples(index=False, name=None))
    late = {(s, pd.Timestamp(t), p, q) for s, t, p, q in duckdb_run.scenario.late}
    assert late
    assert late <= kept_ids
    late_loads = silver[silver["object_key"].str.startswith("bronze/ticks/late/")]
    assert len(late_loads) == len(late)
    assert (late_loads["object_key"] == "bronze/ticks/late/2-out-of-order.ndjson").any()


def test_trading_dates_are_exchange_dates_not_utc_dates(duckdb_run: DuckDBRun) -> None:
    # A trade at 02:00 UTC on the 17th is an evening trade of the 16th in New York.
    bars = normalise(duckdb_run.full_refresh_gold["ohlc_1m"])
    evening = bars[bars["bar_start"].dt.hour.isin([1, 2, 3])]
    assert len(evening) > 0
    assert (evening["trade_date"] == (evening["bar_start"] - pd.Timedelta(hours=5)).dt.date).all()


def test_a_failing_data_test_raises_an_error_that_names_the_test_and_what_it_found(
    duckdb_run: DuckDBRun,
) -> None:
    # Corrupt silver with a second copy of one tick, run the tests of that model, then repair. (Gold's
    # incremental tables refuse such a copy: their contracts' primary keys, enforced by DuckDB.)
    with duckdb.connect(str(duckdb_run.path)) as connection:
        connection.execute("create temp table tick as select * from silver.fct_ticks limit 1")
        connection.execute("insert into silver.fct_ticks select * from tick")
    try:
        with pytest.raises(DbtRunError) as caught:
            run_dbt(
                ["test", "--select", "fct_ticks,test_type:generic", *VARS_ARGS],
                target="duckdb",
                env=duckdb_run.env,
            )
    finally:
        with duckdb.connect(str(duckdb_run.path)) as connection:
            connection.execute(
                "create or replace table silver.fct_ticks as select distinct * from silver.fct_ticks"
            )
    test = "unique_combination_of_columns_fct_ticks_symbol__event_time__producer_id__seq"
    assert caught.value.failed_nodes == [test]
    message = str(caught.value)
    assert f"test {test} (fail): Got 1 result" in message
    # The environment overlay is gone once the invocation returns.
    assert os.environ.get("MARKETPULSE_DUCKDB_PATH") != duckdb_run.env["MARKETPULSE_DUCKDB_PATH"]


def spec_vars_as_the_transform_passes_them(
    monkeypatch: pytest.MonkeyPatch, transform_vars: dict[str, Any]
) -> list[str]:
    """`--vars` for spec.transform.vars the way a pod gets them: rendered into the transform's
    environment, read back by its settings, merged by the transform (over the scenario's others)."""
    pipeline = validate_stockpipeline(
        {
            "apiVersion": "marketpulse.io/v1alpha1",
            "kind": "StockPipeline",
            "metadata": {"name": "p", "namespace": "n"},
            "spec": {"watchlist": list(SYMBOLS), "transform": {"vars": transform_vars}},
        }
    )
    [transform] = [
        w
        for w in render_workloads(pipeline.spec, names_for(pipeline), Platform())
        if w.component == "transform"
    ]
    name = variable(TransformSettings, "dbt_vars")
    value = transform.env_value(name)
    assert value is not None
    monkeypatch.setenv(name, value)
    settings = TransformSettings(watchlist=list(SYMBOLS))
    return ["--vars", json.dumps({**DBT_VARS, **dbt_vars(settings)}, sort_keys=True)]


def test_windows_and_the_base_date_from_the_spec_change_gold(
    duckdb_run: DuckDBRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = ["--select", "moving_averages_daily", "volatility_rolling", "index_base100"]
    before = read_gold_duckdb(duckdb_run.path)
    second_date = sorted(before["ohlc_daily"]["trade_date"].unique())[1]
    changed = spec_vars_as_the_transform_passes_them(
        monkeypatch,
        {"movingAverageDays": [3], "volatilityWindowDays": [2], "indexBaseDate": str(second_date)[:10]},
    )
    try:
        run_dbt(["run", *models, *changed], target="duckdb", env=duckdb_run.env)
        after = read_gold_duckdb(duckdb_run.path)
    finally:
        run_dbt(["run", *models, *VARS_ARGS], target="duckdb", env=duckdb_run.env)
    assert set(before["moving_averages_daily"]["window_days"]) == set(MOVING_AVERAGE_WINDOWS)
    assert set(after["moving_averages_daily"]["window_days"]) == {3}
    assert set(after["volatility_rolling"]["window_days"]) == {2}
    threes = before["moving_averages_daily"].query("window_days == 3").drop(columns="window_days")
    assert_same_rows(
        after["moving_averages_daily"].drop(columns="window_days"),
        threes,
        key=["symbol", "trade_date"],
        exact=["close"],
        approx=["sma"],
        what="the 3-day moving averages alone",
    )
    # The index starts at 100 on the base date instead of each symbol's first trading date.
    first_after = after["index_base100"].sort_values("trade_date").groupby("symbol").first()
    assert (pd.to_datetime(first_after["trade_date"]) == pd.Timestamp(second_date)).all()
    assert (first_after["index_value"] - 100).abs().max() < 1e-9


def test_gold_incremental_tables_refuse_a_second_row_for_a_key(duckdb_run: DuckDBRun) -> None:
    # The contract's primary key (symbol, bar_start), which DuckDB enforces on the table.
    with duckdb.connect(str(duckdb_run.path)) as connection:
        connection.execute("create temp table bar as select * from gold.ohlc_1m limit 1")
        with pytest.raises(duckdb.ConstraintException, match="primary key"):
            connection.execute("insert into gold.ohlc_1m select * from bar")
