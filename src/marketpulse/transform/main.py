"""`marketpulse transform`: load new bronze objects, `dbt build` silver and gold, publish gold.

`cron` (each CronJob run) runs one cycle with a full `dbt build` and exits non-zero if any stage failed;
`continuous` starts a cycle every interval (at once when the last one took longer), counting and
logging failed cycles without exiting, until SIGTERM. In continuous mode most cycles run `dbt run`
(models only, what keeps tick→gold short); the first cycle runs the full `dbt build`, and one cycle
every `transform_build_interval_seconds` runs every model, publishes gold, then runs every test.

The warehouse (`transform.warehouses`) is chosen once, at start: DuckDB (a file this process alone
writes; gold is published as Parquet for the dashboard) or Snowflake (PUT + COPY INTO; the dashboard
queries the gold schema directly).

A cycle runs only while this process holds the warehouse's one-writer lease (`transform.lease`); when
another transform of the pipeline holds it, the cycle is skipped with a warning and counted, and in
cron mode the run exits 0: the other one is doing the work.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from marketpulse.contract.settings.transform import TransformSettings
from marketpulse.runtime.faults import failpoint
from marketpulse.runtime.http import serve_metrics_and_health
from marketpulse.runtime.shutdown import Shutdown
from marketpulse.storage import ObjectStore
from marketpulse.transform.gold_metrics import record_gold
from marketpulse.transform.lease import LeaseHeldError
from marketpulse.transform.refresh import pending as refresh_pending
from marketpulse.transform.warehouses import TransformWarehouse, warehouse_for
from marketpulse.warehouse.dbt_project import run_dbt

log = logging.getLogger(__name__)

RUNS = Counter("marketpulse_transform_runs_total", "Transform cycles by result.", ["result"])
STAGE_SECONDS = Histogram(
    "marketpulse_transform_stage_duration_seconds",
    "Duration of each transform stage.",
    ["stage"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
ROWS_LOADED = Counter("marketpulse_transform_rows_loaded_total", "Bronze rows loaded into the warehouse.")
QUARANTINED = Counter(
    "marketpulse_transform_quarantined_objects_total",
    "Bronze objects quarantined, not loaded: malformed (not NDJSON ticks) or foreign (not an archive key).",
    ["kind"],
)
LEASE_BUSY = Counter(
    "marketpulse_transform_lease_busy_total",
    "Transform cycles skipped because another transform of the pipeline held the warehouse lease.",
)
LAST_SUCCESS = Gauge("marketpulse_transform_last_success_timestamp_seconds", "When the last cycle succeeded.")


@dataclass(frozen=True)
class CycleResult:
    objects: int
    rows: int
    gold_rows: dict[str, int]
    seconds: dict[str, float]
    dbt_command: str = "build"
    quarantined: int = 0


def dbt_command(full_build: bool) -> list[str]:
    """`dbt build` (every model and test), or the models-only `dbt run` of a steady cycle.

    A steady cycle skips the views (staging, validation, and on DuckDB the gold relations over the
    daily bars): they read their inputs when queried, so re-creating them changes nothing while the
    project and vars stay the same, which they do within a process, whose first cycle is a full
    build. It also skips writing dbt's JSON artifacts (manifest, run results) that nothing here
    reads; the full build still writes them.
    """
    if full_build:
        return ["build"]
    return ["run", "--exclude", "config.materialized:view", "--no-write-json"]


def dbt_vars(settings: TransformSettings) -> dict[str, Any]:
    """The vars of every dbt invocation: the spec's transform.vars, then what the workload fixes."""
    return {
        **settings.dbt_vars.dbt_vars(),
        "watchlist": settings.watchlist,
        "bronze_schema": settings.bronze_schema,
        "gold_schema": settings.gold_schema,
    }


