"""Drain a pipeline after a fault and judge it against docs/architecture.md's invariants, through the
real transform.

After a scenario: wait until the archive group has committed every record (lag 0), stop the archive,
run `marketpulse transform` once into DuckDB, then check that every acknowledged tick is in silver,
that silver holds none twice, that the load manifest matches what was loaded, and that gold equals
a recomputation from silver (and, when asked, a from-scratch rebuild from the same bronze).

Set MARKETPULSE_RELIABILITY_FULL=1 for the long variant: the transform runs dbt's data and unit
tests too, and every scenario also rebuilds gold from scratch.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import duckdb
from confluent_kafka import Consumer, KafkaException, TopicPartition

from marketpulse_dev.metrics_text import scrape_sum
from marketpulse_dev.reliability.ledger import Identity, read_ledger
from marketpulse_dev.reliability.report import RESULTS, ScenarioResult

FULL_ENV = "MARKETPULSE_RELIABILITY_FULL"
# The columns that record *when* a row was loaded differ between two builds by design.
_LOAD_TIME_COLUMNS = ("loaded_at", "last_loaded_at")


def full_mode() -> bool:
    return os.environ.get(FULL_ENV, "").lower() in ("1", "true", "yes")


class Flow(Protocol):
    """What the drain-and-check needs of a pipeline under test."""

    name: str
    env: dict[str, str]
    workdir: Path
    bootstrap: str
    ticks_topic: str

    def run(self, command: str, extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]: ...
    def logs(self) -> str: ...
    def bronze(self) -> tuple[list[Identity], list[str]]: ...


def transform_env(database: Path, *, publish: bool = True) -> dict[str, str]:
    """Environment of a `marketpulse transform` run in once mode into `database`.

    Outside the full variant dbt's data and unit tests are skipped (DBT_EXCLUDE_RESOURCE_TYPES):
    they cost two thirds of a run, and this suite checks the invariants on the tables itself.
    """
    env = {
        "MARKETPULSE_DUCKDB_PATH": str(database),
        "MARKETPULSE_TRANSFORM_MODE": "cron",
        "MARKETPULSE_PUBLISH_GOLD": "true" if publish else "false",
    }
    if not full_mode():
        env["DBT_EXCLUDE_RESOURCE_TYPES"] = "test unit_test"
    return env


def archive_group(flow: Flow) -> str:
    return flow.env.get("MARKETPULSE_ARCHIVE_GROUP") or (
        f"{flow.env.get('MARKETPULSE_NAMESPACE', 'default')}.{flow.name}.archive"
    )


def consumer_lag(bootstrap: str, group: str, topic: str, until: Mapping[int, int] | None = None) -> int:
    """Records of `topic` past the group's committed offsets (a partition never committed counts from low).

    `until` counts only up to these end offsets per partition (a snapshot of a topic still written to).
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
        lag = 0
        for committed in consumer.committed(partitions, timeout=10):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, committed.partition), timeout=10)
            position = committed.offset if committed.offset >= 0 else low
            end = high if until is None else until.get(committed.partition, 0)
            lag += max(0, end - position)
        return lag
    finally:
        consumer.close()


def wait_for_lag_zero(flow: Flow, timeout: float, until: Mapping[int, int] | None = None) -> float | None:
    """Monotonic time the archive group's lag was first seen at 0, or None on timeout."""
    deadline = time.monotonic() + timeout
    group = archive_group(flow)
    while time.monotonic() < deadline:
        try:
            if consumer_lag(flow.bootstrap, group, flow.ticks_topic, until) == 0:
                return time.monotonic()
        except KafkaException:  # the broker may still be coming back: keep asking until the deadline
            time.sleep(0.5)
            continue
        time.sleep(0.5)
    return None


def run_transform(
    flow: Flow, database: Path, *, publish: bool = True, timeout: float = 300
) -> tuple[int, str]:
    """Run `marketpulse transform` once; (exit code, its log)."""
    process = flow.run("transform", transform_env(database, publish=publish))
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait(timeout=30)
    log = getattr(flow, "log_of", None)
    return code, (log(process) if callable(log) else flow.logs())


