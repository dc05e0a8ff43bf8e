"""Nothing acknowledged is lost when any one workload dies like `kill -9`: ingest mid-stream, the
archive before an object write, the transform mid-load, before dbt and in the middle of dbt.

Each scenario drains through the real transform into DuckDB and is judged by
`marketpulse_dev.reliability.checks.drain_and_check`; MARKETPULSE_RELIABILITY_FULL=1 runs more ticks
and rebuilds gold from scratch after every scenario.
"""

from __future__ import annotations

import time

import duckdb
import pytest

from marketpulse_dev.reliability.checks import (
    drain_and_check,
    full_mode,
    manifest_violations,
    run_transform,
    transform_env,
    wait_for_lag_zero,
)
from marketpulse_dev.reliability.pipeline import FlowUnderTest, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.kafka, pytest.mark.s3]

TICKS = 20_000 if full_mode() else 3_000


def test_ingest_killed_mid_stream_and_restarted_loses_no_acknowledged_tick(flow: FlowUnderTest) -> None:
    archive = flow.run("archive")
    doomed = flow.run("ingest", {"MARKETPULSE_SYNTHETIC_RATE": "4000", "MARKETPULSE_TICK_LIMIT": "10000000"})
    # The ledger is written through a 64 KiB buffer: wait for a few flushes, so acks exist to lose.
    wait_until(lambda: len(flow.ledger()) >= 4000, 60, "4,000 acknowledged ticks", flow.logs)
    doomed.kill()
    assert doomed.wait(timeout=10) == -9
    killed_at = time.monotonic()
    acknowledged_before = len(flow.ledger())

    restarted = flow.run("ingest", {"MARKETPULSE_TICK_LIMIT": str(TICKS)})
    assert restarted.wait(timeout=120) == 0, flow.logs()
    producers = {producer for producer, _ in flow.ledger()}
    assert len(producers) == 2, "the restarted ingest produces under a new producer id"

    result = drain_and_check(
        flow,
        "ingest kill -9 mid-stream, restarted",
        fault_cleared_at=killed_at,
        archive=archive,
        notes={"acknowledged_before_kill": acknowledged_before},
    )
    result.assert_held()
    assert result.acknowledged == acknowledged_before + TICKS


def test_archive_killed_before_an_object_write_loses_nothing_and_writes_each_range_once(
    flow: FlowUnderTest,
) -> None:
    crashing = flow.run("archive", {"MARKETPULSE_FAILPOINTS": "archive.before-object-write=2"})
    wait_until(
        lambda: "partitions assigned" in flow.log_of(crashing), 60, "the archive's partitions", flow.logs
    )
    # Paced over ~3 s while the archive consumes (objects are age-bounded at 0.5 s): several writes
    # are due, and the second one is the one the crash prevents.
    ingest = flow.run("ingest", {"MARKETPULSE_TICK_LIMIT": str(TICKS), "MARKETPULSE_SYNTHETIC_RATE": "1000"})
    assert crashing.wait(timeout=120) == 137, flow.logs()
    killed_at = time.monotonic()
    written_before_restart = len(flow.bronze()[1])
    assert written_before_restart == 1, flow.logs()
    assert ingest.wait(timeout=120) == 0, flow.logs()

    archive = flow.run("archive")
    result = drain_and_check(
        flow, "archive kill -9 before object write", fault_cleared_at=killed_at, archive=archive
    )
    result.assert_held()
    assert result.bronze_duplicates == 0, "a range never written is written once, after the restart"


def drain_to_bronze(flow: FlowUnderTest, ticks: int, **env: str) -> None:
    """Produce `ticks` with a running archive and wait until all of them are committed to bronze."""
    ingest = flow.run("ingest", {"MARKETPULSE_TICK_LIMIT": str(ticks), **env})
    assert ingest.wait(timeout=120) == 0, flow.logs()
    assert wait_for_lag_zero(flow, timeout=60) is not None, flow.logs()


def test_transform_killed_mid_load_and_before_dbt_loads_everything_once_on_the_next_run(
    flow: FlowUnderTest,
) -> None:
    archive = flow.run("archive")
    drain_to_bronze(flow, TICKS)
    database = flow.workdir / "warehouse.duckdb"

    mid_load = flow.run(
        "transform", {**transform_env(database), "MARKETPULSE_FAILPOINTS": "transform.mid-load"}
    )
    assert mid_load.wait(timeout=120) == 137, flow.log_of(mid_load)
    with duckdb.connect(str(database), read_only=True) as con:
        assert manifest_violations(con) == []
        assert con.execute("select count(*) from bronze._load_manifest").fetchone() == (0,)
        assert con.execute("select count(*) from bronze.raw_ticks").fetchone() == (0,)

    before_dbt = flow.run(
        "transform", {**transform_env(database), "MARKETPULSE_FAILPOINTS": "transform.before-dbt"}
    )
    assert before_dbt.wait(timeout=120) == 137, flow.log_of(before_dbt)
    killed_at = time.monotonic()
    with duckdb.connect(str(database), read_only=True) as con:
        assert manifest_violations(con) == []
        loaded = con.execute("select count(*) from bronze.raw_ticks").fetchone()
    assert loaded == (TICKS,), "the load committed before the crash that followed it"

    result = drain_and_check(
        flow,
        "transform kill -9 mid-load, then before dbt",
        fault_cleared_at=killed_at,
        archive=archive,
        database=database,
    )
    result.assert_held()


def test_transform_killed_in_the_middle_of_dbt_is_completed_by_the_next_run(flow: FlowUnderTest) -> None:
    archive = flow.run("archive")
    drain_to_bronze(flow, TICKS // 2)
    database = flow.workdir / "warehouse.duckdb"
    code, log = run_transform(flow, database)
    assert code == 0, log
    drain_to_bronze(flow, TICKS - TICKS // 2, MARKETPULSE_SYNTHETIC_SEED="7")

    doomed = flow.run("transform", transform_env(database))
    wal = database.with_name(database.name + ".wal")
    # After the load the loader's connection is closed (checkpointed, no WAL); a WAL appears again
    # when dbt commits its first model: from then on the kill lands in the middle of dbt's writes.
    wait_until(lambda: "bronze loaded" in flow.log_of(doomed), 120, "the load to finish", flow.logs)
    wait_until(wal.exists, 120, "dbt's first write to the warehouse", flow.logs)
    time.sleep(0.5)
    doomed.kill()
    assert doomed.wait(timeout=10) == -9
    killed_at = time.monotonic()
    assert "transform cycle done" not in flow.log_of(doomed), "the kill came too late to be mid-dbt"

    result = drain_and_check(
        flow,
        "transform kill -9 in the middle of dbt",
        fault_cleared_at=killed_at,
        archive=archive,
        database=database,
        rebuild_gold=True,
    )
    result.assert_held()