def run_cycle(
    settings: TransformSettings,
    warehouse: TransformWarehouse,
    store: ObjectStore,
    *,
    full_build: bool = True,
    skip_if_idle: bool = False,
    test_after_publish: bool = False,
) -> CycleResult:
    """Load, then `dbt build` (models and tests) or, with `full_build=False`, `dbt run` (models only).

    A full refresh the operator asked for (`settings.full_refresh_token`) and this warehouse has not
    completed yet takes the place of the cycle's dbt: `dbt build --full-refresh`, recorded once it
    has succeeded (`transform.refresh`).

    With `skip_if_idle`, a cycle that loads no new object skips dbt: the caller passes it only when
    the last cycle's dbt succeeded, so silver and gold already reflect every loaded row. Gold is
    still published, so its manifest keeps telling the dashboard that the transform is alive.

    With `test_after_publish`, a full build runs the models, publishes gold, and only then runs
    dbt's tests: a periodic test pass in continuous mode then does not hold back fresh gold for the
    length of the tests (steady cycles publish untested models anyway). A failing test still fails
    the cycle.
    """
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    load = warehouse.load(store)
    seconds["load"] = time.perf_counter() - started
    ROWS_LOADED.inc(load.rows)
    for item in load.quarantined:
        QUARANTINED.labels(item.kind).inc()

    failpoint("transform.before-dbt")
    vars_args = ["--vars", json.dumps(dbt_vars(settings), sort_keys=True)]
    token = settings.full_refresh_token
    command = "skipped"
    if refresh_pending(token, warehouse.last_full_refresh):
        started = time.perf_counter()
        command = "full-refresh"
        log.info("full refresh: rebuilding silver and gold from bronze", extra={"token": token})
        run_dbt(["build", "--full-refresh", *vars_args], target=warehouse.target, env=warehouse.dbt_env())
        failpoint("transform.before-full-refresh-recorded")
        warehouse.record_full_refresh(token)
        seconds["dbt"] = time.perf_counter() - started
    elif not (skip_if_idle and load.objects == 0):
        started = time.perf_counter()
        test_later = full_build and test_after_publish
        command = "run+test" if test_later else "build" if full_build else "run"
        run_dbt(
            [*dbt_command(full_build and not test_later), *vars_args],
            target=warehouse.target,
            env=warehouse.dbt_env(),
        )
        seconds["dbt"] = time.perf_counter() - started

    started = time.perf_counter()
    published = warehouse.publish(store)
    if published is not None:
        seconds["publish"] = time.perf_counter() - started
    gold_rows = published or {}
    try:
        record_gold(warehouse.gold_symbols(), settings.watchlist)
    except Exception as exc:  # gold is built and published: a metric that cannot be read fails nothing
        log.warning("gold freshness not read", extra={"error": str(exc)})
    if command == "run+test":
        started = time.perf_counter()
        try:
            run_dbt(["test", *vars_args], target=warehouse.target, env=warehouse.dbt_env())
        finally:
            seconds["dbt_test"] = time.perf_counter() - started
    for stage, value in seconds.items():
        STAGE_SECONDS.labels(stage).observe(value)
    return CycleResult(load.objects, load.rows, gold_rows, seconds, command, len(load.quarantined))


def run_transform(settings: TransformSettings, store: ObjectStore, shutdown: Shutdown) -> int:
    # dbt's own console output is one line per node per cycle; our structured lines report each cycle,
    # and dbt's errors still reach the log through the failure message. Plain text, no colour codes.
    os.environ.setdefault("DBT_QUIET", "true")
    os.environ.setdefault("DBT_USE_COLORS", "false")
    # The Snowflake connector logs every login and statement at INFO; its warnings and errors remain.
    logging.getLogger("snowflake.connector").setLevel(logging.WARNING)
    warehouse = warehouse_for(settings)
    last_ok = [True]
    if settings.metrics_port:
        serve_metrics_and_health(
            settings.metrics_port, healthy=lambda: last_ok[0], host=settings.metrics_host
        )
    last_build: float | None = None
    # Whether silver and gold reflect every loaded row (the last cycle's dbt succeeded).
    settled = False
    while True:
        cycle_started = time.monotonic()
        full_build = (
            settings.transform_mode == "cron"
            or last_build is None
            or time.monotonic() - last_build >= settings.transform_build_interval_seconds
        )
        try:
            continuous = settings.transform_mode == "continuous"
            with warehouse.lease() as lease:
                if not lease.held:
                    raise LeaseHeldError(lease.holder)
                result = run_cycle(
                    settings,
                    warehouse,
                    store,
                    full_build=full_build,
                    skip_if_idle=settled and continuous,
                    # The first build creates the views and gates gold on the tests; later ones need not wait.
                    test_after_publish=continuous and last_build is not None,
                )
        except LeaseHeldError as busy:
            LEASE_BUSY.inc()
            # The other transform may stop mid-dbt: the next cycle this one runs does not skip dbt.
            settled = False
            log.warning(
                "another transform holds the lease; cycle skipped",
                extra={"holder": busy.holder, "detail": str(busy)},
            )
            if settings.transform_mode == "cron":
                return 0
        except Exception as exc:  # a failed cycle is reported; continuous mode tries again next interval
            RUNS.labels("failure").inc()
            last_ok[0] = False
            settled = False
            log.error("transform cycle failed", extra={"error": str(exc)})
            if settings.transform_mode == "cron":
                return 1
        else:
            RUNS.labels("success").inc()
            LAST_SUCCESS.set_to_current_time()
            last_ok[0] = True
            settled = True
            if result.dbt_command in ("build", "run+test", "full-refresh"):
                last_build = time.monotonic()
            log.info(
                "transform cycle done",
                extra={
                    "objects": result.objects,
                    "rows": result.rows,
                    "quarantined": result.quarantined,
                    "gold_rows": result.gold_rows,
                    "dbt": result.dbt_command,
                    "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
                },
            )
            if settings.transform_mode == "cron":
                return 0
        if shutdown.wait(next_cycle_delay(settings.transform_interval_seconds, cycle_started, last_ok[0])):
            return 0


def next_cycle_delay(interval: float, cycle_started: float, succeeded: bool) -> float:
    """How long to wait before the next cycle: the interval is a period counted from the start of the
    last cycle, not a pause after it, so waiting adds nothing to a cycle that already took the
    interval or longer (the next starts at once) and new objects wait for a load no longer than
    they must. After a failure the whole interval is waited, so a failure that takes longer than
    the interval is not retried in a tight loop."""
    if not succeeded:
        return interval
    return max(0.0, cycle_started + interval - time.monotonic())