def drain_and_check(
    flow: Flow,
    scenario: str,
    *,
    fault_cleared_at: float,
    archive: subprocess.Popen[bytes] | None = None,
    database: Path | None = None,
    rebuild_gold: bool = False,
    expect_bronze_duplicates: bool | None = None,
    notes: Mapping[str, Any] | None = None,
    timeout: float = 120,
    until: Mapping[int, int] | None = None,
) -> ScenarioResult:
    """Judge `scenario` once its fault is over; records and returns the result (check `.violations`).

    `archive`, when given, is a running archiver: the drain waits for lag 0, then stops it with
    SIGTERM. `fault_cleared_at` is the monotonic time the fault ended; recovery is measured from it
    to the end of the transform that put every acknowledged tick in silver.

    `until` judges a pipeline that keeps running (its own archive still consuming): the ledger is the
    ticks topic up to these end offsets, and the drain waits until the archive group has committed
    them, instead of waiting for a lag of 0 that a live producer never leaves.
    """
    violations: list[str] = []
    extra: dict[str, Any] = dict(notes or {})
    if until is not None:
        if (caught_up := wait_for_lag_zero(flow, timeout, until)) is None:
            violations.append(f"the archive group did not commit the ledger's offsets within {timeout}s")
        else:
            extra["bronze_caught_up_seconds"] = round(max(0.0, caught_up - fault_cleared_at), 1)
    if archive is not None:
        if (drained_at := wait_for_lag_zero(flow, timeout)) is None:
            violations.append(f"the archive group did not reach lag 0 within {timeout}s")
        else:
            extra["bronze_caught_up_seconds"] = round(max(0.0, drained_at - fault_cleared_at), 1)
        archive.send_signal(signal.SIGTERM)
        try:
            if (code := archive.wait(timeout=60)) != 0:
                violations.append(f"the archive exited {code} on SIGTERM")
        except subprocess.TimeoutExpired:
            archive.kill()
            violations.append("the archive did not stop within 60s of SIGTERM")
    lag = consumer_lag(flow.bootstrap, archive_group(flow), flow.ticks_topic, until)

    database = database or flow.workdir / "warehouse.duckdb"
    started = time.monotonic()
    code, log = run_transform(flow, database)
    finished = time.monotonic()
    extra["transform_seconds"] = round(finished - started, 1)
    if code != 0:
        violations.append(f"transform exited {code}: {log[-1500:]}")

    ledger = read_ledger(Path(flow.env["MARKETPULSE_INGEST_LEDGER"]))
    acknowledged = set(ledger)
    bronze_identities, _ = flow.bronze()
    bronze_duplicates = sum(n - 1 for n in Counter(bronze_identities).values())
    if expect_bronze_duplicates is True and bronze_duplicates == 0:
        violations.append("the scenario was to put duplicates in bronze, but bronze has none")

    with duckdb.connect(str(database), read_only=True) as con:
        silver = Counter(
            (producer, int(seq))
            for producer, seq in con.execute("select producer_id, seq from silver.fct_ticks").fetchall()
        )
        violations += manifest_violations(con)
        mismatches = gold_vs_silver(con)
    lost = len(acknowledged - silver.keys())
    silver_duplicates = sum(n - 1 for n in silver.values())
    if lost:
        sample = sorted(acknowledged - silver.keys())[:5]
        violations.append(f"{lost} acknowledged ticks are not in silver, e.g. {sample}")
    if silver_duplicates:
        violations.append(f"{silver_duplicates} extra copies of ticks in silver")
    if lag:
        violations.append(f"archive group lag is {lag}, not 0")
    if mismatches:
        violations.append(f"gold differs from silver's recomputation: {mismatches[:3]}")
    gold_mismatches = len(mismatches)

    if rebuild_gold or full_mode():
        rebuilt = flow.workdir / f"rebuild-{time.monotonic_ns()}.duckdb"
        rebuild_code, rebuild_log = run_transform(flow, rebuilt, publish=False)
        if rebuild_code != 0:
            violations.append(f"the from-scratch rebuild exited {rebuild_code}: {rebuild_log[-1500:]}")
        else:
            differences = compare_gold(database, rebuilt)
            gold_mismatches += len(differences)
            extra["rebuilt_gold_compared"] = True
            if differences:
                violations.append(f"gold differs from a from-scratch rebuild: {differences[:3]}")

    result = ScenarioResult(
        scenario=scenario,
        acknowledged=len(ledger),
        lost=lost,
        silver_duplicates=silver_duplicates,
        bronze_duplicates=bronze_duplicates,
        unacknowledged_in_silver=len(silver.keys() - acknowledged),
        consumer_lag=lag,
        gold_mismatches=gold_mismatches,
        recovery_seconds=round(finished - fault_cleared_at, 2),
        violations=violations,
        notes=extra,
    )
    RESULTS.record(result)
    print(result.line())
    return result


def manifest_violations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every loaded object is in the manifest with the row count it loaded, and nothing else is."""
    rows = con.execute("""
        select coalesce(m.object_key, r.object_key), m.row_count, r.row_count
        from bronze._load_manifest as m
        full outer join (
            select _object_key as object_key, count(*) as row_count from bronze.raw_ticks group by 1
        ) as r on m.object_key = r.object_key
        where m.row_count is distinct from r.row_count
    """).fetchall()
    return [f"load manifest says {m} rows for {key}, bronze.raw_ticks holds {r}" for key, m, r in rows[:5]]


# An independent formulation of the two bar tables: ordered aggregates straight over silver,
# where the dbt models use window functions (and ohlc_daily rolls up the minute bars).
_RECOMPUTED_1M = """
    select symbol, bar_start, min(trade_date) as trade_date,
           first(price order by event_time, seq, producer_id) as open, max(price) as high,
           min(price) as low, last(price order by event_time, seq, producer_id) as close,
           sum(size) as volume, count(*) as tick_count, sum(price * size) / nullif(sum(size), 0) as vwap
    from silver.fct_ticks group by symbol, bar_start
"""
_RECOMPUTED_DAILY = """
    select symbol, trade_date,
           first(price order by event_time, seq, producer_id) as open, max(price) as high,
           min(price) as low, last(price order by event_time, seq, producer_id) as close,
           sum(size) as volume, count(*) as tick_count, sum(price * size) / nullif(sum(size), 0) as vwap
    from silver.fct_ticks group by symbol, trade_date
"""
_GOLD_COLUMNS = "open, high, low, close, volume, tick_count, vwap"


def gold_vs_silver(con: duckdb.DuckDBPyConnection) -> list[str]:
    differences = []
    for table, keys, recomputed in (
        ("ohlc_1m", "symbol, bar_start", _RECOMPUTED_1M),
        ("ohlc_daily", "symbol, trade_date", _RECOMPUTED_DAILY),
    ):
        # Table and column names are this module's constants, not input.
        gold_sql = f"select {keys}, {_GOLD_COLUMNS} from gold.{table} order by {keys}"  # noqa: S608
        expected_sql = f"select {keys}, {_GOLD_COLUMNS} from ({recomputed}) order by {keys}"  # noqa: S608
        gold = con.execute(gold_sql).fetchall()
        expected = con.execute(expected_sql).fetchall()
        differences += [f"gold.{table} {d}" for d in diff_rows(gold, expected, key_width=2)]
    return differences


def compare_gold(database: Path, rebuilt: Path) -> list[str]:
    """Every gold relation of `database` row for row against the same relation of `rebuilt`."""
    with duckdb.connect() as con:
        con.execute(f"attach '{database}' as built (read_only)")
        con.execute(f"attach '{rebuilt}' as rebuilt (read_only)")
        tables = [
            row[0]
            for row in con.execute(
                "select table_name from information_schema.tables "
                "where table_catalog = 'built' and table_schema = 'gold' order by 1"
            ).fetchall()
        ]
        differences = []
        for table in tables:
            columns = [
                row[0]
                for row in con.execute(
                    "select column_name from information_schema.columns where table_catalog = 'built' "
                    "and table_schema = 'gold' and table_name = ? order by ordinal_position",
                    [table],
                ).fetchall()
                if row[0] not in _LOAD_TIME_COLUMNS
            ]
            listed = ", ".join(f'"{c}"' for c in columns)
            order = ", ".join(str(i + 1) for i in range(len(columns)))
            # Names from the catalogue of the warehouse the transform built, not input.
            mine_sql = f"select {listed} from built.gold.{table} order by {order}"  # noqa: S608
            theirs_sql = f"select {listed} from rebuilt.gold.{table} order by {order}"  # noqa: S608
            mine = con.execute(mine_sql).fetchall()
            theirs = con.execute(theirs_sql).fetchall()
            differences += [f"gold.{table} {d}" for d in diff_rows(mine, theirs, key_width=len(columns))]
        if not tables:
            differences.append("no gold tables were built")
        return differences


def diff_rows(
    actual: Sequence[tuple[Any, ...]], expected: Sequence[tuple[Any, ...]], key_width: int
) -> list[str]:
    """Row-for-row differences; floats compare to 1e-9 relative (sums in another order round differently)."""
    if key_width < len(actual[0] if actual else ()):
        by_key_actual = {row[:key_width]: row for row in actual}
        by_key_expected = {row[:key_width]: row for row in expected}
        differences = [f"missing {k}" for k in by_key_expected.keys() - by_key_actual.keys()]
        differences += [f"unexpected {k}" for k in by_key_actual.keys() - by_key_expected.keys()]
        for key in by_key_actual.keys() & by_key_expected.keys():
            if not rows_equal(by_key_actual[key], by_key_expected[key]):
                differences.append(f"{by_key_actual[key]} != {by_key_expected[key]}")
        return differences
    if len(actual) != len(expected):
        return [f"{len(actual)} rows where a rebuild has {len(expected)}"]
    return [f"{a} != {e}" for a, e in zip(actual, expected, strict=True) if not rows_equal(a, e)]


def rows_equal(left: tuple[Any, ...], right: tuple[Any, ...]) -> bool:
    return len(left) == len(right) and all(values_equal(a, b) for a, b in zip(left, right, strict=True))


def values_equal(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12) or (
            math.isnan(left) and math.isnan(right)
        )
    return bool(left == right)


def metric_value(port: int, name: str) -> float:
    """The sum of a counter's series on a workload's /metrics (0 before it is first incremented)."""
    return scrape_sum(port, name, timeout=2)
